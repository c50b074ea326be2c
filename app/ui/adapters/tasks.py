"""One small helper for background work: run a callable on the QThreadPool.

Why: widgets must never block on I/O. A task runs `fn(*args, **kwargs)` in a QRunnable; its
result, error and progress reach the GUI thread through queued signals, so callbacks may touch
widgets. Long work gets `cancel` (a callable returning True once the user cancelled) and
`progress` (done, total) keyword arguments when asked for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from app.services.imports import ready_imports

log = logging.getLogger(__name__)
R = TypeVar("R")  # what a task's function returns: its on_result callback gets it
PROGRESS_INTERVAL_S = 0.05
MAX_THREADS = 8


class TaskSignals(QObject):
    """Lives on the GUI thread; emitted from the worker, delivered queued."""

    result = Signal(object)
    error = Signal(object)  # the exception instance
    progress = Signal(object, object)  # done, total (ints, may exceed 2**31)
    finished = Signal()


class _Relay(QObject):
    """Receives a task's signals on the GUI thread and calls the plain-Python callbacks.

    Why: a signal connected to a lambda may run in the emitting thread; a slot of a QObject
    that lives on the GUI thread, connected queued, never does.
    """

    def __init__(
        self,
        on_result: Callable[[Any], object] | None,
        on_error: Callable[[BaseException], object] | None,
        on_progress: Callable[[int, int], object] | None,
        on_finished: Callable[[], object] | None,
        forget: Callable[[], None],
        parent: QObject,
    ) -> None:
        # A child of the runner: when the window (and runner) go away, Qt drops the queued
        # results instead of calling into deleted widgets.
        super().__init__(parent)
        self._forget = forget
        self._on_result = on_result
        self._on_error = on_error
        self._on_progress = on_progress
        self._on_finished = on_finished

    @Slot(object)
    def result(self, value: Any) -> None:
        if self._on_result is not None:
            self._on_result(value)

    @Slot(object)
    def error(self, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(exc)
        else:
            log.error("unhandled background error", exc_info=exc)

    @Slot(object, object)
    def progress(self, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(done, total)

    @Slot()
    def finished(self) -> None:
        try:
            if self._on_finished is not None:
                self._on_finished()
        finally:
            self._forget()


class Task(QRunnable):
    """A cancellable unit of background work. Keep a reference only to cancel it."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        with_progress: bool = False,
        with_cancel: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Python owns it; avoids deleting while signals are queued
        self.signals = TaskSignals()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._cancel_event = threading.Event()
        self.done = threading.Event()
        self._last_progress = 0.0
        if with_progress:
            self._kwargs["progress"] = self._report_progress
        if with_cancel:
            self._kwargs["cancel"] = self._cancel_event.is_set

    def cancel(self) -> None:
        self._cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def _report_progress(self, done: int, total: int) -> None:
        # Throttled: a hashing loop may report thousands of times a second, and flooding the
        # GUI thread's event queue would freeze the very window we keep responsive.
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self.signals.progress.emit(done, total)

    def run(self) -> None:
        try:
            ready_imports()  # whole packages before any task imports a part (see there)
            value = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # delivered to the GUI thread, never swallowed
            log.debug("background task failed", exc_info=True)
            self._emit(self.signals.error, exc)
        else:
            self._emit(self.signals.result, value)
        finally:
            self.done.set()
            self._emit(self.signals.finished)

    def _emit(self, signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the application is shutting down; nobody is listening
            log.debug("task finished after its receiver was deleted")


class TaskRunner(QObject):
    """Starts tasks on a thread pool and keeps them alive until they finish."""

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if pool is None:
            # Its own pool, wider than the CPU count: most tasks wait on disk, network or a
            # child process, and one long task (demo seeding, a big hash) must not queue the
            # quick ones (a registry check, a detail pane) behind it.
            pool = QThreadPool(self)
            pool.setMaxThreadCount(MAX_THREADS)
        self.pool = pool
        self._running: set[Task] = set()
        self._relays: set[QObject] = set()

    def start(
        self,
        fn: Callable[..., R],
        *args: Any,
        on_result: Callable[[R], object] | None = None,
        on_error: Callable[[BaseException], object] | None = None,
        on_progress: Callable[[int, int], object] | None = None,
        on_finished: Callable[[], object] | None = None,
        with_cancel: bool = False,
        **kwargs: Any,
    ) -> Task:
        task = Task(
            fn, *args, with_progress=on_progress is not None, with_cancel=with_cancel, **kwargs
        )
        relay = _Relay(
            on_result, on_error, on_progress, on_finished, lambda: self._forget(task, relay), self
        )
        self._relays.add(relay)
        queued = Qt.ConnectionType.QueuedConnection
        task.signals.result.connect(relay.result, queued)
        task.signals.error.connect(relay.error, queued)
        task.signals.progress.connect(relay.progress, queued)
        task.signals.finished.connect(relay.finished, queued)
        self._running.add(task)
        self.pool.start(task)
        return task

    def _forget(self, task: Task, relay: QObject) -> None:
        self._running.discard(task)
        self._relays.discard(relay)
        relay.deleteLater()

    @property
    def active(self) -> int:
        return len(self._running)

    def cancel_all(self) -> None:
        for task in list(self._running):
            task.cancel()

    def wait(self, msecs: int = 30_000) -> bool:
        """Cancel-friendly shutdown: wait for this runner's tasks."""
        ok = True
        for task in list(self._running):
            ok = task.done.wait(msecs / 1000) and ok
        return ok
