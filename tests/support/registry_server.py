"""Run the real registry (`contributor-registry serve`) as a subprocess on a loopback port.

Shared by tests/registry, tests/integration and anything else that needs a live registry:
`RegistryProcess(db_url, blobs_dir).start()` returns the base URL read from the server's
"listening on http://127.0.0.1:PORT" line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

READY_TIMEOUT_S = 30.0


class RegistryProcess:
    """One registry server process; restartable on the same database and blob dir."""

    def __init__(
        self,
        db_url: str,
        blobs_dir: Path,
        *,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.db_url = db_url
        self.blobs_dir = blobs_dir
        self.log_path = log_path or blobs_dir.parent / "registry-server.log"
        self.extra_args = extra_args
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self, port: int = 0) -> str:
        cmd = [
            sys.executable,
            "-m",
            "registry.cli",
            "serve",
            "--db",
            self.db_url,
            "--blobs",
            str(self.blobs_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *self.extra_args,
        ]
        log = self.log_path.open("a", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, start_new_session=True
        )
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.kill()
            raise RuntimeError(
                f"registry did not start: {line!r}\n{self.log_path.read_text(encoding='utf-8')}"
            )
        self.base_url = line.split("listening on ", 1)[1].strip()
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/v1/health", timeout=2).status_code == 200:
                    return self.base_url
            except httpx.TransportError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("registry never became healthy")

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server (SIGKILL by default: nothing gets to clean up, like a crash) and
        its worker processes (`serve --workers N`: the whole process group)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)  # start_new_session: the group is the server's
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> RegistryProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill(signal.SIGTERM)
