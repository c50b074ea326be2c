"""Rewards page: what downstream models did with your data and what it earned, from the
catalogue's synced copy (so it reads the same offline).

The page never does I/O: the main window loads a RewardsOverview on its task runner and calls
`show_overview`. The charts are drawn with QPainter (app.ui.widgets.time_plot); their data
(series, cumulative lines, the ranking) comes from app.ui.widgets.usage_series.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import cast

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCursor, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTableWidgetItem,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.domain.money import format_amount
from app.domain.units import method_label
from app.services.rewards import RewardsOverview
from app.services.transparency import LogStatus
from app.ui.text import local_time
from app.ui.theme import Theme
from app.ui.widgets.common import EmptyState, page_header
from app.ui.widgets.rewards_charts import CumulativePanel, EarnedPanel, UsagePanel
from app.ui.widgets.rewards_parts import (
    ask_chart_path,
    help_button,
    log_state_text,
    mark_verified,
    with_help,
)
from app.ui.widgets.rewards_parts import (
    contribution_label as _label,
)
from app.ui.widgets.rewards_parts import (
    exact as _exact,
)
from app.ui.widgets.rewards_parts import (
    fill as _fill,
)
from app.ui.widgets.rewards_parts import (
    table as _table,
)
from app.ui.widgets.rewards_parts import (
    tile as _tile,
)
from app.ui.widgets.rewards_parts import (
    titled as _titled,
)
from app.ui.widgets.time_plot import DAY_SECONDS, TICK_GAP_PX, DayAxis
from app.ui.widgets.time_range import TimeRange
from app.ui.widgets.usage_series import (
    cumulative_series,
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
    # The failed-verification banner: save the evidence to (path); acknowledge the failures.
    evidenceRequested = Signal(str)
    acknowledgeRequested = Signal()
    scroll: QScrollArea  # type: ignore[assignment]  # shadows QWidget.scroll(dx, dy)

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme
        self.overview: RewardsOverview | None = None
        self.scoped: RewardsOverview | None = None
        self.offline_reason: str | None = None
        self.demo = False  # the embedded demo registry: its usage is simulated as time passes
        self._filling = False  # programmatic changes to the scope box and the table
        self._wide: bool | None = None
        self._pair: QWidget | None = None  # wide mode: the model and method tables' row
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
        # Transparency log: red when what the registry reports failed verification, with
        # the two things to do about it (save the evidence, acknowledge the failure).
        danger, on_danger = theme.colors["danger"], theme.colors["on_danger"]
        self.log_box = QFrame()
        self.log_box.setObjectName("rewardsLogFailure")
        self.log_box.setStyleSheet(
            f"QFrame#rewardsLogFailure {{ background: {danger}; border-radius: 4px; }}"
            f"QLabel {{ color: {on_danger}; background: transparent; }}"
            f"QPushButton {{ color: {on_danger}; background: transparent; "
            f"border: 1px solid {on_danger}; border-radius: 4px; padding: 4px 10px; }}"
        )
        box = QHBoxLayout(self.log_box)
        box.setContentsMargins(10, 8, 10, 8)
        self.log_banner = QLabel("")
        self.log_banner.setWordWrap(True)
        self.log_banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.log_banner, 1)
        self.save_evidence_button = QPushButton("Save evidence…")
        self.save_evidence_button.setToolTip(
            "Write the signed checkpoints, proofs and every recorded failure as JSON "
            "(what contributor-desk audit --export writes)"
        )
        self.save_evidence_button.clicked.connect(self._ask_save_evidence)
        self.acknowledge_button = QPushButton("Acknowledge…")
        self.acknowledge_button.setToolTip(
            "Mark the failure as seen: it stays stored with its evidence, but this banner and "
            "contributor-desk audit stop reporting it"
        )
        self.acknowledge_button.clicked.connect(self._ask_acknowledge)
        buttons = QVBoxLayout()
        buttons.addWidget(self.save_evidence_button)
        buttons.addWidget(self.acknowledge_button)
        box.addLayout(buttons)
        self.log_box.hide()
        layout.addWidget(self.log_box)

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
        self.time = TimeRange(theme, self)  # the range buttons and the shared time axis
        self.time.moved.connect(self._ranking_timer.start)  # the ranking follows, once settled
        self.range_buttons = self.time.buttons
        self.range_from, self.range_until = self.time.first_edit, self.time.last_edit
        self.reset_button = self.time.reset_button
        controls.addLayout(self.time.row)
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
        self.total_caption = cast(QLabel, frame.findChild(QLabel, "tileCaption"))
        tiles.addWidget(frame, 1)
        frame, self.events_value, self.events_note = _tile("Attributed events", self.theme)
        tiles.addWidget(frame, 1)
        frame, self.contrib_value, self.contrib_note = _tile("Contributions earning", self.theme)
        tiles.addWidget(frame, 1)
        frame, self.models_value, self.models_note = _tile("Models using your data", self.theme)
        tiles.addWidget(frame, 1)
        grid.addLayout(tiles, 0, 0, 1, 2)

        colors = self.theme.colors
        self.earned = EarnedPanel(self.theme, LEGEND_WIDTH)
        self.chart, self.chart_title = self.earned.chart, self.earned.title
        self.range_summary = self.earned.summary
        grid.addWidget(self.earned, 1, 0, 1, 2)
        grid.addWidget(self._build_usage_chart(), 2, 0, 1, 2)
        grid.addWidget(self._build_cumulative(), 3, 0, 1, 2)
        self.time.set_plots([self.chart, self.usage_chart.plot, self.cumulative_chart.plot])

        self.by_contribution = _table(["Contribution", "Earned", "Entries"])
        self.by_contribution.setToolTip("Select a contribution to chart it alone")
        self.by_contribution.itemSelectionChanged.connect(self._row_picked)
        self.by_model = _table(["Model", "Earned"])
        self.by_method = _table(["Method", "Earned"])
        method_header = cast(QTableWidgetItem, self.by_method.horizontalHeaderItem(0))
        method_header.setToolTip("\n".join(METHOD_HELP.values()))
        for table in (self.by_contribution, self.by_model, self.by_method):
            table.setMinimumHeight(170)
        self.contribution_box, _ = _titled("By contribution", self.by_contribution)
        self.model_box, _ = _titled("By model", self.by_model)
        self.method_box, method_title = _titled("By attribution method", self.by_method)
        method_title.setToolTip("\n".join(METHOD_HELP.values()))
        self.method_help = help_button(
            colors, "What the attribution methods mean", "\n".join(METHOD_HELP.values())
        )
        with_help(self.method_box, method_title, self.method_help)
        self._arrange(wide=True)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(2, 3)
        grid.setRowStretch(3, 3)
        return content

    def _build_usage_chart(self) -> QWidget:
        self.usage_panel = UsagePanel(self.theme, LEGEND_WIDTH)
        panel = self.usage_panel
        self.usage_chart, self.usage_title = panel.chart, panel.title
        self.breakdown, self.measure, self.bucket = panel.breakdown, panel.measure, panel.bucket
        return panel

    def _build_cumulative(self) -> QWidget:
        self.cumulative = CumulativePanel(self.theme)
        self.cumulative_chart, self.ranking = self.cumulative.chart, self.cumulative.ranking
        self.ranking_box, self.ranking_title = (
            self.cumulative.ranking_box,
            self.cumulative.ranking_title,
        )
        return self.cumulative

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
            "changed. Save the evidence, then acknowledge the failure: the evidence stays "
            "stored."
            if failed and log is not None
            else ""
        )
        self.log_box.setVisible(failed)
        tip = self.last_sync.toolTip()
        self.last_sync.setToolTip(f"{tip}\n{log_state_text(log)}".strip())

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
                "offline."
                + (
                    " In demo mode, simulated models start using a contribution once it is "
                    "accepted, and their usage builds up over the next minutes: sync again "
                    "shortly."
                    if self.demo
                    else ""
                ),
            )
            self.stack.setCurrentIndex(0)
            return
        unit = overview.unit
        self.total_caption.setText(f"Earned ({unit})")
        for table in (self.by_contribution, self.by_model, self.by_method):
            header = cast(QTableWidgetItem, table.horizontalHeaderItem(1))
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
        mark_verified(self.by_contribution, getattr(overview, "log", None))
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
        scope = self.scope.currentText() if self.scope.currentData() is not None else ""
        self.earned.show_daily(overview.daily, unit, scope)
        self.usage_panel.show_usage(usage_of(overview))
        self._apply_range()
        self.usage_panel.set_scope(scope)
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
        """The tooltip of the earned bar at chart position `x`, if any."""
        return self.earned.bar_tip(x) if self.scoped is not None else None

    # -- usage and cumulative charts (app.ui.widgets.rewards_charts) --------------------------
    def _show_cumulative(self, overview: RewardsOverview) -> None:
        self.cumulative.show_usage(usage_of(overview), overview.unit)
        self._update_span()
        self._fill_ranking()

    def _fill_ranking(self) -> None:
        """Top contributions by what they earned in the time range shown."""
        low, high = self.visible_days()
        self.cumulative.fill_ranking(low, high)
        self._fill_range_summary(low, high)

    def _fill_range_summary(self, first: date, last: date) -> None:
        if self.scoped is None:
            self.range_summary.setText("")
        else:
            self.earned.fill_summary(first, last)

    # -- time range (app.ui.widgets.time_range) ------------------------------------------------
    def _update_span(self) -> None:
        days: list[date] = []
        for overview in (self.overview, self.scoped):
            if overview is not None:
                days += [d for d, _e, _r in overview.daily[:1] + overview.daily[-1:]]
                usage = usage_of(overview)
                if usage is not None and usage.by_contribution:
                    days += [usage.by_contribution[0][0], usage.by_contribution[-1][0]]
        self.time.update_span(days)

    def set_range(self, days: int) -> None:
        """30, 90 or 365 days back from today; 0 everything; -1 the custom dates."""
        self.time.set_range(days)

    def set_custom_range(self, first: date, last: date) -> None:
        self.time.set_custom_range(first, last)

    def reset_zoom(self) -> None:
        self.time.reset_zoom()

    def _apply_range(self) -> None:
        self.time.apply()

    def visible_days(self) -> tuple[date, date]:
        """The first and last whole or partly visible day of the charts."""
        return self.time.visible_days()

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
        path = ask_chart_path(self, which)
        try:
            if path is not None:
                self.export_chart(which, path)
        except (OSError, ValueError) as exc:
            QToolTip.showText(QCursor.pos(), f"Not exported: {exc}", self.export_button)

    def _ask_save_evidence(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, "Save the verification evidence", "contributor-desk-evidence.json",
            "JSON (*.json)",
        )  # fmt: skip
        if path:
            self.evidenceRequested.emit(path)

    def _ask_acknowledge(self) -> None:
        answer = QMessageBox.question(
            self,
            "Acknowledge the failure",
            "The failure stays stored with its evidence, and every evidence export still "
            "holds it, but this page and contributor-desk audit stop reporting it. A new "
            "failure is reported again.\n\nSave the evidence first if you want a copy.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.acknowledgeRequested.emit()

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
                cast(QTableWidgetItem, self.by_contribution.item(r, 0)).data(
                    Qt.ItemDataRole.UserRole
                )
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
        first = cast(QTableWidgetItem, self.by_contribution.item(rows[0].row(), 0))
        cid = first.data(Qt.ItemDataRole.UserRole)
        index = self.scope.findData(cid)
        if index >= 0:
            self.scope.setCurrentIndex(index)
