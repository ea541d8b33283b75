"""Fonts for the report: DejaVu Sans when the system has it, else Helvetica; a CJK font for what DejaVu lacks.

The 14 standard PDF fonts only cover Latin-1, so a patient name in Greek or Cyrillic would print as boxes; an
embedded TrueType subset of DejaVu Sans avoids that where the font is installed. DejaVu has no CJK ideographs, kana
or hangul: names and descriptions in them (a Chinese, Japanese or Korean hospital's headers) are printed in the
first TrueType CJK font the system has (WenQuanYi, Droid Sans Fallback, AR PL, Microsoft YaHei, SimSun, Malgun,
MS Gothic, Arial Unicode), embedded as a subset too, character run by character run (:meth:`Fonts.markup`).
CFF-outlined fonts (Noto Sans CJK, Source Han) cannot be embedded by reportlab and are passed over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

_CANDIDATE_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/Library/Fonts"),
    Path("C:/Windows/Fonts"),
)
#: TrueType fonts with CJK ideographs, kana and hangul (file, index in a collection), the first one found is used.
_CJK_CANDIDATES = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    ("/usr/share/fonts/google-droid/DroidSansFallbackFull.ttf", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("C:/Windows/Fonts/msyh.ttc", 0),
    ("C:/Windows/Fonts/simsun.ttc", 0),
    ("C:/Windows/Fonts/malgun.ttf", 0),
    ("C:/Windows/Fonts/msgothic.ttc", 0),
    ("/Library/Fonts/Arial Unicode.ttf", 0),
    ("/System/Library/Fonts/Supplemental/Arial Unicode.ttf", 0),
)


@dataclass(frozen=True)
class Fonts:
    regular: str
    bold: str
    mono: str
    unicode: bool  # whether characters beyond Latin-1 render
    #: a font for the characters the regular one lacks (CJK), and the code points each of the two has
    fallback: str | None = None
    regular_chars: frozenset[int] = field(default=frozenset(), repr=False)
    fallback_chars: frozenset[int] = field(default=frozenset(), repr=False)

    def ge(self) -> str:
        """The 'greater or equal' sign this font can print."""
        return "\u2265" if self.unicode else ">="

    def markup(self, text: str) -> str:
        """``text`` escaped for a Paragraph, each run of characters only the fallback font has set in it."""
        if not self.fallback:
            return escape(text)
        out, run, in_fallback = [], [], False
        for ch in text:
            wants = ord(ch) not in self.regular_chars and ord(ch) in self.fallback_chars
            if wants != in_fallback and run:
                out.append(_run(run, self.fallback if in_fallback else None))
                run = []
            run.append(ch)
            in_fallback = wants
        if run:
            out.append(_run(run, self.fallback if in_fallback else None))
        return "".join(out)


def _run(chars: list[str], font: str | None) -> str:
    text = escape("".join(chars))
    return f'<font name="{font}">{text}</font>' if font else text


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
            regular = pdfmetrics.getFont("JCS-regular").face.charToGlyph
            cjk = _register_cjk()
            return Fonts("JCS-regular", "JCS-bold", "JCS-mono", True, cjk[0] if cjk else None, frozenset(regular),
                         cjk[1] if cjk else frozenset())
    return Fonts("Helvetica", "Helvetica-Bold", "Courier", False)


def _register_cjk() -> tuple[str, frozenset[int]] | None:
    """Register the first CJK TrueType font found (see :data:`_CJK_CANDIDATES`): its name and code points."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    for path, index in _CJK_CANDIDATES:
        if not Path(path).is_file():
            continue
        try:
            font = TTFont("JCS-cjk", path, subfontIndex=index)
        except (TTFError, OSError):  # CFF outlines, a damaged file
            continue
        pdfmetrics.registerFont(font)
        return "JCS-cjk", frozenset(font.face.charToGlyph)
    return None
