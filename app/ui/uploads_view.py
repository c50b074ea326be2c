"""Uploads page: the persistent upload queue, against a small interface defined here.

The upload service (issue 5) is not in this build yet; until it is, the page shows an honest
empty state. When a service satisfying UploadQueue is present, the page polls it in the
background once a second and offers Pause / Resume / Retry / Cancel.
"""

from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
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
    """What the Uploads page needs from the upload service (see upload_adapter)."""

    def jobs(self) -> list[UploadJob]: ...
    def subscribe(self, callback: Any) -> Any: ...
    def pause(self, item_id: int) -> None: ...
    def resume(self, item_id: int) -> None: ...
    def retry(self, item_id: int) -> None: ...
    def cancel(self, item_id: int) -> None: ...


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


class _EventBridge(QObject):
    """Queue events arrive on upload threads; this re-emits them on the GUI thread."""

    event = Signal(object)


class UploadsView(QWidget):
    summaryChanged = Signal(str)
    contributionDecided = Signal(int, str)  # item id, "accepted" | "rejected" | other state

    def __init__(
        self,
        queue: UploadQueue | None,
        runner: TaskRunner,
        theme: Theme,
        parent: QWidget | None = None,
        *,
        available: bool | None = None,
    ) -> None:
        super().__init__(parent)
        self.queue = queue
        self.theme = theme
        available = queue is not None if available is None else available
        self.runner = runner
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(14)
        header, self.subtitle = page_header(
            "Uploads", "Signed contributions upload in the background and resume after restarts"
        )
        layout.addWidget(header)
        self.stack = QStackedWidget()
        if not available:
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
        self.table.setHeaderLabels(
            ["Contribution", "State", "Progress", "Rate", "ETA", "Last error"]
        )
        self.table.setUniformRowHeights(True)
        self.table.setAlternatingRowColors(False)
        header = self.table.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        for col, width in ((1, 110), (2, 200), (3, 90), (4, 80), (5, 260)):
            self.table.setColumnWidth(col, width)
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
        self._bridge = _EventBridge(self)
        self._bridge.event.connect(self._queue_event)
        self._unsubscribe: Any = None
        if queue is not None:
            self.attach(queue)

    def attach(self, queue: UploadQueue) -> None:
        """Start showing a queue (built in the background after the first paint)."""
        self.queue = queue
        self._unsubscribe = queue.subscribe(self._bridge.event.emit)
        self._timer.start()
        self.poll()

    @Slot(object)
    def _queue_event(self, event: Any) -> None:
        if getattr(event, "kind", "") == "contribution" and event.item_id is not None:
            self.contributionDecided.emit(int(event.item_id), str(event.message))

    def poll(self) -> None:
        if self.queue is None or self._polling:
            return
        self._polling = True
        self.runner.start(self.queue.jobs, on_result=self._show, on_finished=self._poll_done)

    def _poll_done(self) -> None:
        self._polling = False

    def _show(self, jobs: list[Any]) -> None:
        self.stack.setCurrentIndex(1 if jobs else 0)
        selected = self.selected_item_id()
        self.table.clear()
        active = 0
        for job in jobs:
            moving = job.state in ("queued", "uploading")
            rate = f"{human_size(int(job.rate_bps))}/s" if job.rate_bps and moving else "—"
            eta = _eta(job.eta_s) if moving else "—"
            item = QTreeWidgetItem(
                [job.title, job.state.capitalize(), "", rate, eta, job.last_error]
            )
            item.setForeground(1, self.theme.state_color(job.state))
            item.setData(0, Qt.ItemDataRole.UserRole, job.item_id)
            item.setToolTip(5, job.last_error)
            self.table.addTopLevelItem(item)
            self._bar(item, job.title, job.bytes_done, job.bytes_total)
            for f in getattr(job, "files", ()):  # per-file progress under the contribution
                child = QTreeWidgetItem([f.label, f.state.capitalize(), "", "", "", f.last_error])
                child.setData(0, Qt.ItemDataRole.UserRole, job.item_id)
                item.addChild(child)
                self._bar(child, f.label, f.bytes_done, f.bytes_total)
            item.setExpanded(job.state in ("queued", "uploading"))
            if job.item_id == selected:
                self.table.setCurrentItem(item)
            active += job.state in ("queued", "uploading")
        self.summaryChanged.emit(f"{active} uploading" if active else "queue idle")

    def _bar(self, item: QTreeWidgetItem, title: str, done: int, total: int) -> None:
        holder = QWidget()
        box = QVBoxLayout(holder)
        box.setContentsMargins(4, 0, 12, 0)
        bar = QProgressBar()
        bar.setRange(0, 1000)
        bar.setValue(int(1000 * done / total) if total else (1000 if done else 0))
        bar.setTextVisible(False)
        bar.setFixedHeight(8)
        bar.setAccessibleName(f"Progress of {title}")
        bar.setToolTip(f"{human_size(done)} of {human_size(total)}")
        box.addWidget(bar, 0, Qt.AlignmentFlag.AlignVCenter)
        self.table.setItemWidget(item, 2, holder)

    def selected_item_id(self) -> int | None:
        item = self.table.currentItem()
        if item is None:
            return None
        value = item.data(0, Qt.ItemDataRole.UserRole)
        return int(value) if value is not None else None

    def _act(self, action: str) -> None:
        item_id = self.selected_item_id()
        if self.queue is None or item_id is None:
            return
        self.runner.start(getattr(self.queue, action), item_id, on_finished=self.poll)

    def stop(self) -> None:
        self._timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
