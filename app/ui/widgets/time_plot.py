"""Time plots drawn with QPainter: a value axis with thousands separators, a date axis whose
labels never touch, a horizontal grid, and zoom and pan along time only (mouse wheel, drag,
and the keyboard: + and - zoom, Left and Right pan, Home resets).

`TimePlot` owns the view (time range, its limits, the value range) and the axes; `LinePlot`
draws one line per series and `BarPlot` one bar per day. Lines are kept as polygons in plot
units built once per data change, and drawn through a transform with 1-pixel cosmetic pens,
so a range change redraws without touching a point in Python. Export is the same painting
onto a PNG image (twice the size, sharp on HiDPI) or into an SVG file.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QLineF, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QToolTip, QWidget

DAY_SECONDS = 86_400
TICK_GAP_PX = 78  # room per date label on a time axis
ZOOM_STEP = 0.8  # one wheel notch or one '+' keeps this share of the range
MARKER_POINTS = 45  # a series with at most this many points in view gets a dot per point
MARKER_RADIUS = 2.5


class DayAxis:
    """Dates under a time axis, one label per so many days that labels never touch: every
    day, 2 days, a week, two weeks, a month... whatever the width allows."""

    STEPS = (1, 2, 7, 14, 28, 56, 91, 182, 364)

    def __init__(self, font: QFont | None = None) -> None:
        self.font = font or QApplication.font()

    def tickValues(
        self, minVal: float, maxVal: float, size: float
    ) -> list[tuple[float, list[float]]]:  # noqa: N802, N803, E501
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

    def tickStrings(self, values: Sequence[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        with_year = spacing >= 56 * DAY_SECONDS
        fmt = "%b %Y" if with_year else "%d %b"
        return [
            datetime.fromtimestamp(v - DAY_SECONDS / 2, UTC).strftime(fmt).lstrip("0")
            for v in values
        ]


class CountAxis:
    """A value axis with thousands separators ('12,500'), never an SI prefix or '×1e6'."""

    def ticks(self, low: float, high: float, size_px: float) -> tuple[float, list[float]]:
        """Round values between low and high about 40 pixels apart: (spacing, values)."""
        if high <= low or size_px <= 0:
            return 1.0, []
        raw = (high - low) / max(1.0, size_px / 40)
        power = 10 ** math.floor(math.log10(raw))
        spacing = next((m * power for m in (1, 2, 5, 10) if m * power >= raw), 10 * power)
        first = math.ceil(low / spacing)
        return spacing, [n * spacing for n in range(first, int(high // spacing) + 1)]

    def tickStrings(self, values: Sequence[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        places = 0 if spacing >= 1 else min(6, max(1, math.ceil(-math.log10(spacing))))
        return [f"{v:,.{places}f}" for v in values]


TipFn = Callable[[float, float], str | None]


def _mix(a: QColor, b: QColor, share: float) -> QColor:
    """`share` of colour a over colour b, opaque."""
    return QColor.fromRgbF(
        a.redF() * share + b.redF() * (1 - share),
        a.greenF() * share + b.greenF() * (1 - share),
        a.blueF() * share + b.blueF() * (1 - share),
    )


class TimePlot(QWidget):
    """The frame, axes and view of a time plot; subclasses draw what is inside."""

    rangeChanged = Signal(float, float)  # the visible time range (seconds since the epoch)
    resetRequested = Signal()  # Home: back to the chosen range (the page knows it)

    def __init__(self, colors: dict[str, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colors = colors
        self.y_label = ""
        self.day_axis = DayAxis(self.font())
        self.count_axis = CountAxis()
        self.tip_fn: TipFn | None = None
        self.axis_width = 76  # the least room for the value axis and its label
        self._x = (0.0, float(DAY_SECONDS))
        self._limits = (-math.inf, math.inf, float(DAY_SECONDS))
        self._y = (0.0, 1.0)
        self._drag: tuple[float, tuple[float, float]] | None = None
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # zoom and pan from the keyboard
        self.setMinimumHeight(170)
        self.setAccessibleDescription(
            "Wheel or + and - zoom the time axis, drag or Left and Right pan, Home resets"
        )

    # -- view --------------------------------------------------------------------------------
    def x_range(self) -> tuple[float, float]:
        return self._x

    def y_range(self) -> tuple[float, float]:
        return self._y

    def set_limits(self, x_min: float, x_max: float, min_range: float) -> None:
        self._limits = (x_min, x_max, min_range)

    def set_x_range(self, low: float, high: float, *, emit: bool = True) -> None:
        """Show [low, high] (kept inside the limits), refit the values, repaint."""
        x_min, x_max, min_range = self._limits
        if high - low < min_range:
            mid = (low + high) / 2
            low, high = mid - min_range / 2, mid + min_range / 2
        if high - low > x_max - x_min:
            low, high = x_min, x_max
        elif low < x_min:
            low, high = x_min, high + (x_min - low)
        elif high > x_max:
            low, high = low - (high - x_max), x_max
        if (low, high) == self._x:
            return
        self._x = (float(low), float(high))
        self.fit_y()
        self.update()
        if emit:
            self.rangeChanged.emit(self._x[0], self._x[1])

    def scale_by(self, factor: float, centre: float | None = None) -> None:
        """Zoom the time axis: `factor` < 1 in, > 1 out, around `centre` (default the middle)."""
        low, high = self._x
        c = (low + high) / 2 if centre is None else centre
        self.set_x_range(c - (c - low) * factor, c + (high - c) * factor)

    def pan_by(self, seconds: float) -> None:
        low, high = self._x
        self.set_x_range(low + seconds, high + seconds)

    def set_y_range(self, low: float, high: float) -> None:
        self._y = (low, high if high > low else low + 1)
        self.update()

    def fit_y(self) -> None:
        """The value axis from 0 to the largest value shown (subclasses know their values)."""
        top = self.visible_max()
        top = top if top > 0 else 1.0
        self._y = (-top * 0.03, top * 1.05)  # room for the 0 label

    def visible_max(self) -> float:
        return 0.0

    # -- geometry ----------------------------------------------------------------------------
    def plot_rect(self, size: QSize | None = None) -> QRectF:
        """Where the data goes, inside the axes."""
        size = size or self.size()
        metrics = QFontMetrics(self.font())
        spacing, values = self.count_axis.ticks(self._y[0], self._y[1], max(1, size.height()))
        labels = self.count_axis.tickStrings(values or [self._y[1]], 1.0, spacing)
        left = max(metrics.horizontalAdvance(t) for t in labels) + 14
        left += metrics.height() + 4 if self.y_label else 0
        left = max(left, self.axis_width)  # equal on the page's charts: time axes line up
        bottom = metrics.height() + 10
        return QRectF(
            left, 8, max(10, size.width() - left - 12), max(10, size.height() - bottom - 8)
        )

    def transform(self, rect: QRectF, x0: float = 0.0, x_unit: float = 1.0) -> QTransform:
        """Plot units (x as (seconds - x0) / x_unit, y as values) to pixels of `rect`."""
        (low, high), (y_low, y_high) = self._x, self._y
        sx = rect.width() / ((high - low) / x_unit)
        sy = -rect.height() / (y_high - y_low)
        return QTransform(
            sx, 0, 0, sy, rect.left() - (low - x0) / x_unit * sx, rect.bottom() - y_low * sy
        )

    def to_time(self, px: float, rect: QRectF | None = None) -> float:
        rect = rect or self.plot_rect()
        low, high = self._x
        return low + (px - rect.left()) / rect.width() * (high - low)

    def to_value(self, py: float, rect: QRectF | None = None) -> float:
        rect = rect or self.plot_rect()
        y_low, y_high = self._y
        return y_low + (rect.bottom() - py) / rect.height() * (y_high - y_low)

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        try:
            self.render_into(painter, self.size())
        finally:
            painter.end()

    def render_into(self, painter: QPainter, size: QSize) -> None:
        """The whole plot, background to labels, on `painter` at `size`."""
        colors = self.colors
        painter.fillRect(QRect(0, 0, size.width(), size.height()), QColor(colors["surface"]))
        rect = self.plot_rect(size)
        painter.setFont(self.font())
        metrics = QFontMetrics(self.font())
        muted = QColor(colors["muted"])
        grid = _mix(QColor(colors["muted"]), QColor(colors["surface"]), 0.18)  # opaque: fast
        # Value axis: grid lines and labels.
        spacing, values = self.count_axis.ticks(self._y[0], self._y[1], rect.height())
        labels = self.count_axis.tickStrings(values, 1.0, spacing)
        to_px = self.transform(rect)
        ys = [to_px.map(QPointF(0, value)).y() for value in values]
        painter.setPen(QPen(grid, 0))
        painter.drawLines([QLineF(rect.left(), y, rect.right(), y) for y in ys])
        painter.setPen(muted)
        for y, label in zip(ys, labels, strict=True):
            box = QRectF(0, y - metrics.height() / 2, rect.left() - 8, metrics.height())
            painter.drawText(
                box, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), label
            )
        if self.y_label:
            painter.save()
            painter.translate(metrics.height() / 2 + 2, rect.center().y())
            painter.rotate(-90)
            painter.setPen(muted)
            width = metrics.horizontalAdvance(self.y_label)
            painter.drawText(QPointF(-width / 2, metrics.ascent() / 2), self.y_label)
            painter.restore()
        # Content, clipped to the plot.
        painter.save()
        painter.setClipRect(rect)
        self.draw_content(painter, rect)
        painter.restore()
        # Frame and date axis.
        painter.setPen(QPen(QColor(colors["border"]), 0))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        painter.drawLine(rect.bottomLeft(), rect.topLeft())
        ticks = self.day_axis.tickValues(self._x[0], self._x[1], rect.width())
        if ticks:
            ((step, xs),) = ticks
            texts = self.day_axis.tickStrings(xs, 1.0, step)
            painter.setPen(muted)
            for x, text in zip(xs, texts, strict=True):
                px = rect.left() + (x - self._x[0]) / (self._x[1] - self._x[0]) * rect.width()
                painter.drawLine(QPointF(px, rect.bottom()), QPointF(px, rect.bottom() + 4))
                w = metrics.horizontalAdvance(text)
                left = min(px - w / 2, size.width() - w - 2)  # the last label stays whole
                painter.drawText(QPointF(left, rect.bottom() + 6 + metrics.ascent()), text)

    def draw_content(self, painter: QPainter, rect: QRectF) -> None:
        """What the plot shows inside `rect` (subclasses)."""

    # -- mouse and keyboard --------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        notches = event.angleDelta().y() / 120
        if notches:
            self.scale_by(ZOOM_STEP**notches, self.to_time(event.position().x()))
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag = (event.position().x(), self._x)
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self._drag = None
        super().mouseReleaseEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        pos = event.position()
        if self._drag is not None:
            start_px, (low, high) = self._drag
            per_px = (high - low) / self.plot_rect().width()
            shift = (start_px - pos.x()) * per_px
            self.set_x_range(low + shift, high + shift)
            return
        rect = self.plot_rect()
        text = None
        if rect.contains(pos) and self.tip_fn is not None:
            text = self.tip_fn(self.to_time(pos.x(), rect), self.to_value(pos.y(), rect))
        if text:
            QToolTip.showText(event.globalPosition().toPoint(), text, self)
        else:
            QToolTip.hideText()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        low, high = self._x
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.scale_by(ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.scale_by(1 / ZOOM_STEP)
        elif key == Qt.Key.Key_Left:
            self.pan_by(-(high - low) / 8)
        elif key == Qt.Key.Key_Right:
            self.pan_by((high - low) / 8)
        elif key == Qt.Key.Key_Home:
            self.resetRequested.emit()
        else:
            super().keyPressEvent(event)

    # -- export --------------------------------------------------------------------------------
    def export(self, path: Path) -> Path:
        """The plot as shown to a PNG or an SVG file, by the file's suffix."""
        path = Path(path)
        suffix = path.suffix.lower()
        size = QSize(max(self.width(), 200), max(self.height(), 120))
        if suffix == ".svg":
            from PySide6.QtSvg import QSvgGenerator

            generator = QSvgGenerator()
            generator.setFileName(str(path))
            generator.setSize(size)
            generator.setViewBox(QRect(0, 0, size.width(), size.height()))
            generator.setTitle("Contributor Desk chart")
            painter = QPainter(generator)
            try:
                self.render_into(painter, size)
            finally:
                painter.end()
        elif suffix == ".png":
            image = QImage(size * 2, QImage.Format.Format_ARGB32_Premultiplied)
            image.setDevicePixelRatio(2)
            painter = QPainter(image)
            try:
                painter.setRenderHint(QPainter.RenderHint.Antialiasing)
                self.render_into(painter, size)
            finally:
                painter.end()
            if not image.save(str(path)):
                raise OSError(f"{path} could not be written")
        else:
            raise ValueError(f"{path.name}: a chart is exported as .png or .svg")
        if not path.is_file():
            raise OSError(f"{path} was not written")
        return path


