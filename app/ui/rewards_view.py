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
    QComboBox,
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
from app.services.rewards import ContributionRewards, RewardsOverview
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


def _label(c: ContributionRewards) -> str:
    return c.title if c.item_id is None else f"#{c.item_id}  {c.title}"


def _fill(table: QTableWidget, rows: list[tuple[str, ...]], keys: list[str] | None = None) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            if c == 0 and keys is not None:
                item.setData(Qt.ItemDataRole.UserRole, keys[r])
            if c > 0:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(r, c, item)


def _titled(title: str, widget: QWidget) -> tuple[QWidget, QLabel]:
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
    return box, label


class RewardsView(QWidget):
    """`show_overview` takes the whole history (fills the contribution list); the chart,
    tiles and model/method tables then show the chosen scope: all contributions, or the one
    picked in the *Show* box or the contributions table (`scopeChanged` asks the window for
    that contribution's overview, which comes back through `show_scoped`)."""

    syncRequested = Signal()
    scopeChanged = Signal(object)  # a registry contribution id, or None for all

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme
        self.overview: RewardsOverview | None = None
        self._filling = False  # programmatic changes to the scope box and the table
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
        show = QLabel("Show")
        show.setStyleSheet(f"color: {theme.colors['muted']};")
        self.scope = QComboBox()
        self.scope.setMinimumWidth(220)
        self.scope.setToolTip("All contributions, or one of them")
        self.scope.addItem("All contributions", None)
        self.scope.currentIndexChanged.connect(self._scope_picked)
        top.addWidget(show, 0, Qt.AlignmentFlag.AlignBottom)
        top.addWidget(self.scope, 0, Qt.AlignmentFlag.AlignBottom)
        top.addSpacing(12)
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
        chart_box, self.chart_title = _titled("Earned per day, all contributions", self.chart)
        grid.addWidget(chart_box, 1, 0, 1, 3)

        self.by_contribution = _table(["Contribution", "Earned", "Entries"])
        self.by_contribution.setToolTip("Select a contribution to chart it alone")
        self.by_contribution.itemSelectionChanged.connect(self._row_picked)
        self.by_model = _table(["Model", "Earned"])
        self.by_method = _table(["Attribution method", "Earned"])
        grid.addWidget(_titled("By contribution", self.by_contribution)[0], 2, 0)
        grid.addWidget(_titled("By model", self.by_model)[0], 2, 1)
        grid.addWidget(_titled("By attribution method", self.by_method)[0], 2, 2)
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
        self._filling = True
        try:
            chosen = self.scope.currentData()
            self.scope.clear()
            self.scope.addItem("All contributions", None)
            for c in overview.by_contribution:
                self.scope.addItem(_label(c), c.contribution_id)
            index = max(0, self.scope.findData(chosen)) if chosen is not None else 0
            self.scope.setCurrentIndex(index)
            _fill(
                self.by_contribution,
                [
                    (_label(c), format_micro(c.reward_micro), f"{c.entries:,}")
                    for c in overview.by_contribution
                ],
                [c.contribution_id for c in overview.by_contribution],
            )
        finally:
            self._filling = False
        self.contrib_value.setText(str(len(overview.by_contribution)))
        self.contrib_note.setText("with rewards")
        self.stack.setCurrentIndex(1)
        scope = self.scope.currentData()
        if scope is None:
            self.show_scoped(overview)
        else:
            self.scopeChanged.emit(scope)  # the window loads that contribution's overview

    def show_scoped(self, overview: RewardsOverview | None) -> None:
        """Tiles, chart and model/method tables for the current scope."""
        if overview is None:
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
        scope = self.scope.currentText() if self.scope.currentData() is not None else ""
        self.chart_title.setText(
            f"Earned per day: {scope}" if scope else "Earned per day, all contributions"
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

    def _scope_picked(self, _index: int) -> None:
        if self._filling:
            return
        scope = self.scope.currentData()
        self._filling = True
        try:  # keep the table's selection in step with the box
            ids = [
                self.by_contribution.item(r, 0).data(Qt.ItemDataRole.UserRole)
                for r in range(self.by_contribution.rowCount())
            ]
            if scope in ids:
                self.by_contribution.selectRow(ids.index(scope))
            else:
                self.by_contribution.clearSelection()
        finally:
            self._filling = False
        if scope is None and self.overview is not None:
            self.show_scoped(self.overview)
        else:
            self.scopeChanged.emit(scope)

    def _row_picked(self) -> None:
        if self._filling:
            return
        rows = self.by_contribution.selectionModel().selectedRows()
        if not rows:
            return
        cid = self.by_contribution.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)
        index = self.scope.findData(cid)
        if index >= 0:
            self.scope.setCurrentIndex(index)
