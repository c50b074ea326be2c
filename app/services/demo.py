"""The embedded demo registry of `contributor-desk --demo` and `--self-test`.

The app never imports the registry package: the demo registry is a child process
(`contributor-registry serve --port 0`) on loopback with its own database and blob folder
inside the data dir, so a demo never touches a real registry.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.domain import portable
from app.domain.errors import RegistryUnavailable

_BOOT = "import sys; from registry.cli import main; sys.exit(main())"
STARTUP_TIMEOUT_S = 30.0


# How a frozen bundle (packaging/entry.py) runs its embedded registry instead of `python -c`.
FROZEN_REGISTRY_SWITCH = "--run-registry"


def _registry_command(*args: str) -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, FROZEN_REGISTRY_SWITCH, *args]
    return [sys.executable, "-c", _BOOT, *args]


@dataclass
class DemoRegistry:
    url: str
    db_url: str
    process: subprocess.Popen[str]
    log_path: Path
    blobs_dir: Path | None = None
    _drain: threading.Thread | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def seed(self, owner_key: str | None = None) -> None:
        """Simulate model usage for accepted contributions (idempotent, labelled demo) and
        create the demo datanets (`owner_key`: the user's public key, owner of the one with
        review)."""
        owner = ("--owner-key", owner_key) if owner_key else ()
        # The blob store holds the files the demo's usage evidence points into.
        blobs = ("--blobs", str(self.blobs_dir)) if self.blobs_dir is not None else ()
        subprocess.run(
            _registry_command("seed-demo", "--db", self.db_url, *owner, *blobs),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._drain is not None:
            self._drain.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_demo_registry(data_dir: Path, *, folder_name: str = "demo-registry") -> DemoRegistry:
    """Start a registry on a free loopback port; return once it accepts connections."""
    folder = data_dir / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{folder / 'registry.sqlite3'}"
    log_path = folder / "registry.log"
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - owned by the child's lifetime
    env = dict(os.environ)
    env.pop("PYTHON_KEYRING_BACKEND", None)
    proc = subprocess.Popen(
        _registry_command("serve", "--port", "0", "--db", db_url, "--blobs", str(folder / "blobs")),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        preexec_fn=portable.parent_death_hook(),  # the kernel stops it with the app (Linux)
    )
    log.close()
    assert proc.stdout is not None
    found: list[str] = []

    def read_first_line() -> None:
        assert proc.stdout is not None
        found.append(proc.stdout.readline().strip())

    reader = threading.Thread(target=read_first_line, daemon=True)
    reader.start()
    reader.join(STARTUP_TIMEOUT_S)
    line = found[0] if found else ""
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait()
        tail = log_path.read_text("utf-8", errors="replace")[-2000:]
        raise RegistryUnavailable(
            "the demo registry did not start", hint=f"see {log_path}: {tail.strip()[-300:]}"
        )
    url = line.removeprefix("listening on ").strip()
    # Drain stdout so the child never blocks on a full pipe.
    drain = threading.Thread(target=proc.stdout.read, daemon=True)
    drain.start()
    registry = DemoRegistry(
        url=url,
        db_url=db_url,
        process=proc,
        log_path=log_path,
        blobs_dir=folder / "blobs",
        _drain=drain,
    )
    _wait_until_accepting(registry)
    return registry


def _wait_until_accepting(registry: DemoRegistry) -> None:
    """The port is bound before uvicorn listens; wait until a connection is accepted."""
    host, _, port = registry.url.removeprefix("http://").partition(":")
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            break
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    registry.stop()
    raise RegistryUnavailable("the demo registry did not start", hint=f"see {registry.log_path}")
