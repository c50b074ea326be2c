"""Time charts of the Rewards page: named series over days (or weeks) with a legend that hides
a series, hover tooltips with the exact date, value and series, axes with units and
thousands separators, mouse and keyboard zoom and pan on the time axis only, and export as
PNG or SVG.

Values are integers (events, effective usage in ppm, money in micro-units); they become
floats only as plotted heights, and tooltips are written from the integers (money with its
six decimals, never through a float). Drawing is QPainter (app.ui.widgets.time_plot): a
range change redraws only what is visible, with no point touched in Python.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ui.theme import Theme
from app.ui.widgets.time_plot import DAY_SECONDS, CountAxis, DayAxis, LinePlot, TimePlot

__all__ = ["DAY_SECONDS", "CountAxis", "DayAxis", "Series", "SeriesChart", "TimePlot"]

# Distinct hues for series, readable on light and dark backgrounds (Okabe-Ito, then more).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#8E6C8A",
    "#4C9F70",
    "#B5651D",
    "#5778A4",
    "#E49444",
)


def series_color(n: int) -> str:
    if n < len(PALETTE):
        return PALETTE[n]
    hue = (n * 0.618033988749895) % 1.0  # golden-ratio hues beyond the palette
    return QColor.fromHsvF(hue, 0.65, 0.8).name()


def day_start(d: date) -> float:
    """Seconds since the epoch at the start of UTC day `d`."""
    return datetime.combine(d, time(), UTC).timestamp()


def day_centre(d: date) -> float:
    return day_start(d) + DAY_SECONDS / 2


def monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


@dataclass(frozen=True)
class Series:
    key: str  # a model id, a method, a contribution id
    label: str  # as people read it
    values: Sequence[int]  # one integer per bucket of the chart's `buckets`


ValueText = Callable[[int], str]


class SeriesChart(QWidget):
    """Lines over time, one per series, a checkable legend beside them (unchecking hides a
    series), a tooltip for the nearest line under the mouse.

    `scale`: what one plotted unit is in integer units (10**6 for ppm or micro-units);
    `value_text` writes an integer value for a tooltip ('1,234 attributed events')."""

    rangeChanged = Signal(float, float)  # the visible time range (seconds since the epoch)

    def __init__(
        self,
        theme: Theme,
        *,
        y_label: str,
        value_text: ValueText,
        scale: int = 1,
        legend_width: int = 190,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.theme = theme
        self.scale = scale
        self.value_text = value_text
        self.buckets: list[date] = []
        self.bucket_days = 1
        self.series: list[Series] = []
        self.hidden: set[str] = set()
        colors = theme.colors
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.plot = LinePlot(colors)
        self.plot.setAccessibleName(y_label)
        self.plot.tip_fn = self.tip
        self.plot.rangeChanged.connect(self.rangeChanged)
        self.set_y_label(y_label)
        layout.addWidget(self.plot, 1)
        self.legend = QListWidget()
        self.legend.setAccessibleName("Series shown")
        self.legend.setToolTip("Untick a series to hide it (Space ticks from the keyboard)")
        self.legend.setFixedWidth(legend_width)
        self.legend.setFrameShape(QListWidget.Shape.NoFrame)
        # Long names are cut with "…" (the tooltip has them whole), never a sideways scroll.
        self.legend.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.legend.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.legend.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.legend.setStyleSheet(f"QListWidget {{ background: {colors['surface']}; }}")
        self.legend.itemChanged.connect(self._legend_changed)
        legend_box = QVBoxLayout()
        legend_box.setContentsMargins(0, 0, 0, 0)
        legend_box.addWidget(self.legend)
        layout.addLayout(legend_box)

    # -- data ------------------------------------------------------------------------------
    def set_y_label(self, text: str) -> None:
        self.plot.y_label = text
        self.plot.setAccessibleName(text)
        self.plot.update()

    def set_series(
        self, buckets: Sequence[date], series: Sequence[Series], *, bucket_days: int = 1
    ) -> None:
        """Replace every line: `buckets` are the first days of the chart's days (or weeks,
        `bucket_days` 7), oldest first; each series has one value per bucket."""
        self.buckets = list(buckets)
        self.bucket_days = bucket_days
        self.series = list(series)
        self.hidden = self.hidden & {s.key for s in series}
        xs = [day_start(d) + bucket_days * DAY_SECONDS / 2 for d in self.buckets]
        scale = float(self.scale)
        lines = [
            (s.key, [v / scale for v in s.values], series_color(n))
            for n, s in enumerate(self.series)
        ]
        self.plot.set_lines(xs, lines, self.hidden)
        self.legend.blockSignals(True)
        self.legend.clear()
        for n, s in enumerate(self.series):
            item = QListWidgetItem(_swatch(series_color(n)), s.label)
            item.setData(Qt.ItemDataRole.UserRole, s.key)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Unchecked if s.key in self.hidden else Qt.CheckState.Checked
            )
            item.setToolTip(f"{s.label}\n{s.key}" if s.key != s.label else s.label)
            self.legend.addItem(item)
        self.legend.blockSignals(False)

    def fit_y(self) -> None:
        """The value axis from 0 to the largest visible value in the time range shown."""
        self.plot.fit_y()
        self.plot.update()

    def set_visible(self, key: str, visible: bool) -> None:
        """Show or hide one series (as its legend box does)."""
        if visible:
            self.hidden.discard(key)
        else:
            self.hidden.add(key)
        self.plot.set_hidden(self.hidden)
        for row in range(self.legend.count()):
            item = self.legend.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                state = Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked
                if item.checkState() != state:
                    self.legend.blockSignals(True)
                    item.setCheckState(state)
                    self.legend.blockSignals(False)

    def visible_keys(self) -> list[str]:
        return [s.key for s in self.series if s.key not in self.hidden]

    def _legend_changed(self, item: QListWidgetItem) -> None:
        key = item.data(Qt.ItemDataRole.UserRole)
        self.set_visible(key, item.checkState() == Qt.CheckState.Checked)

    # -- range -----------------------------------------------------------------------------
    def set_time_range(self, low: float, high: float) -> None:
        self.plot.set_x_range(low, high)

    def time_range(self) -> tuple[float, float]:
        return self.plot.x_range()

    # -- values and tooltips ---------------------------------------------------------------
    def bucket_at(self, x: float) -> int | None:
        """The index of the bucket under time `x`, if any."""
        if not self.buckets:
            return None
        day = datetime.fromtimestamp(x, UTC).date()
        i = bisect.bisect_right(self.buckets, day) - 1
        if i < 0 or (day - self.buckets[i]).days >= self.bucket_days:
            return None
        return i

    def tip(self, x: float, y: float | None = None) -> str | None:
        """The tooltip at chart position (x, y): the bucket's date, and the visible series
        whose value there is nearest `y` (the largest when `y` is None), with its exact
        value."""
        i = self.bucket_at(x)
        visible = [s for s in self.series if s.key not in self.hidden]
        if i is None or not visible:
            return None
        if y is None:
            best = max(visible, key=lambda s: s.values[i])
        else:
            best = min(visible, key=lambda s: abs(s.values[i] / self.scale - y))
        start = self.buckets[i]
        if self.bucket_days == 7:
            when = f"Week of {start:%a %d %b %Y}"
        else:
            when = f"{start:%a %d %b %Y}"
        return f"{when}\n{best.label}\n{self.value_text(int(best.values[i]))}"

    # -- export ----------------------------------------------------------------------------
    def export(self, path: Path) -> Path:
        return self.plot.export(path)


def _swatch(color: str) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(QColor(color))
    return QIcon(pix)
