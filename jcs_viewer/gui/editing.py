"""Lesion editing on the axial slice view: brush, eraser, slice tools, undo/redo.

:class:`EditController` turns mouse gestures on a :class:`~jcs_viewer.gui.slice_view.SliceView`
into steps on the :class:`~jcs_viewer.session.study_session.StudySession`'s label layer (one
stroke per press-release, so one undo step per stroke). The model (labels, undo, quantities)
lives in :mod:`jcs_viewer.session`; this module only maps screen positions to voxels and
draws the brush outline and the AI outline for comparison.

Mouse: with the brush or eraser active, left-drag paints (Ctrl held: erases) and middle-drag
pans; with no tool, the mouse does what the reader's scheme says (:mod:`jcs_viewer.gui.mouse`).
Shift+wheel and ``[``/``]`` change the size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem

from jcs_viewer.gui import overlays
from jcs_viewer.gui.measure import MEASURE_TOOLS, MeasureTool
from jcs_viewer.session import tools

TOOLS = ("none", "brush", "eraser", "grow", "ruler", "ellipse")
PAINT_TOOLS = ("brush", "eraser")  # the tools that paint with a drag; "grow" acts on a click
#: Interpolation fills gaps of at most this many slices between edited slices.
MAX_INTERPOLATION_GAP = 20
MIN_RADIUS_MM, MAX_RADIUS_MM, DEFAULT_RADIUS_MM = 0.5, 50.0, 5.0
SIZE_STEP = 1.2  # [ and ] scale the radius by this factor
AI_OUTLINE_COLOR = (255, 220, 0)
DEFAULT_HU_RANGE = (-800.0, 100.0)
MAX_JUMP_SLICES = 5  # undo/redo of a step this thin elsewhere moves the view to it


class EditController(QObject):
    """Brush/eraser and slice tools acting on the session shown in ``slice_view``.

    Args:
        state: the window's :class:`~jcs_viewer.gui.state.ViewerState`.
        slice_view: the axial :class:`~jcs_viewer.gui.slice_view.SliceView`.

    Signals:
        tool_changed(str): "none", "brush", "eraser", "grow", "ruler" or "ellipse".
        radius_changed(float): brush radius in mm.
        history_changed(): the undo/redo stacks changed (relabel Undo/Redo).
        session_changed(object): a session was attached (or None).
        message(str): one sentence for the status bar.
    """

    tool_changed = Signal(str)
    radius_changed = Signal(float)
    history_changed = Signal()
    session_changed = Signal(object)
    message = Signal(str)

    def __init__(self, state: Any, slice_view: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.state = state
        self.slice_view = slice_view
        self.session: Any = None
        self.tool = "none"
        self.radius_mm = DEFAULT_RADIUS_MM
        self.hu_limit = False
        self.hu_range = DEFAULT_HU_RANGE
        self.sphere = False
        self.show_ai_outline = False
        self._stroke: Any = None  # the open LabelLayer.stroke() context
        self._stroke_value = 1
        self._stroke_allowed: dict[int, np.ndarray | None] = {}
        self._last_px: tuple[float, float] | None = None
        self._cursor_view: QPointF | None = None

        view = slice_view.view
        self.outline = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 0))
        pen.setCosmetic(True)  # one screen pixel wide at any zoom
        pen.setWidthF(1.5)
        self.outline.setPen(pen)
        self.outline.setZValue(50)
        self.outline.setVisible(False)
        view.addItem(self.outline, ignoreBounds=True)
        self.ai_item = pg.ImageItem(axisOrder="row-major")
        self.ai_item.setZValue(3)
        self.ai_item.setVisible(False)
        view.addItem(self.ai_item)
        # The slice view asks us first about its mouse gestures (see SliceViewBox).
        self.measure = MeasureTool(state, slice_view, self)
        view.drag_handler = self.handle_drag
        view.click_handler = self.handle_click
        view.wheel_handler = self.handle_wheel
        slice_view.scene().sigMouseMoved.connect(self._on_mouse_moved)
        state.on("slice", lambda z: self._draw_ai_outline())
        state.on("volume", lambda v: self.set_session(None))
        state.on("layers", lambda layers: self._draw_ai_outline())

    # ================================================================== session
    def set_session(self, session: Any) -> None:
        """Edit ``session`` (a StudySession) from now on; None disables editing."""
        self.end_stroke()
        self.measure.set_session(session)
        if self.session is not None:  # detach first: a kept or replaced session must not be heard twice
            self.session.labels.remove_listener(self._on_labels)
        self.session = session
        if session is not None:
            session.labels.add_listener(self._on_labels)
        self._draw_ai_outline()
        self.session_changed.emit(session)
        self.history_changed.emit()

    def _on_labels(self, zs: slice) -> None:
        if self.session is None:
            return
        self.history_changed.emit()

    @property
    def can_edit(self) -> bool:
        return self.session is not None and self.state.volume is not None

    def _require_session(self) -> bool:
        if not self.can_edit:
            self.message.emit("Analyse the study first: editing works on an analysis result.")
            return False
        return True

    # ================================================================== tool settings
    def set_tool(self, tool: str) -> None:
        """"none" (navigate: the mouse scheme's drags), "brush" or "eraser" (keys B / E), or "grow" (key G: a click
        paints the connected region within the HU range, inside the lungs), or a measurement: "ruler" (L) or
        "ellipse" (O), drawn by a left-drag (:mod:`jcs_viewer.gui.measure`)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; choose one of {', '.join(TOOLS)}")
        if tool == self.tool:
            return
        self.end_stroke()
        self.tool = tool
        self._update_outline()
        self.tool_changed.emit(tool)

    def set_radius(self, radius_mm: float) -> None:
        radius = float(min(max(radius_mm, MIN_RADIUS_MM), MAX_RADIUS_MM))
        if abs(radius - self.radius_mm) < 1e-9:
            return
        self.radius_mm = radius
        self._update_outline()
        self.radius_changed.emit(radius)

    def grow(self) -> None:
        """Key ``]``: a larger brush."""
        self.set_radius(self.radius_mm * SIZE_STEP)

    def shrink(self) -> None:
        """Key ``[``: a smaller brush."""
        self.set_radius(self.radius_mm / SIZE_STEP)

    def set_hu_limit(self, on: bool, low: float | None = None, high: float | None = None) -> None:
        """Only paint voxels whose HU lies in ``[low, high]`` (when ``on``)."""
        self.hu_limit = bool(on)
        lo, hi = low if low is not None else self.hu_range[0], high if high is not None else self.hu_range[1]
        self.hu_range = (float(min(lo, hi)), float(max(lo, hi)))

    def set_sphere(self, on: bool) -> None:
        """3-D brush: each dab is a ball of the brush radius across neighbouring slices."""
        self.sphere = bool(on)

    def set_show_ai_outline(self, on: bool) -> None:
        self.show_ai_outline = bool(on)
        self._draw_ai_outline()

    # ================================================================== geometry
    def _spacing_yx(self) -> tuple[float, float]:
        _, sy, sx = self.state.volume.spacing
        return float(sy), float(sx)

    def view_to_pixel(self, p: QPointF) -> tuple[float, float]:
        """View (mm) position -> continuous pixel coordinates (column, row); pixel centres are integers."""
        sy, sx = self._spacing_yx()
        return p.x() / sx - 0.5, p.y() / sy - 0.5

    def radius_px(self) -> tuple[float, float]:
        """Brush radius along rows and columns, in pixels (an ellipse on anisotropic pixels)."""
        return tools.brush_radius_px(self.radius_mm, self._spacing_yx())

    # ================================================================== strokes
    def begin_stroke(self, x: float, y: float, erase: bool = False) -> bool:
        """Start a stroke with a dab at pixel ``(x, y)`` of the current slice; returns whether it started."""
        if self.tool not in PAINT_TOOLS or not self._require_session():
            return False
        self.end_stroke()
        erase = erase or self.tool == "eraser"
        self._stroke_value = 0 if erase else 1
        label = ("3-D eraser" if self.sphere else "eraser") if erase else ("3-D brush" if self.sphere else "brush")
        self._stroke = self.session.labels.stroke(label)
        self._stroke.__enter__()
        self._stroke_allowed = {}
        self._last_px = None
        self.continue_stroke(x, y)
        return True

    def continue_stroke(self, x: float, y: float) -> None:
        """Extend the open stroke to ``(x, y)``, with dabs close enough that a fast drag leaves no gap."""
        if self._stroke is None:
            return
        if self._last_px is None:
            self._dab(x, y)
        else:
            x0, y0 = self._last_px
            ry, rx = self.radius_px()
            step = max(0.5, 0.5 * min(rx, ry))
            n = max(1, int(math.ceil(math.hypot(x - x0, y - y0) / step)))
            for i in range(1, n + 1):
                t = i / n
                self._dab(x0 + (x - x0) * t, y0 + (y - y0) * t)
        self._last_px = (x, y)
        z = self.state.z
        self.state.emit("labels", slice(z, z + 1))  # draw now; numbers follow when the stroke ends

    def end_stroke(self) -> None:
        """Close the open stroke: one undo step, then quantities, overlay and autosave update."""
        stroke, self._stroke = self._stroke, None
        self._last_px = None
        if stroke is not None:
            stroke.__exit__(None, None, None)

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    def _allowed(self, z: int) -> np.ndarray | None:
        if not self.hu_limit:
            return None
        if z not in self._stroke_allowed:
            self._stroke_allowed[z] = tools.hu_allowed(self.state.volume.array[z], self.hu_range)
        return self._stroke_allowed[z]

    def _dab(self, x: float, y: float) -> None:
        labels, z = self.session.labels, self.state.z
        if not self.sphere:
            labels.paint_disk(z, (y, x), self.radius_px(), self._stroke_value, self._allowed(z))
            return
        spacing = (float(self.state.volume.spacing[0]), *self._spacing_yx())
        tools.paint_ball(labels, (z, y, x), self.radius_mm, spacing, self._stroke_value, self._allowed)

    def stroke_polyline(self, points: list[tuple[float, float]], erase: bool = False) -> None:
        """One complete stroke through pixel ``points`` on the current slice (scripts and tests)."""
        if not points or not self.begin_stroke(*points[0], erase=erase):
            return
        for x, y in points[1:]:
            self.continue_stroke(x, y)
        self.end_stroke()

    # ================================================================== mouse hooks
    def handle_drag(self, ev: Any) -> bool:
        """Left-drag paints while a tool is active; returns whether the event was used."""
        if ev.button() == Qt.MouseButton.LeftButton and self.tool in MEASURE_TOOLS and self.can_edit:
            return self.measure.handle_drag(ev, self.tool, self.view_to_pixel)
        if ev.button() != Qt.MouseButton.LeftButton or self.tool not in PAINT_TOOLS or not self.can_edit:
            return False
        if ev.isStart() and ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return False  # Shift belongs to the linked crosshair
        if not ev.isStart() and not self.stroking:
            return False  # this drag did not start as a stroke
        ev.accept()
        view = self.slice_view.view
        if ev.isStart():
            erase = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
            if not self.begin_stroke(*self.view_to_pixel(view.mapToView(ev.buttonDownPos())), erase=erase):
                return True
        self.continue_stroke(*self.view_to_pixel(view.mapToView(ev.pos())))
        self._cursor_view = view.mapToView(ev.pos())
        self._update_outline()
        if ev.isFinish():
            self.end_stroke()
        return True

    def handle_click(self, ev: Any) -> bool:
        """A left click with a tool active paints one dab (a stroke of its own)."""
        if (ev.button() != Qt.MouseButton.LeftButton or self.tool == "none" or not self.can_edit
                or ev.modifiers() & Qt.KeyboardModifier.ShiftModifier):  # Shift: the crosshair's
            return False
        ev.accept()
        if self.tool == "grow":
            self.grow_at(*self.view_to_pixel(self.slice_view.view.mapToView(ev.pos())))
            return True
        erase = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if self.begin_stroke(*self.view_to_pixel(self.slice_view.view.mapToView(ev.pos())), erase=erase):
            self.end_stroke()
        return True

    def handle_wheel(self, ev: Any) -> bool:
        """Shift+wheel changes the brush size; other wheel gestures stay the slice view's."""
        if not ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            return False
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y() or ev.angleDelta().x()
        if delta:
            self.grow() if delta > 0 else self.shrink()
        ev.accept()
        return True

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        view = self.slice_view.view
        inside = view.sceneBoundingRect().contains(scene_pos)
        self._cursor_view = view.mapSceneToView(scene_pos) if inside else None
        self._update_outline()

    def _update_outline(self) -> None:
        """The brush outline at the cursor: the true size, an ellipse of radius_px() pixels."""
        p = self._cursor_view
        if self.tool not in PAINT_TOOLS or p is None or self.state.volume is None:
            self.outline.setVisible(False)
            return
        sy, sx = self._spacing_yx()
        ry, rx = self.radius_px()
        # Painted pixels are those whose centre lies in the ellipse; the centre is the cursor.
        self.outline.setRect(QRectF(p.x() - rx * sx, p.y() - ry * sy, 2 * rx * sx, 2 * ry * sy))
        pen = self.outline.pen()
        pen.setColor(QColor(0, 220, 255) if self.tool == "eraser" else QColor(255, 255, 0))
        pen.setStyle(Qt.PenStyle.DashLine if self.tool == "eraser" else Qt.PenStyle.SolidLine)
        self.outline.setPen(pen)
        self.outline.setVisible(True)

    # ================================================================== AI outline
    def _draw_ai_outline(self) -> None:
        state = self.state
        layers = state.layers
        if (not self.show_ai_outline or self.session is None or state.volume is None
                or not layers.overlays_visible):
            self.ai_item.setVisible(False)
            return
        ai = self.session.ai_result.lesion_mask[state.z]
        rgba = overlays.mask_rgba(ai, AI_OUTLINE_COLOR, outline=True)
        self.ai_item.setImage(rgba, autoLevels=False, levels=None)
        _, ny, nx = state.volume.array.shape
        sy, sx = self._spacing_yx()
        self.ai_item.setRect(QRectF(0.0, 0.0, nx * sx, ny * sy))
        self.ai_item.setVisible(True)

    # ================================================================== slice tools and history
    def undo(self) -> str | None:
        """Revert the last step (Ctrl+Z); shows its slice when it happened elsewhere."""
        return self._history("undo")

    def redo(self) -> str | None:
        """Re-apply the last undone step (Ctrl+Y, Ctrl+Shift+Z)."""
        return self._history("redo")

    def _history(self, which: str) -> str | None:
        if self.session is None:
            return None
        self.end_stroke()
        labels = self.session.labels
        changed: list[slice] = []
        labels.add_listener(changed.append)
        try:
            label = labels.undo() if which == "undo" else labels.redo()
        finally:
            labels.remove_listener(changed.append)
        verb = "Undid" if which == "undo" else "Redid"
        self.message.emit(f"{verb} {label}." if label else f"Nothing to {which}.")
        if changed:
            start, stop, _ = changed[0].indices(labels.data.shape[0])
            # A stroke on another slice: go there, so the reader sees what changed.
            if not start <= self.state.z < stop and stop - start <= MAX_JUMP_SLICES:
                self.state.set_slice(start)
        return label

    def fill_holes(self) -> bool:
        if not self._require_session():
            return False
        return self._report(tools.fill_holes(self.session.labels, self.state.z), "Filled the holes", "no holes")

    def remove_islands(self, min_area_mm2: float) -> bool:
        if not self._require_session():
            return False
        changed = tools.remove_islands(self.session.labels, self.state.z, float(min_area_mm2), self._spacing_yx())
        return self._report(changed, f"Removed islands under {min_area_mm2:g} mm²",
                            f"no island under {min_area_mm2:g} mm²")

    def clear_slice(self) -> bool:
        if not self._require_session():
            return False
        return self._report(tools.clear_slice(self.session.labels, self.state.z), "Cleared", "nothing to clear")

    def reset_slice(self) -> bool:
        if not self._require_session():
            return False
        return self._report(self.session.reset_slice_to_ai(self.state.z), "Reset to the AI mask",
                            "already the AI mask")

    def accept_ai(self) -> bool:
        if not self._require_session():
            return False
        changed = self.session.accept_ai()
        self.message.emit("The AI mask is the edited mask again on every slice (Ctrl+Z undoes this)."
                          if changed else "The edited mask already equals the AI mask.")
        return changed

    def grow_at(self, x: float, y: float) -> int:
        """Paint the connected region around pixel ``(x, y)`` whose HU lie in the panel's range, inside the lungs;
        returns the pixels added."""
        if not self._require_session():
            return 0
        z, volume = self.state.z, self.state.volume
        lung = getattr(self.session.ai_result, "lung_mask", None)
        within = lung[z] > 0 if lung is not None else None
        seed = (int(round(y)), int(round(x)))  # pixel centres sit on whole coordinates, as for the brush
        added = tools.grow_region(self.session.labels, z, seed, volume.array[z], self.hu_range, within)
        lo, hi = self.hu_range
        self.message.emit(f"Grew the lesion by {added} pixels on slice {z + 1} ({lo:g} to {hi:g} HU, in the lungs)."
                          if added else f"Slice {z + 1}: the clicked pixel is not in the lungs between {lo:g} and "
                          f"{hi:g} HU (set the range beside 'Only HU from').")
        return added

    def interpolate(self) -> list[tuple[int, int]]:
        """Fill the slices between the reader's edited slices (gaps up to :data:`MAX_INTERPOLATION_GAP`) from
        their shapes, as one undo step; returns the (first, last) pairs filled."""
        if not self._require_session():
            return []
        pairs = tools.interpolate_between(self.session.labels, self.session.edited_slices(), MAX_INTERPOLATION_GAP)
        spans = ", ".join(f"{a + 1}–{b + 1}" for a, b in pairs)
        self.message.emit(f"Interpolated between edited slices {spans} (Ctrl+Z undoes it)." if pairs else
                          "Nothing to interpolate: edit two slices with a gap between them first.")
        return pairs

    def _report(self, changed: bool, done: str, nothing: str) -> bool:
        z = self.state.z + 1
        self.message.emit(f"{done} on slice {z}." if changed else f"Slice {z}: {nothing}.")
        return changed
