"""The viewer's plain-Python state; every Qt view observes it (napari style) and never owns data.

No Qt here: views call the setters and subscribe with :meth:`ViewerState.on`.
Events: ``volume``, ``result``, ``review`` (slice, decision), ``slice`` (z), ``window`` (width, level),
``layers`` (LayerSettings), ``cursor`` (info dict or None), ``view_reset``,
``point`` ((z, y, x): the linked 3-D crosshair; its z is the axial slice),
``labels`` (slice of z: the edited lesion mask changed there, redraw), ``quant`` (the live numbers of the
edited mask changed; ``result.quant`` holds them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.session.review import ReviewState
from jcs_viewer.vocabulary import LUNG_WINDOW_CENTER, LUNG_WINDOW_WIDTH

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.result import StudyResult

# key -> (name, width, level) in HU; DESIGN.md conventions.
HU_PRESETS: dict[int, tuple[str, float, float]] = {
    1: ("lung", LUNG_WINDOW_WIDTH, LUNG_WINDOW_CENTER),
    2: ("mediastinum", 400.0, 40.0),
    3: ("bone", 2000.0, 500.0),
}
# Non-HU volumes (8-bit stacks, uint8 MHA): every preset shows the full 0..255 range.
RAW_WINDOW = (255.0, 127.5)


@dataclass(frozen=True)
class LayerSettings:
    """What the overlays look like. ``overlays_visible`` is the master switch (key ``s``)."""

    overlays_visible: bool = True
    cam_visible: bool = True
    cam_opacity: float = 0.45
    cam_colormap: str = "jet"
    # Grad-CAM of the COVID class on a slice the classifier calls negative is mostly noise.
    cam_flagged_only: bool = True
    lesion_visible: bool = True
    lesion_opacity: float = 0.5
    lesion_outline: bool = False
    lesion_color: tuple[int, int, int] = (255, 40, 40)
    lung_visible: bool = True
    lung_opacity: float = 0.8
    slab_mode: str = "off"  # off | mip | minip | mean (jcs_viewer.gui.reformat.SLAB_MODES)
    slab_mm: float = 10.0  # slab thickness
    corners_visible: bool = True  # patient, study, slice, W/L and zoom in the image corners (key I)
    anonymised: bool = False  # View > Anonymise view: no name, ID or dates on screen

    _MASK_FIELDS = ("lesion_visible", "lesion_opacity", "lesion_outline", "lesion_color", "lung_visible",
                    "lung_opacity")

    def cam_changed(self, old: "LayerSettings") -> bool:
        """Whether the activation-map image must be rebuilt (visibility and opacity need no rebuild)."""
        return (self.cam_colormap, self.cam_flagged_only) != (old.cam_colormap, old.cam_flagged_only)

    def masks_changed(self, old: "LayerSettings") -> bool:
        """Whether the lesion/lung overlay image must be rebuilt."""
        return any(getattr(self, f) != getattr(old, f) for f in self._MASK_FIELDS)


#: The events a :class:`ViewerState` emits and what their listeners receive: connecting to or emitting any other
#: name raises (a misspelt event would otherwise never fire).
EVENTS: dict[str, str] = {
    "volume": "the study shown (Volume or None)",
    "result": "the result shown (StudyResult or None)",
    "slice": "the axial slice index",
    "window": "width and level",
    "layers": "the LayerSettings",
    "review": "the ReviewState",
    "labels": "the slices whose edited lesion mask changed (a slice)",
    "quant": "nothing: the live quantities changed",
    "cursor": "the voxel under the mouse (dict) or None",
    "point": "nothing: the crosshair moved",
    "view_reset": "nothing: zoom and pan back to fit",
}


class ViewerState:
    """Current study, analysis result, review state, slice, window/level and layer settings.

    Listeners connect with :meth:`on` (which returns their disconnect) to the events of :data:`EVENTS`.
    """

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[..., None]]] = defaultdict(list)
        self.volume: Volume | None = None
        self.result: StudyResult | None = None
        self.review: ReviewState = ReviewState()
        self.z: int = 0
        self.window: tuple[float, float] = HU_PRESETS[1][1:]
        self.preset: str = HU_PRESETS[1][0]
        self.layers = LayerSettings()
        self.cursor: dict[str, Any] | None = None
        self.point_yx: tuple[int, int] = (0, 0)  # crosshair row/column; its z is self.z
        self.mouse_scheme: str = "reading-room"  # the reader's setting (jcs_viewer.gui.mouse.SCHEMES)

    # --- events ------------------------------------------------------------------------
    def on(self, event: str, callback: Callable[..., None]) -> Callable[[], None]:
        """Call ``callback`` on ``event`` (one of :data:`EVENTS`); returns the function that disconnects it again."""
        _check_event(event)
        self._listeners[event].append(callback)
        return lambda: self.off(event, callback)

    def off(self, event: str, callback: Callable[..., None]) -> None:
        """Stop calling ``callback`` on ``event`` (no error if it was not connected)."""
        if callback in self._listeners[event]:
            self._listeners[event].remove(callback)

    def emit(self, event: str, *args: Any) -> None:
        _check_event(event)
        for callback in list(self._listeners[event]):
            callback(*args)

    # --- study and result --------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        return 0 if self.volume is None else int(self.volume.array.shape[0])

    def set_volume(self, volume: Volume | None) -> None:
        """A new study: drops the previous result and review, starts mid-study in the lung window."""
        self.volume = volume
        self.result = None
        self._set_review(ReviewState())
        self.z = max(0, self.n_slices // 2)
        if volume is not None:
            self.point_yx = (volume.array.shape[1] // 2, volume.array.shape[2] // 2)
        self.emit("volume", volume)
        self.emit("result", None)
        self.apply_preset(1)
        self.emit("slice", self.z)

    def set_result(self, result: StudyResult | None) -> None:
        """Attach an analysis result; a new review state lists its flagged slices."""
        if result is not None and self.volume is not None and int(result.n_slices) != self.n_slices:
            raise ValueError(f"result has {result.n_slices} slices, the study has {self.n_slices}")
        self.result = result
        review = ReviewState()
        if result is not None:
            positive = np.asarray(result.slice_positive, dtype=bool)
            flagged = np.flatnonzero(positive)
            review = ReviewState(flagged.tolist(), np.asarray(result.slice_probability)[flagged].tolist())
        self._set_review(review)
        self.emit("result", result)
        self.emit("slice", self.z)

    def _set_review(self, review: ReviewState) -> None:
        self.review = review
        review.subscribe(lambda z, decision: self.emit("review", z, decision))
        self.emit("review", -1, None)

    # --- navigation --------------------------------------------------------------------
    def set_slice(self, z: int) -> None:
        if self.n_slices == 0:
            return
        z = int(min(max(int(round(z)), 0), self.n_slices - 1))
        if z != self.z:
            self.z = z
            self.emit("slice", z)
            if self.cursor is not None:  # the HU under a still cursor changes with the slice
                self.set_cursor(self.cursor["x"] + 0.5, self.cursor["y"] + 0.5)

    def step(self, delta: int) -> None:
        self.set_slice(self.z + delta)

    @property
    def point(self) -> tuple[int, int, int]:
        """The linked crosshair ``(z, y, x)`` shared by the axial, coronal and sagittal views."""
        return (self.z, *self.point_yx)

    def set_point(self, z: float, y: float, x: float) -> None:
        """Move the crosshair (Shift+move in any view): the axial view goes to ``z``, the planes follow."""
        if self.n_slices == 0:
            return
        _, ny, nx = self.volume.array.shape
        before = self.point
        self.point_yx = (int(min(max(int(round(y)), 0), ny - 1)), int(min(max(int(round(x)), 0), nx - 1)))
        self.set_slice(z)
        if self.point != before:
            self.emit("point", self.point)

    def next_flagged(self) -> int | None:
        z = self.review.next_flagged(self.z)
        if z is not None:
            self.set_slice(z)
        return z

    def previous_flagged(self) -> int | None:
        z = self.review.previous_flagged(self.z)
        if z is not None:
            self.set_slice(z)
        return z

    def next_run(self) -> int | None:
        """To the first slice of the next run of flagged slices (Shift+N)."""
        z = self.review.next_run(self.z)
        if z is not None:
            self.set_slice(z)
        return z

    def previous_run(self) -> int | None:
        """To the first slice of this or the previous run of flagged slices (Shift+P)."""
        z = self.review.previous_run(self.z)
        if z is not None:
            self.set_slice(z)
        return z

    # --- window / level ----------------------------------------------------------------
    @property
    def is_hu(self) -> bool:
        return self.volume is None or bool(getattr(self.volume, "is_hu", True))

    def set_window(self, width: float, level: float, preset: str = "custom") -> None:
        width = max(1.0, float(width))
        self.window = (width, float(level))
        self.preset = preset
        self.emit("window", *self.window)

    def apply_preset(self, key: int) -> None:
        """Keys 1/2/3: lung, mediastinum, bone; non-HU volumes fall back to 0..255."""
        name, width, level = HU_PRESETS[key]
        if not self.is_hu:  # the name says why 1/2/3 all give the same picture
            name, (width, level) = "full range: grey levels, not HU", RAW_WINDOW
        self.set_window(width, level, preset=name)

    @property
    def levels(self) -> tuple[float, float]:
        width, level = self.window
        return level - width / 2.0, level + width / 2.0

    def reset_view(self) -> None:
        self.apply_preset(1)
        self.emit("view_reset")

    # --- layers ------------------------------------------------------------------------
    def set_layers(self, **changes: Any) -> None:
        new = replace(self.layers, **changes)
        if new != self.layers:
            self.layers = new
            self.emit("layers", new)

    def toggle_overlays(self) -> None:
        self.set_layers(overlays_visible=not self.layers.overlays_visible)

    def toggle_corners(self) -> None:
        self.set_layers(corners_visible=not self.layers.corners_visible)

    # --- cursor ------------------------------------------------------------------------
    def set_cursor(self, x: float | None, y: float | None = None) -> None:
        """Cursor at continuous voxel column/row ``(x, y)`` of the current slice (None: outside)."""
        info = None
        if x is not None and y is not None and self.volume is not None:
            xi, yi = int(np.floor(x)), int(np.floor(y))
            _, ny, nx = self.volume.array.shape
            if 0 <= xi < nx and 0 <= yi < ny:
                info = {"x": xi, "y": yi, "z": self.z, "value": int(self.volume.array[self.z, yi, xi])}
        if info != self.cursor:
            self.cursor = info
            self.emit("cursor", info)


def _check_event(event: str) -> None:
    if event not in EVENTS:
        raise ValueError(f"ViewerState has no event {event!r}; its events are {', '.join(EVENTS)}")
