"""Time charts of the Rewards page: named series over days (or weeks) with a legend that hides
a series, hover tooltips with the exact date, value and series, axes with units and
thousands separators, mouse zoom and pan on the time axis only, and export as PNG or SVG.

Values are integers (events, effective usage in ppm, money in micro-units); they become
floats only as plotted heights, and tooltips are written from the integers (money with its
six decimals, never through a float).

Drawing is cheap whatever the data: each series is one PlotDataItem with clipping to the
view and automatic downsampling, so a range change redraws only what is visible.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.ui.theme import Theme

DAY_SECONDS = 86_400
TICK_GAP_PX = 78  # room per date label on a time axis

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


class DayAxis(pg.AxisItem):
    """Dates under a time axis, one label per so many days that labels never touch: every
    day, 2 days, a week, two weeks, a month... whatever the width allows."""

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
        with_year = spacing >= 56 * DAY_SECONDS
        fmt = "%b %Y" if with_year else "%d %b"
        return [
            datetime.fromtimestamp(v - DAY_SECONDS / 2, UTC).strftime(fmt).lstrip("0")
            for v in values
        ]


class CountAxis(pg.AxisItem):
    """A value axis with thousands separators ('12,500'), never an SI prefix or '×1e6'."""

    def __init__(self, orientation: str = "left", **kw: Any) -> None:
        super().__init__(orientation, **kw)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        places = 0 if spacing >= 1 else min(6, max(1, math.ceil(-math.log10(spacing))))
        return [f"{v:,.{places}f}" for v in values]


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
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.hidden: set[str] = set()
        colors = theme.colors
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.axis = DayAxis("bottom")
        self.value_axis = CountAxis("left")
        self.plot = pg.PlotWidget(axisItems={"bottom": self.axis, "left": self.value_axis})
        self.plot.setBackground(colors["surface"])
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=True, y=False)  # zoom and pan along time only
        self.plot.showGrid(x=False, y=True, alpha=0.15)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(pg.mkPen(colors["border"]))
            axis.setTextPen(pg.mkPen(colors["muted"]))
        self.view_box = self.plot.getPlotItem().vb
        # The value axis fits the visible series in the time range shown: computed here from
        # the values (a slice of one array), not by asking every line for its bounds.
        self.view_box.disableAutoRange(axis=pg.ViewBox.YAxis)
        self._xs = np.zeros(0)
        self._ys = np.zeros((0, 0))
        self.view_box.sigXRangeChanged.connect(self._x_changed)
        self.set_y_label(y_label)
        self.plot.setMinimumHeight(170)
        self.plot.scene().sigMouseMoved.connect(self._hover)
        layout.addWidget(self.plot, 1)
        self.legend = QListWidget()
        self.legend.setAccessibleName("Series shown")
        self.legend.setToolTip("Untick a series to hide it")
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
        self.plot.getAxis("left").setLabel(text, color=self.theme.colors["muted"])

    def set_series(
        self, buckets: Sequence[date], series: Sequence[Series], *, bucket_days: int = 1
    ) -> None:
        """Replace every line: `buckets` are the first days of the chart's days (or weeks,
        `bucket_days` 7), oldest first; each series has one value per bucket."""
        self.buckets = list(buckets)
        self.bucket_days = bucket_days
        self.series = list(series)
        keep_hidden = self.hidden & {s.key for s in series}
        self.hidden = keep_hidden
        plot = self.plot.getPlotItem()
        for curve in self.curves.values():
            plot.removeItem(curve)
        self.curves = {}
        xs = np.fromiter(
            (day_start(d) + bucket_days * DAY_SECONDS / 2 for d in self.buckets),
            dtype=np.float64,
            count=len(self.buckets),
        )
        self._xs = xs
        self._ys = np.asarray([s.values for s in self.series], dtype=np.float64).reshape(
            len(self.series), len(self.buckets)
        ) / float(self.scale)
        # Many lines: 1-pixel (cosmetic) pens, which Qt draws many times faster than wide ones.
        width = 1.6 if len(self.series) <= 24 else 1.0
        self.legend.blockSignals(True)
        self.legend.clear()
        for n, s in enumerate(self.series):
            color = series_color(n)
            curve = pg.PlotDataItem(
                xs,
                self._ys[n],
                pen=pg.mkPen(color, width=width),
                name=s.label,
                antialias=False,
                skipFiniteCheck=True,  # integers: never NaN
            )
            curve.setVisible(s.key not in self.hidden)
            plot.addItem(curve)
            self.curves[s.key] = curve
            item = QListWidgetItem(_swatch(color), s.label)
            item.setData(Qt.ItemDataRole.UserRole, s.key)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Unchecked if s.key in self.hidden else Qt.CheckState.Checked
            )
            item.setToolTip(f"{s.label}\n{s.key}" if s.key != s.label else s.label)
            self.legend.addItem(item)
        self.legend.blockSignals(False)
        self.fit_y()

    def fit_y(self) -> None:
        """The value axis from 0 to the largest visible value in the time range shown."""
        ys = self._ys
        if ys.size == 0:
            self.view_box.setYRange(0, 1, padding=0)
            return
        low, high = self.view_box.viewRange()[0]
        i = int(np.searchsorted(self._xs, low, side="left"))
        j = int(np.searchsorted(self._xs, high, side="right"))
        rows = [n for n, s in enumerate(self.series) if s.key not in self.hidden]
        top = float(ys[rows, max(0, i - 1) : j + 1].max()) if rows and j > i else 0.0
        top = top if top > 0 else 1.0
        self.view_box.setYRange(-top * 0.03, top * 1.05, padding=0)  # room for the 0 label

    def set_visible(self, key: str, visible: bool) -> None:
        """Show or hide one series (as its legend box does)."""
        if visible:
            self.hidden.discard(key)
        else:
            self.hidden.add(key)
        curve = self.curves.get(key)
        if curve is not None:
            curve.setVisible(visible)
        for row in range(self.legend.count()):
            item = self.legend.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                state = Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked
                if item.checkState() != state:
                    self.legend.blockSignals(True)
                    item.setCheckState(state)
                    self.legend.blockSignals(False)
        self.fit_y()

    def visible_keys(self) -> list[str]:
        return [s.key for s in self.series if s.key not in self.hidden]

    def _legend_changed(self, item: QListWidgetItem) -> None:
        key = item.data(Qt.ItemDataRole.UserRole)
        self.set_visible(key, item.checkState() == Qt.CheckState.Checked)

    # -- range -----------------------------------------------------------------------------
    def set_time_range(self, low: float, high: float) -> None:
        self.view_box.setXRange(low, high, padding=0)  # fit_y follows (sigXRangeChanged)

    def time_range(self) -> tuple[float, float]:
        low, high = self.view_box.viewRange()[0]
        return float(low), float(high)

    def _x_changed(self, _vb: Any, rng: Any) -> None:
        self.fit_y()
        self.rangeChanged.emit(float(rng[0]), float(rng[1]))

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

    def _hover(self, pos: QPointF) -> None:
        if not self.view_box.sceneBoundingRect().contains(pos):
            QToolTip.hideText()
            return
        point = self.view_box.mapSceneToView(pos)
        text = self.tip(point.x(), point.y())
        if text:
            QToolTip.showText(QCursor.pos(), text, self.plot)
        else:
            QToolTip.hideText()

    # -- export ----------------------------------------------------------------------------
    def export(self, path: Path) -> Path:
        return export_plot(self.plot, path)


def export_plot(plot: pg.PlotWidget, path: Path) -> Path:
    """The chart as shown (its visible range and series) to a PNG or an SVG file, by the
    file's suffix. SVG is drawn by Qt's SVG generator (vector lines and text)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        from PySide6.QtCore import QRect, QSize
        from PySide6.QtGui import QPainter
        from PySide6.QtSvg import QSvgGenerator

        size = QSize(max(plot.width(), 200), max(plot.height(), 120))
        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(size)
        generator.setViewBox(QRect(0, 0, size.width(), size.height()))
        generator.setTitle("Contributor Desk chart")
        painter = QPainter(generator)
        try:
            plot.render(painter)
        finally:
            painter.end()
    elif suffix == ".png":
        from pyqtgraph.exporters import ImageExporter

        exporter = ImageExporter(plot.getPlotItem())
        exporter.parameters()["width"] = max(int(plot.width()), 200) * 2  # sharp on HiDPI
        exporter.export(str(path))
    else:
        raise ValueError(f"{path.name}: a chart is exported as .png or .svg")
    if not path.is_file():
        raise OSError(f"{path} was not written")
    return path


def _swatch(color: str) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(QColor(color))
    return QIcon(pix)
