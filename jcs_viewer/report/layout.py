"""Page geometry and table colours of the PDF report (shared by its sections)."""

from __future__ import annotations

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm

PAGE = A4
MARGIN = 16 * mm
FOOTER_SPACE = 14 * mm
GRID = colors.Color(0.55, 0.55, 0.55)
HEAD_FILL = colors.Color(0.90, 0.90, 0.90)
# The document frame pads 6 pt on each side: content wider than this would overflow the margin.
CONTENT_W = PAGE[0] - 2 * MARGIN - 12
