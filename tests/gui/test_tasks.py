"""The background helper: results, errors and progress arrive on the GUI thread; cancel works."""

from __future__ import annotations

import threading
import time
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
