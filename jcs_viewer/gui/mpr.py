"""Coronal and sagittal views with a linked 3-D crosshair (Shift+move, as in 3D Slicer).

The point ``(z, y, x)`` lives in :class:`~jcs_viewer.gui.state.ViewerState` (``state.point``,
``state.set_point``, event ``point``); its ``z`` is the axial slice, so moving it moves the axial
view and the score strip's marker. Every view here only observes the state:

- :class:`PlaneView` shows ``volume.array[:, y, :]`` (coronal) or ``volume.array[:, :, x]``
  (sagittal) — numpy views of the one int16 volume, never a second copy — in millimetres, so the
  aspect follows the voxel spacing; superior is at the top and the columns keep the axial view's
  left-right order. Overlays: lesion (the edited mask when an editing session exists), lung
  outline, and the activation map. Activation maps are per axial slice at reduced resolution: the
  plane shows, for every slice, the CAM row (coronal) or column (sagittal) at the same relative
  position, interpolated between the two nearest CAM rows and stretched bilinearly, blended along z
  and kept within the plane's lungs (per-slice maps side by side banded across the whole chest,
  :func:`~jcs_viewer.gui.reformat.cam_in_lungs`); with the "flagged slices only" layer setting the
  rows of unflagged slices are blank, as in the axial view.
- :class:`AxialCrosshair` adds the crosshair lines, orientation letters and Shift+move to the
  existing axial :class:`~jcs_viewer.gui.slice_view.SliceView` without changing it.

Mouse in the coronal/sagittal views: wheel steps the plane (y / x), Ctrl+wheel zooms, drags as the
reader's mouse scheme says (:mod:`jcs_viewer.gui.mouse`), Shift+move or Shift+click moves the crosshair (and the axial
slice).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QGraphicsSimpleTextItem

from jcs_viewer.gui import mouse, overlays
from jcs_viewer.gui.reformat import (Plane, axis_letters, cam_in_lungs, cam_plane, plane_axis, plane_of, plane_size_mm,
                                     slab)
from jcs_viewer.gui.slice_view import LUNG_COLORS, SliceViewBox, add_image_layers
from jcs_viewer.gui.state import LayerSettings, ViewerState

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume

CROSSHAIR_PEN = (255, 214, 0, 170)
PLANE_TITLES = {"coronal": "Coronal", "sagittal": "Sagittal"}
# Event after which the lesion overlay must be redrawn: the editing session emits ``labels`` (the
# changed z-range) during and after every stroke, undo and redo.
LESION_EVENTS = ("labels",)


def lesion_mask_of(state: ViewerState) -> np.ndarray | None:
    """The lesion mask to show: ``state.result.lesion_mask``.

    With an editing session the window's result is the session's, whose ``lesion_mask`` is the
    edited label layer itself (live), so edits show here without a copy; else it is the AI mask.
    """
    return getattr(state.result, "lesion_mask", None) if state.result is not None else None


class ShiftPointer(QObject):
    """Calls ``callback(scene_pos)`` while the mouse moves (or is pressed) with Shift held.

    Installed on a graphics view's viewport, so it sees the real modifiers of each event
    (``sigMouseMoved`` carries only a position). A Shift+left press is consumed, so it jumps
    instead of starting a pan.
    """

    def __init__(self, graphics_view: pg.GraphicsView, callback: Callable[[QPointF], None]) -> None:
        super().__init__(graphics_view)
        self._view = graphics_view
        self._callback = callback
        graphics_view.viewport().installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        kind = event.type()
        if kind in (QEvent.Type.MouseMove, QEvent.Type.MouseButtonPress):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self._callback(self._view.mapToScene(event.position().toPoint()))
                if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
                    return True
        return False


class OrientationLetters:
    """Four patient-direction letters at the edges of a view box (they stay put while panning)."""

    def __init__(self, view: pg.ViewBox) -> None:
        self._view = view
        font = QFont()
        font.setPointSize(11)
        font.setBold(True)
        self.items: dict[str, QGraphicsSimpleTextItem] = {}
        self._backs: dict[str, QGraphicsRectItem] = {}
        for edge in ("left", "right", "top", "bottom"):
            # A dark tile behind each letter: the crosshair passing through the top "S" read as "$", and yellow
            # alone is faint on bright bone and contrast.
            back = QGraphicsRectItem(view)
            back.setBrush(QColor(0, 0, 0, 170))
            back.setPen(QPen(Qt.PenStyle.NoPen))
            back.setZValue(99)
            item = QGraphicsSimpleTextItem("", view)  # a child of the box, not of the panned scene
            item.setBrush(QColor(255, 214, 0, 235))
            item.setFont(font)
            item.setZValue(100)
            self.items[edge], self._backs[edge] = item, back
        view.sigResized.connect(lambda *_: self._place())

    def set_letters(self, left: str, right: str, top: str, bottom: str) -> None:
        for edge, text in zip(("left", "right", "top", "bottom"), (left, right, top, bottom)):
            self.items[edge].setText(text)
        self._place()

    def text(self) -> dict[str, str]:
        return {edge: item.text() for edge, item in self.items.items()}

    def _place(self) -> None:
        rect = self._view.boundingRect()
        w, h, pad = rect.width(), rect.height(), 4.0
        for edge, item in self.items.items():
            box = item.boundingRect()
            x = {"left": pad, "right": w - box.width() - pad}.get(edge, (w - box.width()) / 2)
            y = {"top": pad, "bottom": h - box.height() - pad}.get(edge, (h - box.height()) / 2)
            item.setPos(x, y)
            back = self._backs[edge]
            back.setRect(x - 2, y, box.width() + 4, box.height())
            back.setVisible(bool(item.text()))


def _crosshair_lines(view: pg.ViewBox) -> tuple[pg.InfiniteLine, pg.InfiniteLine]:
    pen = pg.mkPen(CROSSHAIR_PEN, width=1)
    vertical = pg.InfiniteLine(angle=90, movable=False, pen=pen)
    horizontal = pg.InfiniteLine(angle=0, movable=False, pen=pen)
    for line in (vertical, horizontal):
        line.setZValue(50)
        view.addItem(line, ignoreBounds=True)
    return vertical, horizontal


class PlaneViewBox(SliceViewBox):
    """The axial view box's mouse (wheel steps, Ctrl+wheel zoom, the reader's drags), y axis up."""

    def __init__(self, scheme_of: Any = None) -> None:
        super().__init__(scheme_of)
        self.invertY(False)  # row z drawn at height z: superior (higher z) at the top


class PlaneView(pg.GraphicsLayoutWidget):
    """A coronal or sagittal reformat of ``state.volume`` with overlays and the crosshair.

    Drawing happens only while the view is visible (a hidden view marks itself stale and
    redraws when shown), so the axial-only layout costs nothing.
    """

    def __init__(self, state: ViewerState, plane: Plane, parent: Any = None) -> None:
        super().__init__(parent)
        plane_axis(plane)  # validates the name
        self.viewer = state
        self.plane: Plane = plane
        self.index = 0  # the volume row (coronal) or column (sagittal) shown
        self.setBackground("k")
        self.setAcceptDrops(False)
        self.ci.setContentsMargins(0, 0, 0, 0)
        self.ci.setSpacing(0)
        self.title = self.ci.addLabel("", row=0, col=0, color=(200, 200, 200), size="9pt")
        self.view = PlaneViewBox(lambda: mouse.scheme(state.mouse_scheme))
        self.ci.addItem(self.view, row=1, col=0)
        self.image, self.cam_item, self.mask_item = add_image_layers(self.view)
        self.v_line, self.h_line = _crosshair_lines(self.view)
        self.letters = OrientationLetters(self.view)
        self._rect = QRectF()
        self._col_mm = 1.0  # spacing of the plane's columns
        self._z_mm = 1.0
        self._layers = state.layers
        self._cam_lut = overlays.colormap_lut(state.layers.cam_colormap)
        self._stale = True

        self.view.sigSliceStep.connect(self.step)
        self.view.sigWindowDrag.connect(self._on_window_drag)
        self.pointer = ShiftPointer(self, self._on_shift)
        state.on("volume", self._on_volume)
        state.on("result", lambda result: self._redraw())
        state.on("point", lambda point: self._on_point())
        state.on("slice", lambda z: self._place_crosshair())
        state.on("window", lambda width, level: self.image.setLevels(state.levels))
        state.on("layers", self._on_layers)
        state.on("view_reset", self.reset_view)
        for event in LESION_EVENTS:
            state.on(event, lambda *_: self._redraw_masks())
        self._apply_visibility(state.layers)

    # --- geometry ----------------------------------------------------------------------
    @property
    def fixed_index(self) -> int:
        """The current crosshair coordinate this plane is fixed on (y or x)."""
        _, y, x = self.viewer.point
        return y if self.plane == "coronal" else x

    def voxel_to_scene(self, column: float, z: float) -> QPointF:
        """Scene position of the centre of plane column ``column`` on slice ``z`` (tests use it)."""
        return self.view.mapViewToScene(QPointF((column + 0.5) * self._col_mm, (z + 0.5) * self._z_mm))

    def scene_to_voxel(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """``(column, z)`` under a scene position, or None outside the plane."""
        if self._rect.isEmpty():
            return None
        p = self.view.mapSceneToView(scene_pos)
        column, z = int(np.floor(p.x() / self._col_mm)), int(np.floor(p.y() / self._z_mm))
        nz, ny, nx = self.viewer.volume.array.shape
        n_columns = nx if self.plane == "coronal" else ny
        if 0 <= column < n_columns and 0 <= z < nz:
            return column, z
        return None

    # --- state observers ---------------------------------------------------------------
    def _on_volume(self, volume: Volume | None) -> None:
        for item in (self.image, self.cam_item, self.mask_item):
            item.clear()
        if volume is None:
            self._rect = QRectF()
            return
        width, height = plane_size_mm(volume.array.shape, volume.spacing, self.plane)
        self._rect = QRectF(0.0, 0.0, width, height)
        dz, dy, dx = volume.spacing
        self._col_mm, self._z_mm = (dx, dz) if self.plane == "coronal" else (dy, dz)
        direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
        low, high = axis_letters(direction[:, 0 if self.plane == "coronal" else 1])
        bottom, top = axis_letters(direction[:, 2])
        self.letters.set_letters(low, high, top, bottom)
        self.index = -1
        self._redraw()
        self.reset_view()

    def _on_point(self) -> None:
        if self.fixed_index != self.index:
            self._redraw()
        else:
            self._place_crosshair()

    def _on_layers(self, layers: LayerSettings) -> None:
        old, self._layers = self._layers, layers
        self._apply_visibility(layers)
        if layers.cam_colormap != old.cam_colormap:
            self._cam_lut = overlays.colormap_lut(layers.cam_colormap)
        if (layers.slab_mode, layers.slab_mm) != (old.slab_mode, old.slab_mm):
            self._redraw()  # the image and every overlay
            return
        if layers.cam_changed(old):
            self._redraw_cam()
        if layers.masks_changed(old):
            self._redraw_masks()

    def _apply_visibility(self, layers: LayerSettings) -> None:
        overlays.show_layers(self.cam_item, self.mask_item, layers)

    # --- drawing -----------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        super().showEvent(event)
        if self._stale:
            self._redraw()

    def _drawable(self) -> bool:
        if self.viewer.volume is None:
            return False
        if not self.isVisible():
            self._stale = True  # drawn when shown
            return False
        return True

    def _redraw(self) -> None:
        """Draw the plane at the crosshair and all its overlays."""
        if not self._drawable():
            return
        self._stale = False
        volume = self.viewer.volume
        self.index = self.fixed_index
        axis, layers = plane_axis(self.plane), self._layers
        # A view (no copy) unless a slab is asked for: then the projection of the rows/columns around the plane.
        plane = slab(volume.array, axis, self.index, layers.slab_mm, float(volume.spacing[axis]), layers.slab_mode)
        self.image.setImage(plane, autoLevels=False, levels=self.viewer.levels)
        self.image.setRect(self._rect)
        axis_len = volume.array.shape[plane_axis(self.plane)]
        self.title.setText(f"{PLANE_TITLES[self.plane]}  {'y' if self.plane == 'coronal' else 'x'} "
                           f"{self.index + 1}/{axis_len}")
        self._redraw_cam()
        self._redraw_masks()
        self._place_crosshair()

    def _redraw_cam(self) -> None:
        state = self.viewer
        cams = getattr(state.result, "cams", None) if state.result is not None else None
        if cams is None or not self._drawable() or self.index < 0:
            self.cam_item.clear()
            return
        keep = np.asarray(state.result.slice_positive, dtype=bool) if self._layers.cam_flagged_only else None
        extent = state.volume.array.shape[plane_axis(self.plane)]
        values = cam_plane(cams, self.plane, self.index, extent, keep)
        lung = getattr(state.result, "lung_mask", None)
        if lung is not None:  # per-slice maps side by side band across the chest: shown within the lungs
            spacing = state.volume.spacing
            values = cam_in_lungs(values, plane_of(lung, self.plane, self.index),
                                  (float(spacing[0]), float(spacing[2 if self.plane == "coronal" else 1])))
        self.cam_item.setImage(overlays.activation_rgba(values, self._cam_lut), autoLevels=False, levels=None)
        self.cam_item.setRect(self._rect)

    def _redraw_masks(self) -> None:
        state, layers = self.viewer, self._layers
        if state.result is None or not self._drawable() or self.index < 0:
            self.mask_item.clear()
            return
        lesion = lesion_mask_of(state)
        lung = getattr(state.result, "lung_mask", None)
        plane_shape = plane_of(state.volume.array, self.plane, self.index).shape
        rgba = overlays.masks_rgba(
            plane_shape,
            plane_of(lesion, self.plane, self.index) if lesion is not None and layers.lesion_visible else None,
            plane_of(lung, self.plane, self.index) if lung is not None and layers.lung_visible else None,
            lesion_color=layers.lesion_color, lesion_alpha=layers.lesion_opacity,
            lesion_outline=layers.lesion_outline, lung_colors=LUNG_COLORS, lung_alpha=layers.lung_opacity)
        self.mask_item.setImage(rgba, autoLevels=False, levels=None)
        self.mask_item.setRect(self._rect)

    def _place_crosshair(self) -> None:
        state = self.viewer
        if state.volume is None:
            return
        z, y, x = state.point
        column = x if self.plane == "coronal" else y
        self.v_line.setValue((column + 0.5) * self._col_mm)
        self.h_line.setValue((z + 0.5) * self._z_mm)

    def reset_view(self) -> None:
        """Fit the plane in the view (key ``r``)."""
        if not self._rect.isEmpty():
            self.view.setRange(self._rect, padding=0.0)

    # --- mouse -------------------------------------------------------------------------
    def step(self, delta: int) -> None:
        """Wheel: the next/previous coronal row or sagittal column (the crosshair follows)."""
        if self.viewer.volume is None:
            return
        z, y, x = self.viewer.point
        if self.plane == "coronal":
            self.viewer.set_point(z, y + delta, x)
        else:
            self.viewer.set_point(z, y, x + delta)

    def _on_shift(self, scene_pos: QPointF) -> None:
        if self.viewer.volume is None:
            return
        hit = self.scene_to_voxel(scene_pos)
        if hit is None:
            return
        column, z = hit
        _, y, x = self.viewer.point
        if self.plane == "coronal":
            self.viewer.set_point(z, y, column)
        else:
            self.viewer.set_point(z, column, x)

    def _on_window_drag(self, dx: float, dy: float) -> None:
        width, level = self.viewer.window
        gain = max(width, 50.0) * 0.004  # as the axial view
        self.viewer.set_window(width + dx * gain, level + dy * gain)


class AxialCrosshair:
    """Crosshair lines, orientation letters and Shift+move for the existing axial view."""

    def __init__(self, slice_view: Any, state: ViewerState) -> None:
        self.slice_view = slice_view
        self.viewer = state
        self.v_line, self.h_line = _crosshair_lines(slice_view.view)
        self.letters = OrientationLetters(slice_view.view)
        self.pointer = ShiftPointer(slice_view, self._on_shift)
        self.set_lines_visible(False)
        state.on("volume", self._on_volume)
        state.on("point", lambda point: self._place())

    def set_lines_visible(self, visible: bool) -> None:
        self.v_line.setVisible(visible)
        self.h_line.setVisible(visible)

    def _on_volume(self, volume: Volume | None) -> None:
        if volume is None:
            return
        direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
        left, right = axis_letters(direction[:, 0])
        top, bottom = axis_letters(direction[:, 1])  # row 0 at the top (inverted y)
        self.letters.set_letters(left, right, top, bottom)
        self._place()

    def _place(self) -> None:
        volume = self.viewer.volume
        if volume is None:
            return
        _, y, x = self.viewer.point
        _, sy, sx = volume.spacing
        self.v_line.setValue((x + 0.5) * sx)
        self.h_line.setValue((y + 0.5) * sy)

    def _on_shift(self, scene_pos: QPointF) -> None:
        volume = self.viewer.volume
        view = self.slice_view.view
        if volume is None or not view.sceneBoundingRect().contains(scene_pos):
            return
        p = view.mapSceneToView(scene_pos)
        _, ny, nx = volume.array.shape
        _, sy, sx = volume.spacing
        x, y = int(np.floor(p.x() / sx)), int(np.floor(p.y() / sy))
        if 0 <= x < nx and 0 <= y < ny:
            self.viewer.set_point(self.viewer.z, y, x)
