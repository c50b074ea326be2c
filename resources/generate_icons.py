"""Generate the app icon's PNG/ICO/ICNS files from the single SVG master (resources/icons/app.svg).

    .venv/bin/python resources/generate_icons.py

Renders with Qt's SVG renderer (offscreen) and packs ICO/ICNS with Pillow, so packaging never
needs a hand-made bitmap.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(HERE / "icons" / "app.svg"))
    if not renderer.isValid():
        print("app.svg is not a valid SVG", file=sys.stderr)
        return 1
    out = HERE / "icons" / "png"
    out.mkdir(exist_ok=True)
    paths = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        path = out / f"contributor-desk-{size}.png"
        image.save(str(path))
        paths.append(path)
    big = Image.open(out / "contributor-desk-512.png")
    big.save(HERE / "icons" / "contributor-desk.ico", sizes=[(s, s) for s in SIZES if s <= 256])
    big.save(HERE / "icons" / "contributor-desk.icns")
    del app
    for p in [
        *paths,
        HERE / "icons" / "contributor-desk.ico",
        HERE / "icons" / "contributor-desk.icns",
    ]:
        print(p.relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