class LinePlot(TimePlot):
    """One line per series over the bucket centres; hidden series are not drawn."""

    def __init__(self, colors: dict[str, str], parent: QWidget | None = None) -> None:
        super().__init__(colors, parent)
        self.xs: list[float] = []  # bucket centres, seconds since the epoch, ascending
        self.keys: list[str] = []
        self.values: list[Sequence[float]] = []  # plotted heights per series
        self.line_colors: list[QColor] = []
        self.hidden: set[str] = set()
        self._polygons: list[QPolygonF] = []
        self._pens: list[QPen] = []
        self._x0 = 0.0

    def set_lines(
        self,
        xs: Sequence[float],
        lines: Sequence[tuple[str, Sequence[float], str]],
        hidden: set[str],
    ) -> None:
        """Replace every line: (key, heights, colour) each, one height per x."""
        self.xs = list(xs)
        self.keys = [k for k, _v, _c in lines]
        self.values = [v for _k, v, _c in lines]
        self.line_colors = [QColor(c) for _k, _v, c in lines]
        self.hidden = set(hidden)
        self._x0 = self.xs[0] if self.xs else 0.0
        days = [(x - self._x0) / DAY_SECONDS for x in self.xs]
        self._polygons = [
            QPolygonF([QPointF(d, float(v)) for d, v in zip(days, values, strict=True)])
            for values in self.values
        ]
        width = 1.6 if len(self.values) <= 24 else 0.0  # many lines: cosmetic 1-pixel pens
        self._pens = []
        for color in self.line_colors:
            pen = QPen(color, width)
            pen.setCosmetic(True)
            self._pens.append(pen)
        self.fit_y()
        self.update()

    def set_hidden(self, hidden: set[str]) -> None:
        self.hidden = set(hidden)
        self.fit_y()
        self.update()

    def is_visible(self, key: str) -> bool:
        return key in self.keys and key not in self.hidden

    def _window(self) -> tuple[int, int]:
        """Indexes [i, j) of the points inside the range shown, one more each side."""
        low, high = self.x_range()
        i = max(0, bisect.bisect_left(self.xs, low) - 1)
        j = min(len(self.xs), bisect.bisect_right(self.xs, high) + 1)
        return i, j

    def visible_max(self) -> float:
        i, j = self._window()
        top = 0.0
        for key, values in zip(self.keys, self.values, strict=True):
            if key not in self.hidden and j > i:
                top = max(top, max(values[i:j]))
        return float(top)

    def draw_content(self, painter: QPainter, rect: QRectF) -> None:
        if not self._polygons:
            return
        i, j = self._window()
        if j - i < 1:
            return
        # Points mapped to pixels in C++ and drawn without a transform: the raster engine's
        # fast path for 1-pixel lines.
        to_px = self.transform(rect, self._x0, DAY_SECONDS)
        whole = i == 0 and j == len(self.xs)
        # A few lines look smoother antialiased; many are drawn fast (1-pixel, aliased).
        points = len(self._polygons) * (j - i)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, points <= 4_000)
        markers = j - i <= MARKER_POINTS and len(self._polygons) <= 24
        for key, polygon, pen in zip(self.keys, self._polygons, self._pens, strict=True):
            if key in self.hidden:
                continue
            painter.setPen(pen)
            shown = to_px.map(polygon if whole else polygon.mid(i, j - i))
            painter.drawPolyline(shown)
            if markers:
                # A line of one point draws nothing, and a few points read better as dots.
                painter.setBrush(pen.color())
                for n in range(shown.size()):
                    painter.drawEllipse(shown.at(n), MARKER_RADIUS, MARKER_RADIUS)
                painter.setBrush(Qt.BrushStyle.NoBrush)


