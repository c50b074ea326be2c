"""Uploads page: the persistent upload queue, against a small interface defined here.

Until the upload queue is attached (after the first paint) and while it is empty, the page
shows an empty state. Once attached, the page polls it in the background once a second, says
what each contribution is really doing (uploading, queued, waiting for an offline registry,
paused, failed) and enables only the actions that state allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

from app.domain.states import JobState, State
from app.domain.units import format_duration, format_rate
from app.ui.adapters.tasks import TaskRunner
from app.ui.adapters.upload_states import OFFLINE
from app.ui.text import human_size
from app.ui.theme import Theme
from app.ui.widgets.common import EmptyState, page_header


class UploadJob(Protocol):
    """One contribution's row (read-only: a snapshot)."""

    @property
    def item_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def state(self) -> str: ...  # a shown state: see STATE_LABELS
    @property
    def bytes_done(self) -> int: ...
    @property
    def bytes_total(self) -> int: ...
    @property
    def rate_bps(self) -> float: ...
    @property
    def eta_s(self) -> float | None: ...
    @property
    def last_error(self) -> str: ...


class UploadQueue(Protocol):
    """What the Uploads page needs from the upload service (see upload_adapter)."""

    def jobs(self) -> Sequence[UploadJob]: ...
    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]: ...
    def pause(self, item_id: int) -> None: ...
    def resume(self, item_id: int) -> None: ...
    def retry(self, item_id: int) -> None: ...
    def cancel(self, item_id: int) -> None: ...


# How each shown state reads, and which buttons it allows.
STATE_LABELS: dict[str, str] = {
    OFFLINE: "Waiting (offline)",
    State.QUEUED: "Queued",
    State.UPLOADING: "Uploading",
    JobState.PAUSED: "Paused",
    JobState.FAILED: "Failed",
    State.SUBMITTED: "Submitted",
    State.PENDING_REVIEW: "Pending review",
    State.ACCEPTED: "Accepted",
    State.REJECTED: "Rejected",
    State.DRAFT: "Cancelled",
}
ACTIONS_BY_STATE: dict[str, frozenset[str]] = {
    OFFLINE: frozenset({"pause", "retry", "cancel"}),  # retry = try the registry now
    State.QUEUED: frozenset({"pause", "cancel"}),
    State.UPLOADING: frozenset({"pause", "cancel"}),
    JobState.PAUSED: frozenset({"resume", "cancel"}),
    JobState.FAILED: frozenset({"retry", "cancel"}),
}
ACTION_TIPS = {
    "pause": "Pause the selected upload; Resume continues where it stopped",
    "resume": "Continue the selected paused upload",
    "retry": "Try the failed parts again now (or the registry, when it is offline)",
    "cancel": "Stop uploading the selected contribution; it goes back to your catalogue",
}
STATE_ROLE = Qt.ItemDataRole.UserRole + 1
TITLE_MIN_WIDTH = 220
FIXED_WIDTHS = {1: 130, 2: 120, 3: 84, 4: 64}  # State, Progress, Rate, ETA
ERROR_MIN_WIDTH = 140


def _eta(state: str, rate_bps: float, seconds: float | None) -> str:
    """Only a moving upload has an ETA; anything else (offline, queued, paused) has none."""
    if state != State.UPLOADING or not rate_bps or seconds is None or seconds <= 0:
        return "—"
    return format_duration(seconds)


def queue_summary(states: list[str]) -> str:
    """The status bar's words for the queue: what is moving, waiting, paused or failed."""
    counts = {s: states.count(s) for s in set(states)}
    parts = []
    for state, words in (
        (State.UPLOADING, "uploading"),
        (State.QUEUED, "queued"),
        (OFFLINE, "waiting for the registry"),
        (JobState.PAUSED, "paused"),
        (JobState.FAILED, "failed"),
    ):
        if counts.get(state):
            parts.append(f"{counts[state]:,} {words}")
    return ", ".join(parts) if parts else "queue idle"


class _QueueTree(QTreeWidget):
    """The queue table; it re-fits its columns whenever it is resized."""

    def __init__(self, on_resize: Any) -> None:
        super().__init__()
        self._on_resize = on_resize

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._on_resize()


class _EventBridge(QObject):
    """Queue events arrive on upload threads; this re-emits them on the GUI thread."""

    arrived = Signal(object)  # not `event`: that name is QObject.event()


