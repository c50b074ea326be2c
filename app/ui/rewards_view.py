"""Rewards page: what downstream models did with your data and what it earned, from the
catalogue's synced copy (so it reads the same offline).

The page never does I/O: the main window loads a RewardsOverview on its task runner and calls
`show_overview`. pyqtgraph is imported when the page is first built (first visit), never for
the first paint of the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.money import format_micro
from app.services.rewards import RewardsOverview
from app.ui.theme import Theme
from app.ui.widgets import EmptyState, page_header

DAY_SECONDS = 86_400
METHOD_LABELS = {
    "influence": "Influence",
    "exact-match": "Exact match",
    "retrieval": "Retrieval",
}


def local_time(moment: datetime | None) -> datetime | None:
    """A stored UTC time (naive from SQLite) in the computer's time zone."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone()


def _tile(title: str, theme: Theme) -> tuple[QFrame, QLabel, QLabel]:
    frame = QFrame()
    frame.setObjectName("rewardTile")
    frame.setStyleSheet(
        f"#rewardTile {{ background: {theme.colors['surface']};"
        f" border: 1px solid {theme.colors['border']}; border-radius: 8px; }}"
    )
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(14, 10, 14, 10)
    layout.setSpacing(2)
    caption = QLabel(title)
    caption.setStyleSheet(f"color: {theme.colors['muted']};")
    value = QLabel("—")
    value.setStyleSheet(f"color: {theme.colors['text']}; font-size: 20px; font-weight: 600;")
    note = QLabel("")
    note.setStyleSheet(f"color: {theme.colors['muted']};")
    layout.addWidget(caption)
    layout.addWidget(value)
    layout.addWidget(note)
    return frame, value, note


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    header = table.horizontalHeader()
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for col in range(1, len(headers)):
        header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
    return table


