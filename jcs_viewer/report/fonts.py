"""Fonts for the report: DejaVu Sans when the system has it (any script in names), else Helvetica.

The 14 standard PDF fonts only cover Latin-1, so a patient name in Greek, Cyrillic or CJK
would print as boxes; an embedded TrueType subset avoids that where a font is available.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_CANDIDATE_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/Library/Fonts"),
    Path("C:/Windows/Fonts"),
)


@dataclass(frozen=True)
class Fonts:
    regular: str
    bold: str
    mono: str
    unicode: bool  # whether characters beyond Latin-1 render

    def ge(self) -> str:
        """The 'greater or equal' sign this font can print."""
        return "\u2265" if self.unicode else ">="


@lru_cache(maxsize=1)
def report_fonts() -> Fonts:
    """Register DejaVu Sans (regular, bold, mono) once; fall back to the standard fonts."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    for folder in _CANDIDATE_DIRS:
        files = {k: folder / f"{v}.ttf" for k, v in
                 (("regular", "DejaVuSans"), ("bold", "DejaVuSans-Bold"), ("mono", "DejaVuSansMono"))}
        if all(f.is_file() for f in files.values()):
            try:
                for key, f in files.items():
                    pdfmetrics.registerFont(TTFont(f"JCS-{key}", str(f)))
            except (TTFError, OSError):
                continue
            from reportlab.lib.fonts import addMapping

            addMapping("JCS-regular", 0, 0, "JCS-regular")
            addMapping("JCS-regular", 1, 0, "JCS-bold")
            addMapping("JCS-regular", 0, 1, "JCS-regular")
            addMapping("JCS-regular", 1, 1, "JCS-bold")
            return Fonts("JCS-regular", "JCS-bold", "JCS-mono", True)
    return Fonts("Helvetica", "Helvetica-Bold", "Courier", False)