class UploadsView(QWidget):
    summaryChanged = Signal(str)
    contributionDecided = Signal(int, str)  # item id, "accepted" | "rejected" | other state

    def __init__(
        self,
        queue: UploadQueue | None,
        runner: TaskRunner,
        theme: Theme,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.queue = queue
        self.theme = theme
        self.runner = runner
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(14)
        header, self.subtitle = page_header(
            "Uploads", "Signed contributions upload in the background and resume after restarts"
        )
        layout.addWidget(header)
        self.stack = QStackedWidget()
        text = "Submit an item from your catalogue and it appears here while it uploads."
        self.empty = EmptyState("uploads", "Nothing is uploading", text, theme)
        self.stack.addWidget(self.empty)
        table_page = QWidget()
        tl = QVBoxLayout(table_page)
        tl.setContentsMargins(0, 0, 0, 0)
        self.table = _QueueTree(self._fit_columns)
        self.table.setAccessibleName("Upload queue")
        self.table.setHeaderLabels(
            ["Contribution", "State", "Progress", "Rate", "ETA", "Last error"]
        )
        self.table.setUniformRowHeights(True)
        self.table.setAlternatingRowColors(False)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(60)
        for col in range(6):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
        tl.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for name in ("Pause", "Resume", "Retry", "Cancel"):
            b = QPushButton(name)
            b.setAccessibleName(f"{name} upload")
            action = name.lower()
            b.setToolTip(ACTION_TIPS[action])
            b.setEnabled(False)
            b.clicked.connect(lambda _=False, n=action: self._act(n))
            buttons.addWidget(b)
            self.buttons[action] = b
        buttons.addStretch(1)
        self.table.currentItemChanged.connect(lambda *_a: self._update_buttons())
        tl.addLayout(buttons)
        self.stack.addWidget(table_page)
        layout.addWidget(self.stack, 1)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.poll)
        self._polling = False
        self._bridge = _EventBridge(self)
        self._bridge.arrived.connect(self._queue_event)
        self._unsubscribe: Any = None
        if queue is not None:
            self.attach(queue)

    def attach(self, queue: UploadQueue) -> None:
        """Start showing a queue (built in the background after the first paint)."""
        self.queue = queue
        self._unsubscribe = queue.subscribe(self._bridge.arrived.emit)
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

    def _fit_columns(self) -> None:
        """Fixed State/Progress/Rate/ETA; the rest is shared by the name and the error, the
        name first: it never gets less than TITLE_MIN_WIDTH (the error text is in its
        tooltip)."""
        header = self.table.header()
        available = self.table.viewport().width()
        for col, width in FIXED_WIDTHS.items():
            header.resizeSection(col, width)
        rest = max(0, available - sum(FIXED_WIDTHS.values()))
        title = max(TITLE_MIN_WIDTH, self._title_width_wanted(), rest - 360)
        title = min(title, max(TITLE_MIN_WIDTH, rest - ERROR_MIN_WIDTH))
        header.resizeSection(0, title)
        header.resizeSection(5, max(ERROR_MIN_WIDTH, rest - title))

    def _title_width_wanted(self) -> int:
        fm = self.table.fontMetrics()
        widest = 0
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            if item is not None:
                widest = max(widest, fm.horizontalAdvance(item.text(0)))
        return widest + self.table.indentation() + 24

    def _show(self, jobs: Sequence[UploadJob]) -> None:
        self.stack.setCurrentIndex(1 if jobs else 0)
        selected = self.selected_item_id()
        self.table.clear()
        states: list[str] = []
        for job in jobs:
            state = str(job.state)
            rate = format_rate(job.rate_bps) if state == State.UPLOADING else "—"
            eta = _eta(state, job.rate_bps, job.eta_s)
            label = STATE_LABELS.get(state, state.capitalize())
            item = QTreeWidgetItem([job.title, label, "", rate, eta, job.last_error])
            shown_as = State.QUEUED if state == OFFLINE else state
            item.setForeground(1, self.theme.state_color(shown_as))
            item.setData(0, Qt.ItemDataRole.UserRole, job.item_id)
            item.setData(0, STATE_ROLE, state)
            item.setToolTip(0, job.title)
            item.setToolTip(5, job.last_error)
            self.table.addTopLevelItem(item)
            self._bar(item, job.title, job.bytes_done, job.bytes_total)
            for f in getattr(job, "files", ()):  # per-file progress under the contribution
                child = QTreeWidgetItem([f.label, f.state.capitalize(), "", "", "", f.last_error])
                child.setData(0, Qt.ItemDataRole.UserRole, job.item_id)
                child.setData(0, STATE_ROLE, state)
                child.setToolTip(0, f.label)
                item.addChild(child)
                self._bar(child, f.label, f.bytes_done, f.bytes_total)
            item.setExpanded(state in (State.QUEUED, State.UPLOADING))
            if job.item_id == selected:
                self.table.setCurrentItem(item)
            states.append(state)
        self._fit_columns()
        self._update_buttons()
        self.summaryChanged.emit(queue_summary(states))

    def selected_state(self) -> str | None:
        item = self.table.currentItem()
        if item is None:
            return None
        value = item.data(0, STATE_ROLE)
        return str(value) if value is not None else None

    def _update_buttons(self) -> None:
        allowed = ACTIONS_BY_STATE.get(self.selected_state() or "", frozenset())
        for action, button in self.buttons.items():
            button.setEnabled(self.queue is not None and action in allowed)

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
        if action not in ACTIONS_BY_STATE.get(self.selected_state() or "", frozenset()):
            return
        for button in self.buttons.values():  # until the queue's answer is shown
            button.setEnabled(False)
        self.runner.start(getattr(self.queue, action), item_id, on_finished=self.poll)

    def stop(self) -> None:
        self._timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
