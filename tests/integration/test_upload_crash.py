"""kill -9 of the uploading CLI, and of the registry, mid-upload: real processes throughout.

After a restart the upload resumes from the registry's offset, re-sending at most the chunk
that was in flight, and the contribution ends accepted with identical blobs.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.faults.helpers import (
    Desk,
    assert_blobs_equal,
    make_desk,
    proxy_fixture,  # noqa: F401 - fixture 'proxy'
    random_bytes,
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.integration.faults.proxy import FaultProxy
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 1024 * 1024
FILES = {"big.bin": random_bytes(4 * CHUNK + 12345, 21), "small.txt": b"small\n" * 50}


def _upload_cli(data_dir: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["CONTRIBUTOR_DESK_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--registry",
            url,
            "upload",
            "--wait",
            "--chunk-mb",
            "1",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _confirmed(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "catalogue.sqlite3", timeout=10) as conn:
        row = conn.execute("SELECT coalesce(max(bytes_confirmed), 0) FROM upload_jobs").fetchone()
    return int(row[0])


def _wait_for_progress(proc: subprocess.Popen[str], data_dir: Path, at_least: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        done = _confirmed(data_dir)
        if done >= at_least:
            return done
        time.sleep(0.05)
    raise AssertionError("the upload made no progress")


def test_kill_9_of_the_client_mid_upload_then_restart_completes(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    proxy: FaultProxy,
) -> None:
    desk: Desk = make_desk(tmp_path, data_dir, proxy.url)
    item = desk.add("ds", FILES)
    desk.submit(item)
    desk.ctx.close()
    first = _upload_cli(data_dir, proxy.url, "--limit-kbps", "512", "--concurrency", "1")
    _wait_for_progress(first, data_dir, 2 * CHUNK)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)  # reap it and close its pipes
    again = _upload_cli(data_dir, proxy.url)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "accepted" in out
    assert desk.state(item) == "accepted"
    assert_blobs_equal(registry, FILES)
    big = len(FILES["big.bin"])  # small.txt travels in a batch, not a PATCH
    # Everything was sent once, plus at most the one chunk that was in flight at the kill.
    assert big <= proxy.patch_body_bytes <= big + CHUNK, proxy.patch_body_bytes
    desk.ctx.close()


def test_kill_9_of_the_registry_mid_upload_then_restart_completes(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path, registry: RegistryProcess
) -> None:
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    item = desk.add("ds", FILES)
    desk.submit(item)
    desk.ctx.close()
    port = registry.port
    proc = _upload_cli(data_dir, registry.base_url, "--limit-kbps", "512")
    try:
        _wait_for_progress(proc, data_dir, CHUNK)
        registry.kill(signal.SIGKILL)
        time.sleep(1.5)  # the client retries (backoff), or goes offline and probes
        assert proc.poll() is None, "upload --wait must keep waiting for the registry"
        registry.start(port)  # same database, blobs and port
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "accepted" in out
    assert desk.state(item) == "accepted"
    assert_blobs_equal(registry, FILES)
    desk.ctx.close()


def test_upload_without_wait_exits_4_when_the_registry_is_down(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path, registry: RegistryProcess
) -> None:
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    item = desk.add("ds", {"a.txt": b"a" * 100})
    desk.submit(item)
    desk.ctx.close()
    registry.kill()
    env = dict(os.environ, PYTHONPATH=str(ROOT), CONTRIBUTOR_DESK_DATA_DIR=str(data_dir))
    res = subprocess.run(
        [sys.executable, "-m", "app", "--registry", desk.ctx.registry_url, "upload"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert res.returncode == 4, res.stderr
    assert "unreachable" in res.stderr and "queue is kept" in res.stderr
    assert desk.state(item) in ("queued", "uploading")  # kept for the next run
    desk.ctx.close()
