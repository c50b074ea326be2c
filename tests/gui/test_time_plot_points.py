"""A usage line of a single day is still seen: a series with few points is drawn with a dot
per point (a polyline of one point draws nothing)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QImage, QPainter

from app.ui.widgets.time_plot import DAY_SECONDS, LinePlot

LINE = "#d62728"


def _pixels_of(image: QImage, color: QColor) -> int:
    want = color.rgb() & 0xFFFFFF
    return sum(
        1
        for y in range(image.height())
        for x in range(image.width())
        if image.pixel(x, y) & 0xFFFFFF == want
    )


def _render(theme: Any, days: int) -> QImage:
    plot = LinePlot(theme.colors)
    noon = 20_000 * DAY_SECONDS + DAY_SECONDS / 2
    xs = [noon + d * DAY_SECONDS for d in range(days)]
    plot.set_lines(xs, [("model", [1.0] * days, LINE)], set())
    plot.set_x_range(noon - 3 * DAY_SECONDS, noon + (days + 3) * DAY_SECONDS)
    size = QSize(400, 200)
    image = QImage(size, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    plot.render_into(painter, size)
    painter.end()
    return image


def test_a_single_day_of_usage_is_drawn(qtbot: Any, theme: Any) -> None:
    assert _pixels_of(_render(theme, 1), QColor(LINE)) > 0