def _fill(table: QTableWidget, rows: list[tuple[str, ...]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            if c > 0:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(r, c, item)


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(6)
    label = QLabel(title)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    layout.addWidget(label)
    layout.addWidget(widget, 1)
    return box


class RewardsView(QWidget):
    syncRequested = Signal()

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme
        self.overview: RewardsOverview | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(14)

        top = QHBoxLayout()
        header, _ = page_header(
            "Rewards", "Which models used your data, how, and what it earned you"
        )
        top.addWidget(header, 1)
        self.last_sync = QLabel("Not synced yet")
        self.last_sync.setStyleSheet(f"color: {theme.colors['muted']};")
        self.sync_button = QPushButton("Sync now")
        self.sync_button.setToolTip("Fetch new usage and rewards from the registry (F5)")
        self.sync_button.clicked.connect(self.syncRequested)
        top.addWidget(self.last_sync, 0, Qt.AlignmentFlag.AlignBottom)
        top.addWidget(self.sync_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(top)

        self.stack = QStackedWidget()
        self.empty = EmptyState(
            "rewards",
            "No usage yet",
            "Usage and rewards appear here after your first accepted contribution syncs. "
            "They are kept on this computer, so you can review them offline.",
            theme,
        )
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self._build_content())
        layout.addWidget(self.stack, 1)

    # -- building --------------------------------------------------------------------------
    def _build_content(self) -> QWidget:
        content = QWidget()
        grid = QGridLayout(content)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(14)

        tiles = QHBoxLayout()
        tiles.setSpacing(14)
        frame, self.total_value, self.total_note = _tile("Earned (units)", self.theme)
        tiles.addWidget(frame, 1)
        frame, self.events_value, self.events_note = _tile("Attributed events", self.theme)
        tiles.addWidget(frame, 1)
        frame, self.contrib_value, self.contrib_note = _tile("Contributions earning", self.theme)
        tiles.addWidget(frame, 1)
        frame, self.models_value, self.models_note = _tile("Models using your data", self.theme)
        tiles.addWidget(frame, 1)
        grid.addLayout(tiles, 0, 0, 1, 3)

        colors = self.theme.colors
        pg.setConfigOptions(antialias=True)
        self.chart = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.chart.setBackground(colors["surface"])
        self.chart.setMenuEnabled(False)
        self.chart.setMouseEnabled(x=False, y=False)
        self.chart.hideButtons()
        self.chart.showGrid(x=False, y=True, alpha=0.15)
        for name in ("left", "bottom"):
            axis = self.chart.getAxis(name)
            axis.setPen(pg.mkPen(colors["border"]))
            axis.setTextPen(pg.mkPen(colors["muted"]))
        left = self.chart.getAxis("left")
        left.enableAutoSIPrefix(False)  # amounts are money: never "x0.001"
        left.setLabel("earned", color=colors["muted"])
        self.chart.setMinimumHeight(220)
        self.bars = pg.BarGraphItem(
            x=[], height=[], width=DAY_SECONDS * 0.8, brush=colors["accent"], pen=None
        )
        self.bars.setZValue(10)  # over the grid lines
        self.chart.addItem(self.bars)
        grid.addWidget(_titled("Earned per day (from usage by day)", self.chart), 1, 0, 1, 3)

        self.by_contribution = _table(["Contribution", "Earned", "Entries"])
        self.by_model = _table(["Model", "Earned"])
        self.by_method = _table(["Attribution method", "Earned"])
        grid.addWidget(_titled("By contribution", self.by_contribution), 2, 0)
        grid.addWidget(_titled("By model", self.by_model), 2, 1)
        grid.addWidget(_titled("By attribution method", self.by_method), 2, 2)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(2, 2)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(2, 2)
        return content

    # -- state -----------------------------------------------------------------------------
    def set_syncing(self, busy: bool) -> None:
        self.sync_button.setEnabled(not busy)
        self.sync_button.setText("Syncing…" if busy else "Sync now")

    def _empty_text(self, title: str, text: str) -> None:
        self.empty.title.setText(title)
        self.empty.text.setText(text)

    def show_overview(self, overview: RewardsOverview | None) -> None:
        self.overview = overview
        if overview is None:
            self._empty_text(
                "No identity yet",
                "Rewards belong to your key. Create your identity in Settings, submit a "
                "contribution, and its usage and rewards will show here.",
            )
            self.last_sync.setText("")
            self.stack.setCurrentIndex(0)
            return
        when = local_time(overview.last_sync)
        self.last_sync.setText(f"Last synced {when:%d %b %Y, %H:%M}" if when else "Not synced yet")
        if not overview.entries and not overview.daily:
            self._empty_text(
                "No usage yet",
                "Usage and rewards appear here after your first accepted contribution syncs "
                "(Sync now, F5). They are kept on this computer, so you can review them "
                "offline.",
            )
            self.stack.setCurrentIndex(0)
            return
        events = sum(e for _d, e, _r in overview.daily)
        self.total_value.setText(format_micro(overview.total_micro))
        self.total_note.setText(f"{overview.entries:,} ledger entries")
        self.events_value.setText(f"{events:,}")
        if overview.daily:
            first, last = overview.daily[0][0], overview.daily[-1][0]
            self.events_note.setText(f"{first:%d %b %Y} – {last:%d %b %Y}")
        else:
            self.events_note.setText("")
        self.contrib_value.setText(str(len(overview.by_contribution)))
        self.contrib_note.setText("with rewards")
        self.models_value.setText(str(len(overview.by_model)))
        demo = sum(1 for m in overview.by_model if m[2])
        self.models_note.setText(f"{demo} demo (simulated)" if demo else "")
        xs = [
            datetime.combine(d, time(), UTC).timestamp() + DAY_SECONDS / 2
            for d, _e, _r in overview.daily
        ]
        heights = [r / 1_000_000 for _d, _e, r in overview.daily]
        self.bars.setOpts(x=xs, height=heights, width=DAY_SECONDS * 0.8)
        self.chart.enableAutoRange()
        _fill(
            self.by_contribution,
            [
                (
                    c.title if c.item_id is None else f"#{c.item_id}  {c.title}",
                    format_micro(c.reward_micro),
                    f"{c.entries:,}",
                )
                for c in overview.by_contribution
            ],
        )
        _fill(
            self.by_model,
            [
                (
                    f"{name} (demo)" if demo_model and "demo" not in name.lower() else name,
                    format_micro(micro),
                )
                for _mid, name, demo_model, micro in overview.by_model
            ],
        )
        _fill(
            self.by_method,
            [(METHOD_LABELS.get(m, m), format_micro(v)) for m, v in overview.by_method],
        )
        self.stack.setCurrentIndex(1)
