"""The per-slice score plot as vector graphics (a reportlab Drawing, no raster).

Series differ by dash pattern and weight as well as colour, so the plot reads in grey.
"""

from __future__ import annotations

import math

import numpy as np
from reportlab.graphics.shapes import Drawing, Group, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors

PROB_COLOUR = colors.HexColor("#1f3b73")
CUTOFF_COLOUR = colors.HexColor("#b22222")
AREA_COLOUR = colors.HexColor("#8a5a00")
FLAG_FILL = colors.Color(0.82, 0.82, 0.82)
CUTOFF_DASH = (5, 2.5)
AREA_DASH = (1.2, 1.8)


def nice_step(span: float, target_ticks: int = 8) -> float:
    """A 1/2/5 x 10^k tick step giving about ``target_ticks`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    base = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * base:
            return m * base
    return 10 * base


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` index of each run of True."""
    idx = np.flatnonzero(np.asarray(flags, dtype=bool))
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def score_plot(
    probability: np.ndarray,
    cutoff: float,
    positive: np.ndarray,
    area_mm2: np.ndarray | None,
    key_slices: list[int],
    *,
    width: float,
    height: float = 170.0,
    font: str = "Helvetica",
    ge: str = ">=",
) -> Drawing:
    """Per-slice score with the cutoff, flagged runs shaded, lesion area on a second axis.

    Args:
        probability: ``(z,)`` per-slice score (``StudyResult.slice_probability``); NaN where a slice has none.
        cutoff: slice cutoff (a slice is positive at or above it).
        positive: ``(z,)`` bool, the flagged slices.
        area_mm2: ``(z,)`` lesion area per slice, or None.
        key_slices: indices marked with a triangle (the key images).
        width, height: drawing size in points.
        font: base font name.
        ge: the "greater or equal" sign the font can print.
    """
    n = len(probability)
    d = Drawing(width, height)
    left, right, bottom, top = 34.0, 46.0 if area_mm2 is not None else 12.0, 44.0, 14.0
    pw, ph = width - left - right, height - bottom - top
    span = max(n - 1, 1)

    def x_of(z: float) -> float:
        return left + (z / span) * pw if n > 1 else left + pw / 2

    def y_of(p: float) -> float:
        return bottom + float(np.clip(p, 0, 1)) * ph

    half = pw / span / 2 if n > 1 else pw / 2
    for a, b in runs(positive):
        x0, x1 = max(left, x_of(a) - half), min(left + pw, x_of(b) + half)
        d.add(Rect(x0, bottom, x1 - x0, ph, fillColor=FLAG_FILL, strokeColor=None))
    d.add(Rect(left, bottom, pw, ph, fillColor=None, strokeColor=colors.black, strokeWidth=0.6))

    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        d.add(Line(left - 3, y_of(p), left, y_of(p), strokeWidth=0.6))
        d.add(String(left - 5, y_of(p) - 3, f"{p:.2f}", fontName=font, fontSize=6.5, textAnchor="end"))
    # Slices are numbered from 1, as in the viewer and everywhere else in the report.
    step = max(1, int(nice_step(n - 1 if n > 1 else 1)))
    for number in sorted({1, *range(step, n + 1, step)}):
        d.add(Line(x_of(number - 1), bottom, x_of(number - 1), bottom - 3, strokeWidth=0.6))
        d.add(String(x_of(number - 1), bottom - 11, str(number), fontName=font, fontSize=6.5, textAnchor="middle"))
    d.add(String(left + pw / 2, bottom - 21, "slice", fontName=font, fontSize=7, textAnchor="middle"))
    # Rotated axis titles: a Group carries the transform.
    d.add(Group(String(0, 0, "slice score", fontName=font, fontSize=7, textAnchor="middle"),
                transform=(0, 1, -1, 0, 9, bottom + ph / 2)))

    if area_mm2 is not None:
        peak = float(np.max(area_mm2)) if len(area_mm2) else 0.0
        scale = peak if peak > 0 else 1.0
        pts = []
        for z in range(n):
            pts += [x_of(z), bottom + float(area_mm2[z]) / scale * ph]
        if n > 1:
            d.add(PolyLine(pts, strokeColor=AREA_COLOUR, strokeWidth=1.3, strokeDashArray=list(AREA_DASH)))
        # Round tick values (0, 500, 1000, ...) up to the peak, which is the top of the axis.
        step = nice_step(peak, 4) if peak > 0 else 1.0
        for value in np.arange(0.0, peak + 1e-9, step) if peak > 0 else [0.0]:
            y = bottom + float(value) / scale * ph
            d.add(Line(left + pw, y, left + pw + 3, y, strokeWidth=0.6))
            d.add(String(left + pw + 5, y - 3, f"{value:,.0f}" if step >= 1 else f"{value:g}", fontName=font,
                         fontSize=6.5))
        d.add(Group(String(0, 0, "lesion area (mm\u00b2)", fontName=font, fontSize=7, textAnchor="middle"),
                    transform=(0, -1, 1, 0, width - 6, bottom + ph / 2)))

    d.add(Line(left, y_of(cutoff), left + pw, y_of(cutoff), strokeColor=CUTOFF_COLOUR, strokeWidth=1.0,
               strokeDashArray=list(CUTOFF_DASH)))
    # Slices without a score (no lung: NaN) break the line: a gap, never a drawn zero.
    scored = np.isfinite(np.asarray(probability, dtype=float))
    for a, b in runs(scored):
        pts = []
        for z in range(a, b + 1):
            pts += [x_of(z), y_of(float(probability[z]))]
        if b > a:
            d.add(PolyLine(pts, strokeColor=PROB_COLOUR, strokeWidth=1.4))
        else:
            d.add(Rect(pts[0] - 1.5, pts[1] - 1.5, 3, 3, fillColor=PROB_COLOUR, strokeColor=None))

    for z in key_slices:
        x = x_of(z)
        y = bottom + ph
        d.add(Polygon([x - 3, y + 6, x + 3, y + 6, x, y + 1], fillColor=colors.black, strokeColor=None))

    # Legend: a sample of each line with its dash pattern, then the shading.
    ly = 6.0
    x = left
    for text, colour, dash, w in (
        ("slice score", PROB_COLOUR, None, 1.4),
        (f"cutoff {cutoff:.2f}", CUTOFF_COLOUR, CUTOFF_DASH, 1.0),
        ("lesion area", AREA_COLOUR, AREA_DASH, 1.3),
    ):
        if text == "lesion area" and area_mm2 is None:
            continue
        d.add(Line(x, ly + 2.5, x + 22, ly + 2.5, strokeColor=colour, strokeWidth=w,
                   strokeDashArray=list(dash) if dash else None))
        d.add(String(x + 26, ly, text, fontName=font, fontSize=7))
        x += 30 + len(text) * 3.6
    d.add(Rect(x, ly - 1, 12, 7, fillColor=FLAG_FILL, strokeColor=colors.black, strokeWidth=0.4))
    d.add(String(x + 16, ly, f"flagged slice (score {ge} cutoff)", fontName=font, fontSize=7))
    x += 16 + 150
    d.add(Polygon([x, ly + 6, x + 6, ly + 6, x + 3, ly + 1], fillColor=colors.black, strokeColor=None))
    d.add(String(x + 10, ly, "key image", fontName=font, fontSize=7))
    return d
