"""Rewards page: what downstream models did with your data and what it earned, from the
catalogue's synced copy (so it reads the same offline).

The page never does I/O: the main window loads a RewardsOverview on its task runner and calls
`show_overview`. The charts are drawn with QPainter (app.ui.widgets.time_plot); their data
(series, cumulative lines, the ranking) comes from app.ui.widgets.usage_series.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

from PySide6.QtCore import QDate, Qt, QTimer, Signal
from PySide6.QtGui import QCursor, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
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
from app.services.transparency import LogStatus
from app.ui.theme import Theme
from app.ui.widgets.common import EmptyState, page_header
from app.ui.widgets.time_plot import DAY_SECONDS, TICK_GAP_PX, BarPlot, DayAxis, TimePlot
from app.ui.widgets.usage_charts import SeriesChart, day_start
from app.ui.widgets.usage_series import (
    cumulative_series,
    effective_text,
    events_text,
    ranking,
    usage_of,
    usage_series,
)

__all__ = [
    "DAY_SECONDS",
    "TICK_GAP_PX",
    "DayAxis",
    "RewardsView",
    "cumulative_series",
    "local_time",
    "ranking",
    "usage_series",
]
# One line each: what the registry means when an operator reports a use by this method.
METHOD_HELP = {
    "influence": "Influence: your data measurably shaped the model's answer "
    "(estimated with influence functions on its training).",
    "exact-match": "Exact match: the model's output repeated text from your data word for word.",
    "retrieval": "Retrieval: the model looked up your document to answer and cited it (RAG).",
}
WIDE_PX = 1000  # from this page width the three tables sit side by side
RANGES = (("30 d", 30), ("90 d", 90), ("1 y", 365), ("All", 0), ("Custom", -1))
LEGEND_WIDTH = 190  # the usage chart's legend, and the earned chart's summary beside it


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
    for label in (caption, value, note):
        # Four tiles share the page's width: a long note is cut at the tile's edge rather
        # than making the page wider than a 1024-pixel window.
        label.setMinimumWidth(1)
        layout.addWidget(label)
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
    # CSV of the usage rows: (path, first day, last day, contribution id or None)
    csvRequested = Signal(str, object, object, object)

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme
        self.overview: RewardsOverview | None = None
        self.scoped: RewardsOverview | None = None
        self.offline_reason: str | None = None
        self._filling = False  # programmatic changes to the scope box and the table
        self._wide: bool | None = None
        self._pair: QWidget | None = None  # wide mode: the model and method tables' row
        self.range_days = 0  # the chosen range: days back from today; 0 all, -1 custom
        self._data_span: tuple[float, float] | None = None  # first and last day with data
        self._ranking_timer = QTimer(self)
        self._ranking_timer.setSingleShot(True)
        self._ranking_timer.setInterval(120)
        self._ranking_timer.timeout.connect(self._fill_ranking)
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
        # Transparency log: red when what the registry reports failed verification.
        self.log_banner = QLabel("")
        self.log_banner.setObjectName("rewardsLogFailure")
        self.log_banner.setWordWrap(True)
        self.log_banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_banner.setStyleSheet(
            f"background: {theme.colors['danger']}; color: white; padding: 8px; border-radius: 4px;"
        )
        self.log_banner.hide()
        layout.addWidget(self.log_banner)

        controls = QHBoxLayout()
        show = QLabel("Show")
        show.setStyleSheet(f"color: {theme.colors['muted']};")
        self.scope = QComboBox()
        self.scope.setMinimumWidth(180)  # the range buttons keep their words at 1024 px
        self.scope.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.scope.setToolTip("All contributions, or one of them")
        self.scope.addItem("All contributions", None)
        self.scope.currentIndexChanged.connect(self._scope_picked)
        controls.addWidget(show)
        controls.addWidget(self.scope)
        controls.addSpacing(12)
        controls.addLayout(self._build_range_controls())
        controls.addStretch(1)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_button.setToolTip("Save a chart as PNG or SVG, or the rows behind it as CSV")
        menu = QMenu(self.export_button)
        menu.addAction("Earned chart (PNG or SVG)…", lambda: self._ask_export_chart("earned"))
        menu.addAction("Usage chart (PNG or SVG)…", lambda: self._ask_export_chart("usage"))
        menu.addAction(
            "Cumulative chart (PNG or SVG)…", lambda: self._ask_export_chart("cumulative")
        )
        menu.addSeparator()
        menu.addAction("Rows of the range as CSV…", self._ask_export_csv)
        self.export_button.setMenu(menu)
        controls.addWidget(self.export_button)
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
        scroll = self.scroll = QScrollArea()
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
        self.chart = BarPlot(colors, colors["accent"])  # earned per day; wheel, drag, keys
        self.chart.y_label = "earned"
        self.chart.setAccessibleName("Earned per day")
        self.chart.setMinimumHeight(180)
        self.chart.tip_fn = lambda x, _y: self.bar_tip(x)
        earned_row = QWidget()
        row = QHBoxLayout(earned_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(self.chart, 1)
        # Beside the bars, where the usage chart has its legend (so the time axes line up).
        self.range_summary = QLabel("")
        self.range_summary.setObjectName("rangeSummary")
        self.range_summary.setFixedWidth(LEGEND_WIDTH)
        self.range_summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.range_summary.setStyleSheet(f"color: {colors['muted']}; padding: 4px;")
        row.addWidget(self.range_summary)
        chart_box, self.chart_title = _titled("Earned per day, all contributions", earned_row)
        grid.addWidget(chart_box, 1, 0, 1, 2)
        grid.addWidget(self._build_usage_chart(), 2, 0, 1, 2)
        grid.addWidget(self._build_cumulative(), 3, 0, 1, 2)
        self._following = False
        for plot in self._time_views():  # one time axis: zoom or pan one, the others follow
            plot.rangeChanged.connect(lambda low, high, src=plot: self._follow(src, low, high))
            plot.resetRequested.connect(self.reset_zoom)

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
        grid.setRowStretch(2, 3)
        grid.setRowStretch(3, 3)
        return content

    def _build_range_controls(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(4)
        self.range_group = QButtonGroup(self)
        self.range_group.setExclusive(True)
        self.range_buttons: dict[int, QToolButton] = {}
        tips = {30: "The last 30 days", 90: "The last 90 days", 365: "The last year"}
        for text, days in RANGES:
            button = QToolButton()
            button.setText(text)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setToolTip(
                tips.get(days, "Everything synced" if days == 0 else "Pick the first and last day")
            )
            button.setStyleSheet(
                f"QToolButton:checked {{ background: {self.theme.colors['selection']};"
                f" color: {self.theme.colors['accent_text']};"
                f" border: 1px solid {self.theme.colors['accent']}; border-radius: 4px; }}"
            )
            button.setMinimumWidth(button.sizeHint().width())
            self.range_group.addButton(button, days)
            self.range_buttons[days] = button
            row.addWidget(button)
        self.range_buttons[0].setChecked(True)
        self.range_group.idClicked.connect(self.set_range)
        self.range_from = QDateEdit()
        self.range_until = QDateEdit()
        for edit, tip in ((self.range_from, "First day"), (self.range_until, "Last day")):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("d MMM yyyy")
            edit.setToolTip(tip)
            edit.setVisible(False)
            edit.dateChanged.connect(self._custom_dates)
        row.addWidget(self.range_from)
        row.addWidget(self.range_until)
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset")
        self.reset_button.setAutoRaise(True)
        self.reset_button.setToolTip(
            "Back to the chosen range (scroll over a chart to zoom, drag it to pan)"
        )
        self.reset_button.setMinimumWidth(self.reset_button.sizeHint().width())
        self.reset_button.clicked.connect(self.reset_zoom)
        row.addWidget(self.reset_button)
        return row

    def _build_usage_chart(self) -> QWidget:
        self.usage_chart = SeriesChart(
            self.theme,
            y_label="attributed events per day",
            value_text=events_text,
            legend_width=LEGEND_WIDTH,
        )
        self.usage_chart.plot.setMinimumHeight(200)
        box, self.usage_title = _titled("Usage by model, all contributions", self.usage_chart)
        self.usage_title.setMinimumWidth(1)  # a long title is cut, the page never widens
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        layout = box.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.removeWidget(self.usage_title)
        row.addWidget(self.usage_title)
        row.addStretch(1)
        self.breakdown = QComboBox()
        self.breakdown.addItem("By model", "model")
        self.breakdown.addItem("By method", "method")
        self.breakdown.setToolTip("One line per model, or per attribution method")
        self.measure = QComboBox()
        self.measure.addItem("Attributed events", "events")
        self.measure.addItem("Effective usage", "share")
        self.measure.setToolTip(
            "Attributed events: each event that credited your data, once per method.\n"
            "Effective usage: your share of each event (its weight over the event's total)."
        )
        self.bucket = QComboBox()
        self.bucket.addItem("Per day", 1)
        self.bucket.addItem("Per week", 7)
        for combo in (self.breakdown, self.measure, self.bucket):
            combo.currentIndexChanged.connect(self._redraw_usage)
            row.addWidget(combo)
        layout.insertLayout(0, row)
        return box

    def _build_cumulative(self) -> QWidget:
        self.cumulative_chart = SeriesChart(
            self.theme, y_label="earned to date", value_text=str, scale=1_000_000
        )
        self.cumulative_chart.plot.setMinimumHeight(200)
        cumulative_box, _ = _titled("Cumulative earned per contribution", self.cumulative_chart)
        self.ranking = _table(["Contribution", "Earned", "Events"])
        self.ranking.setMinimumHeight(170)
        self.ranking.setToolTip("What each contribution earned in the range shown above")
        self.ranking_box, self.ranking_title = _titled("Top contributions in range", self.ranking)
        pair = QWidget()
        row = QHBoxLayout(pair)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(14)
        row.addWidget(cumulative_box, 3)
        row.addWidget(self.ranking_box, 2)
        return pair

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
            grid.addWidget(self.contribution_box, 4, 0)
            grid.addWidget(pair, 4, 1)
            grid.setColumnStretch(0, 1)
            grid.setColumnStretch(1, 1)
            grid.setRowStretch(4, 2)
            grid.setRowStretch(5, 0)
        else:
            grid.addWidget(self.contribution_box, 4, 0, 1, 2)
            grid.addWidget(self.model_box, 5, 0)
            grid.addWidget(self.method_box, 5, 1)
            grid.setColumnStretch(0, 3)
            grid.setColumnStretch(1, 2)
            grid.setRowStretch(4, 2)
            grid.setRowStretch(5, 2)
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
        waiting = overview.unsettled_events if overview is not None else None
        if waiting:  # the registry's rewards lag behind what it received: say so
            text += f" · {waiting:,} events awaiting settlement"
        self.last_sync.setText(text)
        self.last_sync.setToolTip(tip)
        self.last_sync.setStyleSheet(f"color: {color};")

    def show_log(self, log: LogStatus | None) -> None:
        """The red banner naming a failed verification, and the verification state next to
        the sync time."""
        self.log_status = log
        failed = log is not None and log.failure is not None
        self.log_banner.setText(
            f"The registry's data failed verification: {log.failure}. Nothing stored was "
            "changed; run contributor-desk audit --export FILE to keep the evidence."
            if failed and log is not None
            else ""
        )
        self.log_banner.setVisible(failed)
        tip = self.last_sync.toolTip()
        self.last_sync.setToolTip(f"{tip}\n{log_state_text(log)}".strip())

    def _mark_verified(self, log: LogStatus | None) -> None:
        """Each contribution row says whether its entries are verified, pending or failed."""
        table = self.by_contribution
        for row in range(table.rowCount()):
            first = table.item(row, 0)
            entries = table.item(row, 2)
            if first is None or entries is None:
                continue
            cid = first.data(Qt.ItemDataRole.UserRole)
            state = log.contribution_state(str(cid)) if log is not None else "unverified"
            if log is not None and state == "verified" and log.checkpoint_size is not None:
                detail = f"verified up to checkpoint {log.checkpoint_size:,}"
            else:
                detail = state
            mark = {"verified": "✓", "pending": "…", "failed": "✗"}.get(state, "")
            entries.setText(f"{entries.text()} {mark}".strip())
            entries.setToolTip(f"{entries.toolTip()}\n{detail}".strip())

    def _empty_text(self, title: str, text: str) -> None:
        self.empty.title.setText(title)
        self.empty.text.setText(text)

    def show_overview(self, overview: RewardsOverview | None) -> None:
        self.overview = overview
        self._show_sync_state()
        self.show_log(getattr(overview, "log", None))
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
        self._mark_verified(getattr(overview, "log", None))
        self.contrib_value.setText(str(len(overview.by_contribution)))
        self.contrib_note.setText("with rewards")
        self.stack.setCurrentIndex(1)
        self._show_cumulative(overview)
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
        log = getattr(self.overview, "log", None)  # verified, pending or failed, and up to where
        self.total_note.setToolTip(log_state_text(log))
        if log is not None:  # short enough for the tile at 1024 px; the tooltip says more
            mark = "✗ FAILED" if log.failure else ("… pending" if log.pending else "✓ verified")
            self.total_note.setText(f"{mark} · {overview.entries:,} entries")
        self.events_value.setText(f"{events:,}")
        if overview.daily:
            first, last = overview.daily[0][0], overview.daily[-1][0]
            start = f"{first:%d %b}" if first.year == last.year else f"{first:%d %b %Y}"
            self.events_note.setText(f"{start} – {last:%d %b %Y}")
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
        self.chart.set_bars(xs, heights)
        self._redraw_usage()
        self._apply_range()
        self.chart.y_label = f"earned ({unit})"
        self.chart.update()
        scope = self.scope.currentText() if self.scope.currentData() is not None else ""
        self.chart_title.setText(
            f"Earned per day: {scope}" if scope else "Earned per day, all contributions"
        )
        self._usage_scope = scope
        self._title_usage()
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
                    f"{d:%a %d %b %Y}\n{format_micro(micro, unit=overview.unit)} earned\n"
                    f"{events:,} attributed {noun}"
                )
        return None

    # -- usage and cumulative charts -----------------------------------------------------------
    def _title_usage(self) -> None:
        by = "model" if self.breakdown.currentData() == "model" else "attribution method"
        what = "Usage" if self.measure.currentData() == "events" else "Effective usage"
        scope = getattr(self, "_usage_scope", "")
        self.usage_title.setText(
            f"{what} by {by}: {scope}" if scope else f"{what} by {by}, all contributions"
        )

    def _redraw_usage(self, _index: int = 0) -> None:
        """The usage chart for the scope shown, breakdown, measure and bucket chosen."""
        usage = usage_of(self.scoped)
        by = str(self.breakdown.currentData())
        measure = str(self.measure.currentData())
        bucket_days = int(self.bucket.currentData())
        buckets, series = usage_series(usage, by=by, measure=measure, bucket_days=bucket_days)
        per = "week" if bucket_days == 7 else "day"
        chart = self.usage_chart
        if measure == "events":
            chart.scale, chart.value_text = 1, events_text
            chart.set_y_label(f"attributed events per {per}")
        else:
            chart.scale, chart.value_text = 1_000_000, effective_text
            chart.set_y_label(f"effective usage per {per} (events)")
        chart.set_series(buckets, series, bucket_days=bucket_days)
        self._title_usage()

    def _show_cumulative(self, overview: RewardsOverview) -> None:
        usage = usage_of(overview)
        unit = overview.unit
        days, series = cumulative_series(usage)
        chart = self.cumulative_chart
        chart.value_text = lambda micro: f"{format_micro(micro, unit=unit)} earned to date"
        chart.set_y_label(f"earned ({unit})")
        chart.set_series(days, series)
        self.ranking.horizontalHeaderItem(1).setText(unit[:1].upper() + unit[1:])
        self._update_span()
        self._fill_ranking()

    def _fill_ranking(self) -> None:
        """Top contributions by what they earned in the time range shown."""
        usage = usage_of(self.overview)
        low, high = self.visible_days()
        rows = ranking(usage, low, high)
        unit = self.overview.unit if self.overview is not None else ""
        _fill(
            self.ranking,
            [
                (f"{n}.  {label}", format_amount(micro), f"{events:,}")
                for n, (_cid, label, micro, events) in enumerate(rows, 1)
            ],
            [cid for cid, _label, _micro, _events in rows],
            tips=[
                (f"{label}\n{cid}", _exact(micro, unit), f"{events:,} attributed events")
                for cid, label, micro, events in rows
            ],
        )
        # Short enough for a 1024-pixel window; the days are in the tooltip and the summary.
        self.ranking_title.setText(f"Top contributions, {low:%d %b} – {high:%d %b %Y}")
        self.ranking_title.setToolTip(f"Earned from {low:%a %d %b %Y} to {high:%a %d %b %Y}")
        self.ranking_title.setMinimumWidth(1)
        self._fill_range_summary(low, high)

    def _fill_range_summary(self, first: date, last: date) -> None:
        """Beside the earned bars: what the scope earned and how often it was used in the
        days shown, exact."""
        overview = self.scoped
        if overview is None:
            self.range_summary.setText("")
            return
        shown = [(e, r) for d, e, r in overview.daily if first <= d <= last]
        events = sum(e for e, _r in shown)
        micro = sum(r for _e, r in shown)
        days = (last - first).days + 1
        self.range_summary.setText(
            f"<b>In the {days:,} days shown</b><br>"
            f"{format_micro(micro, unit=overview.unit)} earned<br>"
            f"{events:,} attributed event{'' if events == 1 else 's'}"
        )

    # -- time range --------------------------------------------------------------------------
    def _update_span(self) -> None:
        days: list[date] = []
        for overview in (self.overview, self.scoped):
            if overview is not None:
                days += [d for d, _e, _r in overview.daily[:1] + overview.daily[-1:]]
                usage = usage_of(overview)
                if usage is not None and usage.by_contribution:
                    days += [usage.by_contribution[0][0], usage.by_contribution[-1][0]]
        if days:
            self._data_span = (day_start(min(days)), day_start(max(days)) + DAY_SECONDS)
            first, last = min(days), max(days)
            self.range_from.blockSignals(True)
            self.range_until.blockSignals(True)
            if self.range_days != -1:
                self.range_from.setDate(QDate(first.year, first.month, first.day))
                self.range_until.setDate(QDate(last.year, last.month, last.day))
            self.range_from.blockSignals(False)
            self.range_until.blockSignals(False)

    def range_bounds(self) -> tuple[float, float]:
        """The chosen range in seconds since the epoch (what Reset zoom returns to)."""
        span = self._data_span
        today = datetime.now(UTC).date()
        end = day_start(today) + DAY_SECONDS
        if span is not None:
            end = max(end, span[1])
        if self.range_days > 0:
            return end - self.range_days * DAY_SECONDS, end
        if self.range_days == -1:
            first = self.range_from.date().toPython()
            last = self.range_until.date().toPython()
            if last < first:
                first, last = last, first
            return day_start(first), day_start(last) + DAY_SECONDS
        if span is None:
            return end - 30 * DAY_SECONDS, end
        return span[0], span[1]

    def set_range(self, days: int) -> None:
        """30, 90 or 365 days back from today; 0 everything; -1 the custom dates."""
        self.range_days = days
        button = self.range_buttons.get(days)
        if button is not None and not button.isChecked():
            button.setChecked(True)
        custom = days == -1
        self.range_from.setVisible(custom)
        self.range_until.setVisible(custom)
        self._apply_range()

    def set_custom_range(self, first: date, last: date) -> None:
        for edit, d in ((self.range_from, first), (self.range_until, last)):
            edit.blockSignals(True)
            edit.setDate(QDate(d.year, d.month, d.day))
            edit.blockSignals(False)
        self.set_range(-1)

    def _custom_dates(self, _date: QDate) -> None:
        if self.range_days == -1:
            self._apply_range()

    def reset_zoom(self) -> None:
        self._apply_range()

    def _apply_range(self) -> None:
        low, high = self.range_bounds()
        span = self._data_span or (low, high)
        for plot in self._time_views():
            plot.set_limits(
                min(low, span[0]) - 7 * DAY_SECONDS,
                max(high, span[1]) + 7 * DAY_SECONDS,
                DAY_SECONDS,
            )
        self.chart.set_x_range(low, high)  # the other charts follow

    def visible_days(self) -> tuple[date, date]:
        """The first and last whole or partly visible day of the charts."""
        low, high = self.chart.x_range()
        first = datetime.fromtimestamp(max(low, 0), UTC).date()
        last = datetime.fromtimestamp(max(high - 1, 0), UTC).date()
        return first, max(first, last)

    def _time_views(self) -> list[TimePlot]:
        return [self.chart, self.usage_chart.plot, self.cumulative_chart.plot]

    def _follow(self, source: TimePlot, low: float, high: float) -> None:
        """The same time range on every chart (the charts differ in width)."""
        if self._following:
            return
        self._following = True
        try:
            for plot in self._time_views():
                if plot is not source:
                    plot.set_x_range(low, high)
        finally:
            self._following = False
        self._ranking_timer.start()  # the ranking follows zoom and pan, once it settles

    # -- export --------------------------------------------------------------------------------
    def export_chart(self, which: str, path: Path) -> Path:
        """The chart `which` (earned, usage, cumulative) as shown, to a .png or .svg file."""
        plots = {
            "earned": self.chart,
            "usage": self.usage_chart.plot,
            "cumulative": self.cumulative_chart.plot,
        }
        return plots[which].export(path)

    def _ask_export_chart(self, which: str) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export chart", f"{which}-chart.png", "PNG image (*.png);;SVG image (*.svg)"
        )
        if not path:
            return
        if Path(path).suffix.lower() not in (".png", ".svg"):
            path += ".svg" if "svg" in _filter.lower() else ".png"
        try:
            self.export_chart(which, Path(path))
        except (OSError, ValueError) as exc:
            QToolTip.showText(QCursor.pos(), f"Not exported: {exc}", self.export_button)

    def _ask_export_csv(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export usage rows", "usage.csv", "CSV (*.csv)"
        )
        if path:
            first, last = self.visible_days()
            self.csvRequested.emit(path, first, last, self.scope.currentData())

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


def log_state_text(log: LogStatus | None) -> str:
    """What the page says about verification: verified up to a checkpoint, pending, failed."""
    if log is None:
        return "Not verified: this registry serves no transparency log"
    if log.failure is not None:
        return f"Verification FAILED: {log.failure}"
    if log.checkpoint_size is None:
        return "Pending: not verified yet"
    text = f"Verified up to checkpoint {log.checkpoint_size:,}"
    return text + (f" ({log.pending:,} entries pending)" if log.pending else "")


def _bar_centre(day: date) -> float:
    return datetime.combine(day, time(), UTC).timestamp() + DAY_SECONDS / 2
