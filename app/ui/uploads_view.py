"""Uploads page: the persistent upload queue, against a small interface defined here.

The upload service (issue 5) is not in this build yet; until it is, the page shows an honest
empty state. When a service satisfying UploadQueue is present, the page polls it in the
background once a second and offers Pause / Resume / Retry / Cancel.
"""

from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ui.tasks import TaskRunner
from app.ui.text import human_size
from app.ui.theme import Theme
from app.ui.widgets import EmptyState, page_header


class UploadJob(Protocol):
    item_id: int
    title: str
    state: str  # queued | uploading | paused | submitted | accepted | rejected | failed
    bytes_done: int
    bytes_total: int
    rate_bps: float
    eta_s: float | None
    last_error: str


class UploadQueue(Protocol):
    """What the Uploads page needs from the upload service."""

    def jobs(self) -> list[UploadJob]: ...
    def pause(self, item_id: int) -> None: ...
    def resume(self, item_id: int) -> None: ...
    def retry(self, item_id: int) -> None: ...
    def cancel(self, item_id: int) -> None: ...


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


class UploadsView(QWidget):
    summaryChanged = Signal(str)

    def __init__(
        self,
        queue: UploadQueue | None,
        runner: TaskRunner,
        theme: Theme,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.queue = queue
        self.runner = runner
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(14)
        header, self.subtitle = page_header(
            "Uploads", "Signed contributions upload in the background and resume after restarts"
        )
        layout.addWidget(header)
        self.stack = QStackedWidget()
        if queue is None:
            text = (
                "Contributions you submit are queued here with per-file progress, rate and ETA. "
                "Uploading is not part of this build yet: the Submit action becomes available "
                "when the upload service is installed."
            )
        else:
            text = "Submit an item from your catalogue and it appears here while it uploads."
        self.empty = EmptyState("uploads", "Nothing is uploading", text, theme)
        self.stack.addWidget(self.empty)
        table_page = QWidget()
        tl = QVBoxLayout(table_page)
        tl.setContentsMargins(0, 0, 0, 0)
        self.table = QTreeWidget()
        self.table.setAccessibleName("Upload queue")
        self.table.setRootIsDecorated(False)
        self.table.setHeaderLabels(
            ["Contribution", "State", "Progress", "Rate", "ETA", "Last error"]
        )
        self.table.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        tl.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for name in ("Pause", "Resume", "Retry", "Cancel"):
            b = QPushButton(name)
            b.setAccessibleName(f"{name} upload")
            action = name.lower()
            b.clicked.connect(lambda _=False, n=action: self._act(n))
            buttons.addWidget(b)
            self.buttons[action] = b
        buttons.addStretch(1)
        tl.addLayout(buttons)
        self.stack.addWidget(table_page)
        layout.addWidget(self.stack, 1)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.poll)
        self._polling = False
        if queue is not None:
            self._timer.start()

    def poll(self) -> None:
        if self.queue is None or self._polling:
            return
        self._polling = True
        self.runner.start(self.queue.jobs, on_result=self._show, on_finished=self._poll_done)

    def _poll_done(self) -> None:
        self._polling = False

    def _show(self, jobs: list[Any]) -> None:
        self.stack.setCurrentIndex(1 if jobs else 0)
        self.table.clear()
        active = 0
        for job in jobs:
            item = QTreeWidgetItem(
                [
                    job.title,
                    job.state,
                    "",
                    f"{human_size(int(job.rate_bps))}/s",
                    _eta(job.eta_s),
                    job.last_error,
                ]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, job.item_id)
            self.table.addTopLevelItem(item)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * job.bytes_done / job.bytes_total) if job.bytes_total else 0)
            bar.setAccessibleName(f"Progress of {job.title}")
            self.table.setItemWidget(item, 2, bar)
            active += job.state in ("queued", "uploading")
        self.summaryChanged.emit(f"{active} uploading" if active else "queue idle")

    def _act(self, action: str) -> None:
        item = self.table.currentItem()
        if self.queue is None or item is None:
            return
        item_id = int(item.data(0, Qt.ItemDataRole.UserRole))
        self.runner.start(getattr(self.queue, action), item_id, on_finished=self.poll)

    def stop(self) -> None:
        self._timer.stop()