class BarPlot(TimePlot):
    """One bar per day (its centre at noon UTC), 80% of a day wide."""

    def __init__(self, colors: dict[str, str], color: str, parent: QWidget | None = None) -> None:
        super().__init__(colors, parent)
        self.bar_color = QColor(color)
        self.xs: list[float] = []
        self.heights: list[float] = []

    def set_bars(self, xs: Sequence[float], heights: Sequence[float]) -> None:
        self.xs = list(xs)
        self.heights = list(heights)
        self.fit_y()
        self.update()

    def visible_max(self) -> float:
        low, high = self.x_range()
        i = bisect.bisect_left(self.xs, low - DAY_SECONDS)
        j = bisect.bisect_right(self.xs, high + DAY_SECONDS)
        return max(self.heights[i:j], default=0.0)

    def draw_content(self, painter: QPainter, rect: QRectF) -> None:
        low, high = self.x_range()
        i = bisect.bisect_left(self.xs, low - DAY_SECONDS)
        j = bisect.bisect_right(self.xs, high + DAY_SECONDS)
        if j <= i:
            return
        x0 = self.xs[i]
        bars = [
            QRectF((x - x0) / DAY_SECONDS - 0.4, 0.0, 0.8, h)
            for x, h in zip(self.xs[i:j], self.heights[i:j], strict=True)
        ]
        painter.setTransform(self.transform(rect, x0, DAY_SECONDS), True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.bar_color)
        painter.drawRects(bars)
