"""The embedded demo registry of `--demo`: starts on loopback, answers, never outlives the app."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

from app.services.demo import start_demo_registry

ROOT = Path(__file__).resolve().parents[2]


def test_demo_registry_starts_answers_and_stops(tmp_path: Path) -> None:
    demo = start_demo_registry(tmp_path)
    try:
        assert demo.url.startswith("http://127.0.0.1:")
        health = requests.get(f"{demo.url}/v1/health", timeout=10).json()
        assert health["status"] == "ok"
    finally:
        demo.stop()
    assert demo.process.poll() is not None


def test_demo_registry_keeps_its_identity_and_data_across_restarts(tmp_path: Path) -> None:
    """A new port at every start, but the same registry: same id, same database."""
    seen = []
    for _ in range(2):
        demo = start_demo_registry(tmp_path)
        try:
            health = requests.get(f"{demo.url}/v1/health", timeout=10).json()
            with sqlite3.connect(demo.db_url.removeprefix("sqlite:///")) as db:
                models = db.execute("SELECT count(*) FROM models").fetchone()[0]
            seen.append((demo.url, health["registryId"], models))
            demo.seed()  # the demo operator and models, stored in the data folder
        finally:
            demo.stop()
    (url1, id1, models1), (url2, id2, models2) = seen
    assert id1 == id2 and id1.startswith("reg_")
    assert models1 == 0 and models2 == 3  # the first start's seeding is still there
    other = start_demo_registry(tmp_path / "elsewhere")
    try:  # another data folder: another registry
        assert requests.get(f"{other.url}/v1/health", timeout=10).json()["registryId"] != id1
    finally:
        other.stop()


def test_demo_registry_dies_with_a_killed_app(tmp_path: Path) -> None:
    """kill -9 of the app must not leave the demo server running (Linux: PDEATHSIG)."""
    code = (
        "import sys, time; from pathlib import Path; "
        "from app.services.demo import start_demo_registry; "
        f"d = start_demo_registry(Path({str(tmp_path)!r})); "
        "print(d.process.pid, flush=True); time.sleep(120)"
    )
    app = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert app.stdout is not None
    child = int(app.stdout.readline())
    os.kill(app.pid, signal.SIGKILL)
    app.wait()
    app.stdout.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:
            if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
                return  # exited; waiting to be reaped by init
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the demo registry outlived the app")
