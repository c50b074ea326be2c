"""The background helper: results, errors and progress arrive on the GUI thread; cancel works."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThread

from app.domain.errors import Cancelled
from app.ui.adapters.tasks import TaskRunner


def test_result_and_progress_arrive_on_gui_thread(qtbot: Any) -> None:
    runner = TaskRunner()
    gui = QThread.currentThread()
    seen: dict[str, Any] = {"progress": [], "threads": set()}
    worker_thread: list[int] = []

    def work(progress: Any) -> int:
        worker_thread.append(threading.get_ident())
        for i in range(1, 4):
            progress(i, 3)
        return 42

    def on_result(value: int) -> None:
        seen["result"] = value
        seen["threads"].add(QThread.currentThread() is gui)

    def on_progress(done: int, total: int) -> None:
        seen["progress"].append((done, total))
        seen["threads"].add(QThread.currentThread() is gui)

    runner.start(work, on_result=on_result, on_progress=on_progress)
    qtbot.waitUntil(lambda: "result" in seen, timeout=5000)
    assert seen["result"] == 42
    assert seen["threads"] == {True}
    assert (3, 3) in seen["progress"]  # the final report is never throttled away
    assert worker_thread and worker_thread[0] != threading.get_ident()
    qtbot.waitUntil(lambda: runner.active == 0, timeout=5000)


def test_error_is_delivered_not_swallowed(qtbot: Any) -> None:
    runner = TaskRunner()
    errors: list[BaseException] = []

    def boom() -> None:
        raise ValueError("broken")

    runner.start(boom, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], ValueError)


def test_cancel_reaches_the_worker(qtbot: Any) -> None:
    runner = TaskRunner()
    errors: list[BaseException] = []
    started = threading.Event()

    def slow(cancel: Any) -> None:
        started.set()
        while not cancel():
            time.sleep(0.005)
        raise Cancelled("cancelled")

    task = runner.start(slow, with_cancel=True, on_error=errors.append)
    assert started.wait(5)
    task.cancel()
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], Cancelled)
    assert task.cancelled


_RACE = """
import sys, threading
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
from app.ui.adapters.tasks import TaskRunner

app = QCoreApplication([])
runner = TaskRunner()
names = sys.argv[1].split(",")
gate = threading.Barrier(len(names))
errors, done = [], []

def load(name):
    gate.wait()  # every worker enters its package at the same moment
    __import__(name)

for name in names:
    runner.start(load, name, on_error=errors.append, on_finished=lambda: done.append(1))
loop = QEventLoop()
QTimer.singleShot(20_000, loop.quit)
timer = QTimer()
timer.timeout.connect(lambda: len(done) == len(names) and loop.quit())
timer.start(10)
loop.exec()
print(len(done), [repr(e) for e in errors])
"""


def test_workers_importing_one_package_at_once_get_whole_modules() -> None:
    """At startup several workers import the services' packages at once (catalogue, identity,
    automatic sync): each gets whole modules, never "partially initialized module" errors."""
    import subprocess
    import sys

    names = (
        "sqlalchemy.util,sqlalchemy.engine,sqlalchemy.event,sqlalchemy.orm,sqlalchemy,"
        "httpx._client,keyring.backends,msgspec.json"
    )
    for _ in range(4):  # fresh interpreters: the race is in the first import
        out = subprocess.run(
            [sys.executable, "-c", _RACE, names],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
            cwd=Path(__file__).resolve().parents[2],
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == "8" and out.stdout.strip().endswith("[]"), out.stdout
