"""Render resources/icons/jcs-viewer.svg to the PNG sizes desktops look for (Qt's QSvgRenderer).

Run: ``.venv/bin/python packaging/make_icons.py`` (offscreen; no display needed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICON_DIR = Path(__file__).resolve().parents[1] / "resources" / "icons"
SVG = ICON_DIR / "jcs-viewer.svg"
#: The freedesktop hicolor sizes plus 512 for HiDPI docks.
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def png_path(size: int) -> Path:
    """Where the PNG of ``size`` pixels lives."""
    return ICON_DIR / f"jcs-viewer-{size}.png"


def render(sizes: tuple[int, ...] = SIZES) -> list[Path]:
    """Render every size from the SVG master; returns the written paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"{SVG} is not a valid SVG file.")
    written = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        out = png_path(size)
        tmp = out.with_suffix(".tmp.png")
        if not image.save(str(tmp), "PNG"):
            raise SystemExit(f"Could not write {out}.")
        os.replace(tmp, out)
        written.append(out)
    return written


if __name__ == "__main__":
    for p in render():
        print(p)
