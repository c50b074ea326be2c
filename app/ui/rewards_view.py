"""Rewards page: what downstream models did with your data and what it earned, from the
catalogue's synced copy (so it reads the same offline).

The page never does I/O: the main window loads a RewardsOverview on its task runner and calls
`show_overview`. pyqtgraph is imported when the page is first built (first visit), never for
the first paint of the window.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QCursor, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.domain.money import format_amount, format_micro
from app.domain.units import method_label
from app.services.rewards import ContributionRewards, RewardsOverview
from app.ui.theme import Theme
from app.ui.widgets import EmptyState, page_header

DAY_SECONDS = 86_400
# One line each: what the registry means when an operator reports a use by this method.
METHOD_HELP = {
    "influence": "Influence: your data measurably shaped the model's answer "
    "(estimated with influence functions on its training).",
    "exact-match": "Exact match: the model's output repeated text from your data word for word.",
    "retrieval": "Retrieval: the model looked up your document to answer and cited it (RAG).",
}
WIDE_PX = 1000  # from this page width the three tables sit side by side
TICK_GAP_PX = 78  # room per date label on the chart's axis


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
    caption.setObjectName("tileCaption")
    caption.setStyleSheet(f"color: {theme.colors['muted']};")
    value = QLabel("—")
    value.setStyleSheet(f"color: {theme.colors['text']}; font-size: 20px; font-weight: 600;")
    note = QLabel("")
    note.setStyleSheet(f"color: {theme.colors['muted']};")
    layout.addWidget(caption)
    layout.addWidget(value)
    layout.addWidget(note)
    return frame, value, note


class DayAxis(pg.AxisItem):
    """Dates under the bars, one label per so many days that labels never touch: every day,
    2 days, a week, two weeks, a month... whatever the width allows."""

    STEPS = (1, 2, 7, 14, 28, 56, 91, 182, 364)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[Any]:  # noqa: N802, N803
        if size <= 0 or maxVal <= minVal:
            return []
        days_per_px = (maxVal - minVal) / DAY_SECONDS / size
        need = TICK_GAP_PX * days_per_px
        step = next((d for d in self.STEPS if d >= need), self.STEPS[-1])
        first = math.ceil(minVal / DAY_SECONDS)
        if step >= 7:  # weeks start on Mondays: 1970-01-01 was a Thursday
            first += (-(first + 3)) % 7
        ticks = [
            (d * DAY_SECONDS + DAY_SECONDS / 2)
            for d in range(first, int(maxVal // DAY_SECONDS) + 1, step)
        ]
        return [(step * DAY_SECONDS, ticks)]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [
            datetime.fromtimestamp(v - DAY_SECONDS / 2, UTC).strftime("%d %b").lstrip("0")
            for v in values
        ]


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


def _fill(
    table: QTableWidget,
    rows: list[tuple[str, ...]],
    keys: list[str] | None = None,
    tips: list[tuple[str, ...]] | None = None,
) -> None:
    """Rows of text; `tips` per cell ("" for none): the exact amount behind a rounded one, what
    a method means, a name too long for its column."""
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            if c == 0 and keys is not None:
                item.setData(Qt.ItemDataRole.UserRole, keys[r])
            if c > 0:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            tip = tips[r][c] if tips is not None else ""
            item.setToolTip(tip or (text if c == 0 else ""))
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


def _exact(micro: int, unit: str) -> str:
    return f"{format_micro(micro, unit=unit)} exactly"


class RewardsView(QWidget):
    """`show_overview` takes the whole history (fills the contribution list); the chart,
    tiles and model/method tables then show the chosen scope: all contributions, or the one
    picked in the *Show* box or the contributions table (`scopeChanged` asks the window for
    that contribution's overview, which comes back through `show_scoped`).

    `set_offline` says whether the registry could not be reached: the page then keeps showing
    what is stored, with "Offline — data from <last sync>" where the sync time is."""

    syncRequested = Signal()
    scopeChanged = Signal(object)  # a registry contribution id, or None for all

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme
        self.overview: RewardsOverview | None = None
        self.scoped: RewardsOverview | None = None
        self.offline_reason: str | None = None
        self._filling = False  # programmatic changes to the scope box and the table
        self._wide: bool | None = None
        self._pair: QWidget | None = None  # wide mode: the model and method tables' row
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(10)

        top = QHBoxLayout()
        header, _ = page_header(
            "Rewards", "Which models used your data, how, and what it earned you"
        )
        top.addWidget(header, 1)
        self.last_sync = QLabel("Not synced yet")
        self.last_sync.setObjectName("rewardsSyncState")
        self.sync_button = QPushButton("Sync now")
        self.sync_button.setToolTip("Fetch new usage and rewards from the registry (F5)")
        self.sync_button.clicked.connect(self.syncRequested)
        top.addWidget(self.last_sync, 0, Qt.AlignmentFlag.AlignBottom)
        top.addSpacing(8)
        top.addWidget(self.sync_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(top)

        controls = QHBoxLayout()
        show = QLabel("Show")
        show.setStyleSheet(f"color: {theme.colors['muted']};")
        self.scope = QComboBox()
        self.scope.setMinimumWidth(260)
        self.scope.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.scope.setToolTip("All contributions, or one of them")
        self.scope.addItem("All contributions", None)
        self.scope.currentIndexChanged.connect(self._scope_picked)
        controls.addWidget(show)
        controls.addWidget(self.scope)
        controls.addStretch(1)
        layout.addLayout(controls)

        self.stack = QStackedWidget()
        self.empty = EmptyState(
            "rewards",
            "No usage yet",
            "Usage and rewards appear here after your first accepted contribution syncs. "
            "They are kept on this computer, so you can review them offline.",
            theme,
        )
        self.stack.addWidget(self.empty)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self._build_content())
        self.stack.addWidget(scroll)
        layout.addWidget(self.stack, 1)
        self._show_sync_state()

    # -- building --------------------------------------------------------------------------
    def _build_content(self) -> QWidget:
        content = QWidget()
        grid = QGridLayout(content)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(14)
        self.grid = grid

        tiles = QHBoxLayout()
        tiles.setSpacing(14)
        frame, self.total_value, self.total_note = _tile("Earned", self.theme)
        self.total_caption = frame.findChild(QLabel, "tileCaption")
        tiles.addWidget(frame, 1)
        frame, self.events_value, self.events_note = _tile("Attributed events", self.theme)
        tiles.addWidget(frame, 1)
        frame, self.contrib_value, self.contrib_note = _tile("Contributions earning", self.theme)
        tiles.addWidget(frame, 1)
        frame, self.models_value, self.models_note = _tile("Models using your data", self.theme)
        tiles.addWidget(frame, 1)
        grid.addLayout(tiles, 0, 0, 1, 2)

        colors = self.theme.colors
        pg.setConfigOptions(antialias=True)
        self.axis = DayAxis("bottom")
        self.chart = pg.PlotWidget(axisItems={"bottom": self.axis})
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
        self.chart.setMinimumHeight(200)
        self.bars = pg.BarGraphItem(
            x=[], height=[], width=DAY_SECONDS * 0.8, brush=colors["accent"], pen=None
        )
        self.bars.setZValue(10)  # over the grid lines
        self.chart.addItem(self.bars)
        self.chart.scene().sigMouseMoved.connect(self._hover)
        chart_box, self.chart_title = _titled("Earned per day, all contributions", self.chart)
        grid.addWidget(chart_box, 1, 0, 1, 2)

        self.by_contribution = _table(["Contribution", "Earned", "Entries"])
        self.by_contribution.setToolTip("Select a contribution to chart it alone")
        self.by_contribution.itemSelectionChanged.connect(self._row_picked)
        self.by_model = _table(["Model", "Earned"])
        self.by_method = _table(["Method", "Earned"])
        self.by_method.horizontalHeaderItem(0).setToolTip("\n".join(METHOD_HELP.values()))
        for table in (self.by_contribution, self.by_model, self.by_method):
            table.setMinimumHeight(170)
        self.contribution_box, _ = _titled("By contribution", self.by_contribution)
        self.model_box, _ = _titled("By model", self.by_model)
        self.method_box, method_title = _titled("By attribution method", self.by_method)
        method_title.setToolTip("\n".join(METHOD_HELP.values()))
        self.method_help = QToolButton()
        self.method_help.setText("?")
        self.method_help.setAutoRaise(True)
        self.method_help.setFixedSize(18, 18)
        self.method_help.setStyleSheet(
            f"QToolButton {{ padding: 0px; margin: 0px; border: 1px solid {colors['border']};"
            f" border-radius: 9px; color: {colors['muted']}; font-size: 11px;"
            " font-weight: 600; }"
        )
        self.method_help.setAccessibleName("What the attribution methods mean")
        self.method_help.setToolTip("\n".join(METHOD_HELP.values()))
        self.method_help.clicked.connect(
            lambda: QToolTip.showText(QCursor.pos(), self.method_help.toolTip(), self.method_help)
        )
        title_row = QHBoxLayout()
        title_row.setContentsMargins(0, 0, 0, 0)
        title_row.setSpacing(4)
        box_layout = self.method_box.layout()
        box_layout.removeWidget(method_title)
        title_row.addWidget(method_title)
        title_row.addWidget(self.method_help)
        title_row.addStretch(1)
        assert isinstance(box_layout, QVBoxLayout)
        box_layout.insertLayout(0, title_row)
        self._arrange(wide=True)
        grid.setRowStretch(1, 3)
        return content

    def _arrange(self, *, wide: bool) -> None:
        """Wide: the three tables side by side. Narrow (a 1024-pixel window): contributions
        across the page, models and methods side by side under it, so no name is cut."""
        if wide == self._wide:
            return
        self._wide = wide
        grid = self.grid
        old = self._pair
        if old is not None:
            grid.removeWidget(old)
        for box in (self.contribution_box, self.model_box, self.method_box):
            grid.removeWidget(box)
        # Two grid columns; wide mode splits the second between models and methods.
        if wide:
            pair = QWidget()
            row = QHBoxLayout(pair)
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(14)
            row.addWidget(self.model_box, 3)
            row.addWidget(self.method_box, 2)
            grid.addWidget(self.contribution_box, 2, 0)
            grid.addWidget(pair, 2, 1)
            grid.setColumnStretch(0, 1)
            grid.setColumnStretch(1, 1)
            grid.setRowStretch(2, 2)
            grid.setRowStretch(3, 0)
        else:
            grid.addWidget(self.contribution_box, 2, 0, 1, 2)
            grid.addWidget(self.model_box, 3, 0)
            grid.addWidget(self.method_box, 3, 1)
            grid.setColumnStretch(0, 3)
            grid.setColumnStretch(1, 2)
            grid.setRowStretch(2, 2)
            grid.setRowStretch(3, 2)
        if old is not None:
            old.deleteLater()  # the tables it held have moved to the grid
        self._pair = pair if wide else None

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._arrange(wide=event.size().width() >= WIDE_PX)

    # -- state -----------------------------------------------------------------------------
    def set_syncing(self, busy: bool) -> None:
        self.sync_button.setEnabled(not busy)
        self.sync_button.setText("Syncing…" if busy else "Sync now")

    def set_offline(self, reason: str | None) -> None:
        """The registry could not be reached (`reason`), or it could (None)."""
        self.offline_reason = reason
        self._show_sync_state()

    def _show_sync_state(self) -> None:
        overview = self.overview
        when = local_time(overview.last_sync) if overview is not None else None
        stamp = f"{when:%d %b %Y, %H:%M}" if when else ""
        if self.offline_reason is not None and overview is not None:
            text = f"Offline — data from {stamp}" if stamp else "Offline — not synced yet"
            color = self.theme.colors["warning"]
            tip = f"{self.offline_reason}\nWhat is shown was stored at the last sync."
        else:
            text = f"Last synced {stamp}" if stamp else ("Not synced yet" if overview else "")
            color = self.theme.colors["muted"]
            tip = f"From {overview.registry}" if overview is not None else ""
        self.last_sync.setText(text)
        self.last_sync.setToolTip(tip)
        self.last_sync.setStyleSheet(f"color: {color};")

    def _empty_text(self, title: str, text: str) -> None:
        self.empty.title.setText(title)
        self.empty.text.setText(text)

    def show_overview(self, overview: RewardsOverview | None) -> None:
        self.overview = overview
        self._show_sync_state()
        if overview is None:
            self._empty_text(
                "No identity yet",
                "Rewards belong to your key. Create your identity in Settings, submit a "
                "contribution, and its usage and rewards will show here.",
            )
            self.stack.setCurrentIndex(0)
            return
        if not overview.entries and not overview.daily:
            self._empty_text(
                "No usage yet",
                "Usage and rewards appear here after your first accepted contribution syncs "
                "(Sync now, F5). They are kept on this computer, so you can review them "
                "offline.",
            )
            self.stack.setCurrentIndex(0)
            return
        unit = overview.unit
        self.total_caption.setText(f"Earned ({unit})")
        for table in (self.by_contribution, self.by_model, self.by_method):
            header = table.horizontalHeaderItem(1)
            header.setText(unit[:1].upper() + unit[1:])
            header.setToolTip(f"Earned, in {unit} (the registry's unit)")
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
                    (_label(c), format_amount(c.reward_micro), f"{c.entries:,}")
                    for c in overview.by_contribution
                ],
                [c.contribution_id for c in overview.by_contribution],
                [
                    (
                        f"{_label(c)}\n{c.contribution_id}",
                        _exact(c.reward_micro, unit),
                        f"{c.entries:,} ledger entries",
                    )
                    for c in overview.by_contribution
                ],
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
        self.scoped = overview
        unit = overview.unit
        events = sum(e for _d, e, _r in overview.daily)
        self.total_value.setText(format_amount(overview.total_micro))
        self.total_value.setToolTip(_exact(overview.total_micro, unit))
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
        self.chart.getAxis("left").setLabel(f"earned ({unit})", color=self.theme.colors["muted"])
        scope = self.scope.currentText() if self.scope.currentData() is not None else ""
        self.chart_title.setText(
            f"Earned per day: {scope}" if scope else "Earned per day, all contributions"
        )
        models = [
            (
                f"{name} (demo)" if demo_model and "demo" not in name.lower() else name,
                micro,
                mid,
            )
            for mid, name, demo_model, micro in overview.by_model
        ]
        _fill(
            self.by_model,
            [(name, format_amount(micro)) for name, micro, _mid in models],
            tips=[(f"{name}\n{mid}", _exact(micro, unit)) for name, micro, mid in models],
        )
        _fill(
            self.by_method,
            [(method_label(m), format_amount(v)) for m, v in overview.by_method],
            tips=[
                (METHOD_HELP.get(m, method_label(m)), _exact(v, unit))
                for m, v in overview.by_method
            ],
        )

    # -- chart tooltips ------------------------------------------------------------------------
    def bar_tip(self, x: float) -> str | None:
        """The tooltip of the bar at chart position `x` (seconds since the epoch), if any."""
        overview = self.scoped
        if overview is None or not overview.daily:
            return None
        day = datetime.fromtimestamp(x, UTC).date()
        for d, events, micro in overview.daily:
            if d == day and abs(x - _bar_centre(d)) <= DAY_SECONDS * 0.4:
                noun = "event" if events == 1 else "events"
                return (
                    f"{d:%a %d %b %Y}\n{format_amount(micro, unit=overview.unit)} earned\n"
                    f"{events:,} attributed {noun}"
                )
        return None

    def _hover(self, pos: QPointF) -> None:
        view = self.chart.getPlotItem().vb
        if not view.sceneBoundingRect().contains(pos):
            QToolTip.hideText()
            return
        tip = self.bar_tip(view.mapSceneToView(pos).x())
        if tip:
            QToolTip.showText(QCursor.pos(), tip, self.chart)
        else:
            QToolTip.hideText()

    # -- picking a scope -----------------------------------------------------------------------
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


def _bar_centre(day: date) -> float:
    return datetime.combine(day, time(), UTC).timestamp() + DAY_SECONDS / 2
