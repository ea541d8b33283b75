"""Mouse schemes of the slice views, and the keyboard-and-mouse help built from them.

The default follows the reading-room convention of 3D Slicer, OHIF and Horos: left-drag window/level,
middle-drag pan, right-drag zoom, wheel through the slices. The scheme of JCS Viewer's first versions (left-drag
pan, right-drag window/level) stays available in Settings. Ctrl+wheel zooms in both; with a lesion tool active,
left-drag paints and the scheme's other buttons keep their roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from PySide6.QtCore import Qt

#: What a drag can do. ``pan`` and ``zoom`` are pyqtgraph's own drags (pan: left or middle, zoom: right).
ACTIONS = {"window": "window / level", "pan": "pan", "zoom": "zoom"}
_BUTTONS = {Qt.MouseButton.LeftButton: "left", Qt.MouseButton.MiddleButton: "middle",
            Qt.MouseButton.RightButton: "right"}


@dataclass(frozen=True)
class MouseScheme:
    """What the left, middle and right drags do (one of :data:`ACTIONS` each)."""

    name: str
    title: str
    left: str
    middle: str
    right: str

    def action(self, button: Qt.MouseButton) -> str | None:
        """The drag action of ``button`` (None: a button the scheme leaves alone)."""
        side = _BUTTONS.get(button)
        return None if side is None else getattr(self, side)

    def drags(self) -> list[tuple[str, str]]:
        """(button, action) rows for the help."""
        return [(f"{side.title()} drag", ACTIONS[getattr(self, side)]) for side in ("left", "middle", "right")]


SCHEMES: dict[str, MouseScheme] = {
    "reading-room": MouseScheme("reading-room", "Reading room (as 3D Slicer, OHIF, Horos): left W/L, middle pan, "
                                "right zoom", left="window", middle="pan", right="zoom"),
    "pan-first": MouseScheme("pan-first", "Pan first (JCS Viewer 1.x): left pan, right W/L",
                             left="pan", middle="pan", right="window"),
}
DEFAULT_SCHEME = "reading-room"


def scheme(name: str) -> MouseScheme:
    """The scheme called ``name``; unknown names (an old settings file) give the default."""
    return SCHEMES.get(str(name).strip().lower(), SCHEMES[DEFAULT_SCHEME])


#: Keys of the slice views: (key, what it does).
KEYS: tuple[tuple[str, str], ...] = (
    ("Wheel, ↑ / ↓", "next / previous slice (PgUp / PgDn: 10 slices)"),
    ("Ctrl + wheel", "zoom"),
    ("1 / 2 / 3", "lung / mediastinum / bone window (HU studies)"),
    ("R", "reset the view"),
    ("S", "show / hide the overlays"),
    ("I", "show / hide the image corners (View ▸ Anonymise view hides the patient's name, ID and dates)"),
    ("N / P", "next / previous flagged slice"),
    ("Shift+N / Shift+P", "first slice of the next / previous run of flagged slices"),
    ("C / X", "confirm / reject the slice"),
    ("Esc", "cancel the running task"),
    ("Shift + move or click", "move the crosshair in every view (1×3 layout)"),
    ("Double-click a view", "maximise it in the 1×3 layout, double-click again to restore"),
    ("B / E", "lesion brush / eraser (left drag paints, Ctrl held erases)"),
    ("[ / ] or Shift + wheel", "brush size"),
    ("G", "grow a lesion: a click paints the connected region within the HU range, inside the lungs"),
    ("Ctrl+I", "interpolate the lesion between your edited slices"),
    ("L / O", "ruler / ellipse ROI (left-drag; listed in the Measurements tab and the report)"),
    ("Ctrl+Z / Ctrl+Y", "undo / redo an edit"),
)


def help_html(current: MouseScheme) -> str:
    """The Help ▸ Keyboard and mouse text: one table of the mouse (this scheme) and the keys."""
    rows = [*current.drags(), *KEYS]
    cells = "".join(f"<tr><td style='padding:2px 12px 2px 0'><b>{escape(k)}</b></td><td>{escape(v)}</td></tr>"
                    for k, v in rows)
    return (f"<p>Mouse scheme: {escape(current.title)} (File ▸ Settings).</p>"
            f"<table cellspacing='0'>{cells}</table>"
            "<p>Click or drag on the score strip to go to a slice.</p>")
