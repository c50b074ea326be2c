"""Find shipped resources (icons, stylesheets) and build themed icons from the SVG masters.

Why here: the SVG masters in resources/ are the single source (PNG/ICO are generated from them);
sidebar icons use `currentColor` so one file serves both the light and the dark theme.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QIconEngine, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer


def resources_dir() -> Path:
    """resources/ next to the app package (source checkout) or inside a frozen bundle."""
    frozen = getattr(sys, "_MEIPASS", None)
    candidates = [Path(frozen) / "resources"] if frozen else []
    candidates.append(Path(__file__).resolve().parents[2] / "resources")
    for candidate in candidates:
        if (candidate / "icons").is_dir():
            return candidate
    return candidates[-1]


def icon_path(name: str) -> Path:
    return resources_dir() / "icons" / f"{name}.svg"


@cache
def _svg_source(name: str) -> str:
    try:
        return icon_path(name).read_text("utf-8")
    except OSError:
        return ""


def render_svg(name: str, size: int, color: str = "#000000", ratio: float = 1.0) -> QPixmap:
    """Render one SVG master at a device-pixel size, with currentColor set to `color`."""
    source = _svg_source(name).replace("currentColor", color)
    renderer = QSvgRenderer(QByteArray(source.encode("utf-8")))
    px = max(1, round(size * ratio))
    pixmap = QPixmap(px, px)
    pixmap.fill(Qt.GlobalColor.transparent)
    if renderer.isValid():
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, px, px))
        painter.end()
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


class _SvgIconEngine(QIconEngine):
    """Renders the SVG on demand at the exact size and ratio asked for (high-DPI, lazy)."""

    def __init__(self, name: str, color: str, disabled: str) -> None:
        super().__init__()
        self._name = name
        self._color = color
        self._disabled = disabled
        self._cache: dict[tuple[int, int, int, int], QPixmap] = {}

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        return self.scaledPixmap(size, mode, state, 1.0)

    def scaledPixmap(
        self, size: QSize, mode: QIcon.Mode, state: QIcon.State, scale: float
    ) -> QPixmap:
        side = min(size.width(), size.height())
        key = (side, round(scale * 100), int(mode.value), int(state.value))
        if key not in self._cache:
            color = self._disabled if mode == QIcon.Mode.Disabled else self._color
            self._cache[key] = render_svg(self._name, side, color, scale)
        return self._cache[key]

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        ratio = painter.device().devicePixelRatioF() if painter.device() else 1.0
        pm = self.scaledPixmap(rect.size(), mode, state, ratio)
        painter.drawPixmap(rect, pm)

    def clone(self) -> QIconEngine:
        return _SvgIconEngine(self._name, self._color, self._disabled)


def themed_icon(name: str, color: QColor | str, disabled: QColor | str | None = None) -> QIcon:
    """An icon in the theme's colour (currentColor), crisp at any size and DPI."""
    normal = color.name() if isinstance(color, QColor) else color
    dim = (disabled.name() if isinstance(disabled, QColor) else disabled) or "#9aa0a6"
    return QIcon(_SvgIconEngine(name, normal, dim))


def app_icon() -> QIcon:
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addPixmap(render_svg("app", size))
    return icon


ICON_SIZE = QSize(18, 18)
