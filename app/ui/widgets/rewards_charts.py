"""The Rewards page's usage chart (by model or method, events or effective usage, per day or
week) and its cumulative chart with the top contributions of the range shown."""

from __future__ import annotations

from datetime import UTC, date, datetime

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.domain.money import format_amount, format_micro
from app.services.usage_history import UsageData
from app.ui.theme import Theme
from app.ui.widgets.rewards_parts import exact, fill, table, titled
from app.ui.widgets.time_plot import DAY_SECONDS, BarPlot
from app.ui.widgets.usage_charts import SeriesChart, day_centre
from app.ui.widgets.usage_series import (
    ContributionDays,
    effective_text,
    events_text,
    usage_series,
)


class UsagePanel(QWidget):
    """Usage over time, one line per model or method, with its three choices above it."""

    def __init__(self, theme: Theme, legend_width: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.usage: UsageData | None = None
        self.scope = ""  # the contribution shown, "" for all
        self.chart = SeriesChart(
            theme,
            y_label="attributed events per day",
            value_text=events_text,
            legend_width=legend_width,
        )
        self.chart.plot.setMinimumHeight(200)
        box, self.title = titled("Usage by model, all contributions", self.chart)
        self.title.setMinimumWidth(1)  # a long title is cut, the page never widens
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        layout = box.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.removeWidget(self.title)
        row.addWidget(self.title)
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
            combo.currentIndexChanged.connect(self.redraw)
            row.addWidget(combo)
        layout.insertLayout(0, row)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(box)

    def show_usage(self, usage: UsageData | None) -> None:
        self.usage = usage
        self.redraw()

    def set_scope(self, scope: str) -> None:
        self.scope = scope
        self.retitle()

    def retitle(self) -> None:
        by = "model" if self.breakdown.currentData() == "model" else "attribution method"
        what = "Usage" if self.measure.currentData() == "events" else "Effective usage"
        scope = self.scope
        self.title.setText(
            f"{what} by {by}: {scope}" if scope else f"{what} by {by}, all contributions"
        )

    def redraw(self, _index: int = 0) -> None:
        """The chart for the breakdown, measure and bucket chosen."""
        by = str(self.breakdown.currentData())
        measure = str(self.measure.currentData())
        bucket_days = int(self.bucket.currentData())
        buckets, series = usage_series(self.usage, by=by, measure=measure, bucket_days=bucket_days)
        per = "week" if bucket_days == 7 else "day"
        chart = self.chart
        if measure == "events":
            chart.scale, chart.value_text = 1, events_text
            chart.set_y_label(f"attributed events per {per}")
        else:
            chart.scale, chart.value_text = 1_000_000, effective_text
            chart.set_y_label(f"effective usage per {per} (events)")
        chart.set_series(buckets, series, bucket_days=bucket_days)
        self.retitle()


class CumulativePanel(QWidget):
    """Earned to date per contribution (the top ten, the rest as one line) beside the
    ranking of what each contribution earned in the range shown."""

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.usage: UsageData | None = None
        self.sums = ContributionDays(None)
        self.unit = ""
        self.chart = SeriesChart(theme, y_label="earned to date", value_text=str, scale=1_000_000)
        self.chart.plot.setMinimumHeight(200)
        cumulative_box, _ = titled("Cumulative earned per contribution", self.chart)
        self.ranking = table(["Contribution", "Earned", "Events"])
        self.ranking.setMinimumHeight(170)
        self.ranking.setToolTip("What each contribution earned in the range shown above")
        self.ranking_box, self.ranking_title = titled("Top contributions in range", self.ranking)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(14)
        row.addWidget(cumulative_box, 3)
        row.addWidget(self.ranking_box, 2)

    def show_usage(self, usage: UsageData | None, unit: str) -> None:
        self.usage, self.unit = usage, unit
        self.sums = ContributionDays(usage)  # one pass: the lines and every range's ranking
        days, series = self.sums.cumulative()
        self.chart.value_text = lambda micro: f"{format_micro(micro, unit=unit)} earned to date"
        self.chart.set_y_label(f"earned ({unit})")
        self.chart.set_series(days, series)
        header = self.ranking.horizontalHeaderItem(1)
        if header is not None:
            header.setText(unit[:1].upper() + unit[1:])

    def fill_ranking(self, low: date, high: date) -> None:
        """Top contributions by what they earned in [low, high]."""
        rows = self.sums.ranking(low, high)
        unit = self.unit
        fill(
            self.ranking,
            [
                (f"{n}.  {label}", format_amount(micro), f"{events:,}")
                for n, (_cid, label, micro, events) in enumerate(rows, 1)
            ],
            [cid for cid, _label, _micro, _events in rows],
            tips=[
                (f"{label}\n{cid}", exact(micro, unit), f"{events:,} attributed events")
                for cid, label, micro, events in rows
            ],
        )
        # Short enough for a 1024-pixel window; the days are in the tooltip and the summary.
        self.ranking_title.setText(f"Top contributions, {low:%d %b} – {high:%d %b %Y}")
        self.ranking_title.setToolTip(f"Earned from {low:%a %d %b %Y} to {high:%a %d %b %Y}")
        self.ranking_title.setMinimumWidth(1)


class EarnedPanel(QWidget):
    """Earned per day as bars, with what the days shown add up to beside them (where the
    usage chart has its legend, so the time axes line up)."""

    def __init__(self, theme: Theme, legend_width: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        colors = theme.colors
        self.daily: tuple[tuple[date, int, int], ...] = ()
        self.unit = ""
        self.chart = BarPlot(colors, colors["accent"])  # wheel, drag and keys move the range
        self.chart.y_label = "earned"
        self.chart.setAccessibleName("Earned per day")
        self.chart.setMinimumHeight(180)
        self.chart.tip_fn = lambda x, _y: self.bar_tip(x)
        row_widget = QWidget()
        row = QHBoxLayout(row_widget)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(self.chart, 1)
        self.summary = QLabel("")
        self.summary.setObjectName("rangeSummary")
        self.summary.setFixedWidth(legend_width)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.summary.setStyleSheet(f"color: {colors['muted']}; padding: 4px;")
        row.addWidget(self.summary)
        box, self.title = titled("Earned per day, all contributions", row_widget)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(box)

    def show_daily(self, daily: tuple[tuple[date, int, int], ...], unit: str, scope: str) -> None:
        """(day, events, earned micro) per day, oldest first; `scope` "" for all."""
        self.daily, self.unit = daily, unit
        xs = [day_centre(d) for d, _e, _r in daily]
        self.chart.set_bars(xs, [r / 1_000_000 for _d, _e, r in daily])
        self.chart.y_label = f"earned ({unit})"
        self.chart.update()
        self.title.setText(
            f"Earned per day: {scope}" if scope else "Earned per day, all contributions"
        )

    def bar_tip(self, x: float) -> str | None:
        """The tooltip of the bar at chart position `x` (seconds since the epoch), if any."""
        day = datetime.fromtimestamp(x, UTC).date()
        for d, events, micro in self.daily:
            if d == day and abs(x - day_centre(d)) <= DAY_SECONDS * 0.4:
                noun = "event" if events == 1 else "events"
                return (
                    f"{d:%a %d %b %Y}\n{format_micro(micro, unit=self.unit)} earned\n"
                    f"{events:,} attributed {noun}"
                )
        return None

    def fill_summary(self, first: date, last: date) -> None:
        """What the scope earned and how often it was used in the days shown, exact."""
        shown = [(e, r) for d, e, r in self.daily if first <= d <= last]
        events = sum(e for e, _r in shown)
        micro = sum(r for _e, r in shown)
        days = (last - first).days + 1
        self.summary.setText(
            f"<b>{'On the day' if days == 1 else f'In the {days:,} days'} shown</b><br>"
            f"{format_micro(micro, unit=self.unit)} earned<br>"
            f"{events:,} attributed event{'' if events == 1 else 's'}"
        )
