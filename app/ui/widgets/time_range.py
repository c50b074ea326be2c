"""The Rewards page's time range: the range buttons (30 d, 90 d, 1 y, All, Custom with two
dates, Reset) and one time axis shared by every chart: zoom or pan one, the others follow;
Reset (or Home on a chart) returns to the chosen range."""

from __future__ import annotations

from datetime import UTC, date, datetime

from PySide6.QtCore import QDate, QObject, Signal
from PySide6.QtWidgets import QButtonGroup, QDateEdit, QHBoxLayout, QToolButton

from app.ui.theme import Theme
from app.ui.widgets.time_plot import DAY_SECONDS, TimePlot
from app.ui.widgets.usage_charts import day_start

RANGES = (("30 d", 30), ("90 d", 90), ("1 y", 365), ("All", 0), ("Custom", -1))


class TimeRange(QObject):
    """The chosen range (days back from today; 0 everything; -1 the custom dates) and the
    charts that show it. `moved` fires after the charts followed a zoom or pan."""

    moved = Signal()

    def __init__(self, theme: Theme, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.range_days = 0
        self.data_span: tuple[float, float] | None = None  # first and last day with data
        self.plots: list[TimePlot] = []
        self._following = False
        self.row = row = QHBoxLayout()
        row.setSpacing(4)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[int, QToolButton] = {}
        tips = {30: "The last 30 days", 90: "The last 90 days", 365: "The last year"}
        colors = theme.colors
        for text, days in RANGES:
            button = QToolButton()
            button.setText(text)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setToolTip(
                tips.get(days, "Everything synced" if days == 0 else "Pick the first and last day")
            )
            button.setStyleSheet(
                f"QToolButton:checked {{ background: {colors['selection']};"
                f" color: {colors['accent_text']};"
                f" border: 1px solid {colors['accent']}; border-radius: 4px; }}"
            )
            button.setMinimumWidth(button.sizeHint().width())
            self.group.addButton(button, days)
            self.buttons[days] = button
            row.addWidget(button)
        self.buttons[0].setChecked(True)
        self.group.idClicked.connect(self.set_range)
        self.first_edit = QDateEdit()
        self.last_edit = QDateEdit()
        for edit, tip in ((self.first_edit, "First day"), (self.last_edit, "Last day")):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("d MMM yyyy")
            edit.setToolTip(tip)
            edit.setVisible(False)
            edit.dateChanged.connect(self._custom_dates)
            row.addWidget(edit)
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset")
        self.reset_button.setAutoRaise(True)
        self.reset_button.setToolTip(
            "Back to the chosen range (scroll over a chart to zoom, drag it to pan; "
            "+, -, Left, Right and Home on a chart)"
        )
        self.reset_button.setMinimumWidth(self.reset_button.sizeHint().width())
        self.reset_button.clicked.connect(self.reset_zoom)
        row.addWidget(self.reset_button)

    def set_plots(self, plots: list[TimePlot]) -> None:
        """The charts sharing the time axis (the first one leads)."""
        self.plots = plots
        for plot in plots:
            plot.rangeChanged.connect(lambda low, high, src=plot: self._follow(src, low, high))
            plot.resetRequested.connect(self.reset_zoom)

    def update_span(self, days: list[date]) -> None:
        """The first and last days with data (for All, and the custom dates' defaults)."""
        if not days:
            return
        first, last = min(days), max(days)
        self.data_span = (day_start(first), day_start(last) + DAY_SECONDS)
        for edit, d in ((self.first_edit, first), (self.last_edit, last)):
            edit.blockSignals(True)
            if self.range_days != -1:
                edit.setDate(QDate(d.year, d.month, d.day))
            edit.blockSignals(False)

    def range_bounds(self) -> tuple[float, float]:
        """The chosen range in seconds since the epoch (what Reset zoom returns to)."""
        span = self.data_span
        end = day_start(datetime.now(UTC).date()) + DAY_SECONDS
        if span is not None:
            end = max(end, span[1])
        if self.range_days > 0:
            return end - self.range_days * DAY_SECONDS, end
        if self.range_days == -1:
            first = self.first_edit.date().toPython()
            last = self.last_edit.date().toPython()
            assert isinstance(first, date) and isinstance(last, date)
            if last < first:
                first, last = last, first
            return day_start(first), day_start(last) + DAY_SECONDS
        if span is None:
            return end - 30 * DAY_SECONDS, end
        return span

    def set_range(self, days: int) -> None:
        """30, 90 or 365 days back from today; 0 everything; -1 the custom dates."""
        self.range_days = days
        button = self.buttons.get(days)
        if button is not None and not button.isChecked():
            button.setChecked(True)
        self.first_edit.setVisible(days == -1)
        self.last_edit.setVisible(days == -1)
        self.apply()

    def set_custom_range(self, first: date, last: date) -> None:
        for edit, d in ((self.first_edit, first), (self.last_edit, last)):
            edit.blockSignals(True)
            edit.setDate(QDate(d.year, d.month, d.day))
            edit.blockSignals(False)
        self.set_range(-1)

    def _custom_dates(self, _date: QDate) -> None:
        if self.range_days == -1:
            self.apply()

    def reset_zoom(self) -> None:
        self.apply()

    def apply(self) -> None:
        """Every chart on the chosen range, zoom and pan limited to the data and a week."""
        low, high = self.range_bounds()
        span = self.data_span or (low, high)
        for plot in self.plots:
            plot.set_limits(
                min(low, span[0]) - 7 * DAY_SECONDS, max(high, span[1]) + 7 * DAY_SECONDS,
                DAY_SECONDS,
            )  # fmt: skip
        if self.plots:
            self.plots[0].set_x_range(low, high)  # the others follow

    def visible_days(self) -> tuple[date, date]:
        """The first and last whole or partly visible day of the charts."""
        low, high = self.plots[0].x_range() if self.plots else self.range_bounds()
        first = datetime.fromtimestamp(max(low, 0), UTC).date()
        last = datetime.fromtimestamp(max(high - 1, 0), UTC).date()
        return first, max(first, last)

    def _follow(self, source: TimePlot, low: float, high: float) -> None:
        """The same time range on every chart (the charts differ in width)."""
        if self._following:
            return
        self._following = True
        try:
            for plot in self.plots:
                if plot is not source:
                    plot.set_x_range(low, high)
        finally:
            self._following = False
        self.moved.emit()
