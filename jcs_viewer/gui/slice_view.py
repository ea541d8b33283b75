"""The axial slice view: one pyqtgraph ImageItem for the CT plus three RGBA overlay items."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPainter

from jcs_viewer.gui import mouse, overlays
from jcs_viewer.gui.corners import ImageCorners, corner_texts
from jcs_viewer.gui.reformat import SLAB_MODES, slab
from jcs_viewer.gui.state import LayerSettings, ViewerState

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume

LUNG_COLORS = {1: (0, 200, 255), 2: (120, 255, 120)}  # right lung cyan, left lung green
# Window/level drag sensitivity: HU of width/level per screen pixel, scaled by the current width.
_WL_GAIN = 0.004


class SliceViewBox(pg.ViewBox):
    """ViewBox with the reading-room mouse: wheel = slices, Ctrl+wheel = zoom, drags as the reader's
    :class:`~jcs_viewer.gui.mouse.MouseScheme` says (window/level, pan, zoom); double-click = ``sigDoubleClicked``.

    Args:
        scheme_of: returns the scheme in force (read at each drag, so a new setting applies at once).
    """

    sigSliceStep = Signal(int)
    sigWindowDrag = Signal(float, float)
    sigDoubleClicked = Signal()

    def __init__(self, scheme_of: Callable[[], mouse.MouseScheme] | None = None) -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self.scheme_of = scheme_of or (lambda: mouse.scheme(mouse.DEFAULT_SCHEME))
        # Editing hooks (jcs_viewer.gui.editing): each returns True when it used the event,
        # so an active brush paints with left-drag while middle-drag still pans.
        self.drag_handler: Callable[[Any], bool] | None = None
        self.click_handler: Callable[[Any], bool] | None = None
        self.wheel_handler: Callable[[Any], bool] | None = None

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - Qt naming
        if self.wheel_handler is not None and self.wheel_handler(ev):
            return
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if delta:
            self.sigSliceStep.emit(1 if delta > 0 else -1)
        ev.accept()

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - Qt naming
        if self.drag_handler is not None and self.drag_handler(ev):  # an active lesion tool paints with left-drag
            return
        action = self.scheme_of().action(ev.button())
        if action == "window":
            ev.accept()
            d = ev.screenPos() - ev.lastScreenPos()
            self.sigWindowDrag.emit(float(d.x()), float(d.y()))
            return
        if action is None:
            ev.ignore()
            return
        super().mouseDragEvent(ev, axis)  # pyqtgraph's own pan (left/middle) and zoom (right)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        if self.click_handler is not None and self.click_handler(ev):
            return
        if ev.double() and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigDoubleClicked.emit()
            return
        super().mouseClickEvent(ev)


class SmoothImageItem(pg.ImageItem):
    """An ImageItem drawn with bilinear smoothing: stretches a low-resolution activation map nicely."""

    def paint(self, p: QPainter, *args: Any) -> None:
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        super().paint(p, *args)


def add_image_layers(view: pg.ViewBox) -> tuple[pg.ImageItem, SmoothImageItem, pg.ImageItem]:
    """The three stacked items of a slice or plane view, bottom to top: the CT, the activation map (smoothed)
    and the RGBA lung-outline and lesion overlay."""
    layers = (pg.ImageItem(axisOrder="row-major"), SmoothImageItem(axisOrder="row-major"),
              pg.ImageItem(axisOrder="row-major"))
    for z, item in enumerate(layers):
        item.setZValue(z)
        view.addItem(item)
    return layers


class SliceView(pg.GraphicsLayoutWidget):
    """Shows ``state.volume[state.z]`` with the result's overlays; observes :class:`ViewerState`.

    Three items are drawn: the CT slice, the activation map (kept at its own resolution and
    stretched with bilinear smoothing) and one RGBA image holding lung outlines and lesions.
    """

    def __init__(self, state: ViewerState, parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = state
        self.setBackground("k")
        self.ci.setContentsMargins(0, 0, 0, 0)
        self.view = SliceViewBox(lambda: mouse.scheme(state.mouse_scheme))
        self.addItem(self.view)
        self.image, self.cam_item, self.mask_item = add_image_layers(self.view)
        self._cam_lut = overlays.colormap_lut(state.layers.cam_colormap)
        self._rect = QRectF()
        self._layers = state.layers
        self.corners = ImageCorners(self.view)

        self.view.sigSliceStep.connect(state.step)
        self.view.sigRangeChanged.connect(lambda *_: self.update_corners())
        self.view.sigWindowDrag.connect(self._on_window_drag)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        state.on("volume", self._on_volume)
        state.on("slice", lambda z: self.refresh())
        state.on("window", lambda width, level: (self.image.setLevels(state.levels), self.update_corners()))
        state.on("layers", self._on_layers)
        state.on("view_reset", self.reset_view)
        state.on("labels", self._on_labels)  # the edited mask changed on slices zs (a brush stroke)
        self._apply_visibility(state.layers)

    # --- state observers ---------------------------------------------------------------
    def _on_volume(self, volume: Volume | None) -> None:
        if volume is None:
            return
        _, ny, nx = volume.array.shape
        _, sy, sx = volume.spacing
        # Pixel spacing sets the aspect: items live in millimetres.
        self._rect = QRectF(0.0, 0.0, nx * sx, ny * sy)
        for item in (self.image, self.cam_item, self.mask_item):
            item.clear()
        self.reset_view()

    def _on_layers(self, layers: LayerSettings) -> None:
        old, self._layers = self._layers, layers
        self._apply_visibility(layers)
        if (layers.slab_mode, layers.slab_mm) != (old.slab_mode, old.slab_mm):
            self.refresh()
        elif (layers.corners_visible, layers.anonymised) != (old.corners_visible, old.anonymised):
            self.update_corners()
        if layers.cam_colormap != old.cam_colormap:
            self._cam_lut = overlays.colormap_lut(layers.cam_colormap)
        if layers.cam_changed(old):
            self._draw_cam()
        if layers.masks_changed(old):
            self._draw_masks()

    def _on_labels(self, zs: slice) -> None:
        start, stop, _ = zs.indices(max(self.viewer.n_slices, 1))
        if start <= self.viewer.z < stop:
            self._draw_masks()

    def _apply_visibility(self, layers: LayerSettings) -> None:
        overlays.show_layers(self.cam_item, self.mask_item, layers)

    # --- drawing -----------------------------------------------------------------------
    def refresh(self) -> None:
        """Draw the current slice and build its overlays (one slice of RGBA, never the volume)."""
        state = self.viewer
        if state.volume is None:
            return
        layers = self._layers
        image = slab(state.volume.array, 0, state.z, layers.slab_mm, float(state.volume.spacing[0]), layers.slab_mode)
        self.image.setImage(image, autoLevels=False, levels=state.levels)
        self.image.setRect(self._rect)
        self._draw_cam()
        self._draw_masks()
        self.update_corners()

    def update_corners(self) -> None:
        """The corners' text for the slice, window and zoom shown now."""
        state, layers = self.viewer, self._layers
        self.corners.set_visible(layers.corners_visible and state.volume is not None)
        if state.volume is None or not layers.corners_visible:
            return
        data_per_px = self.view.viewPixelSize()[0]  # mm of the image per screen pixel
        zoom = float(state.volume.spacing[2]) / data_per_px if data_per_px > 0 else 1.0
        slab_text = "" if layers.slab_mode == "off" else f"{SLAB_MODES[layers.slab_mode]} slab {layers.slab_mm:g} mm"
        self.corners.set_texts(corner_texts(state.volume, state.z, state.window, state.preset, zoom,
                                            layers.anonymised, slab_text))

    def _draw_cam(self) -> None:
        state = self.viewer
        cams = getattr(state.result, "cams", None) if state.result is not None else None
        if cams is None or state.volume is None or (
                self._layers.cam_flagged_only and not bool(state.result.slice_positive[state.z])):
            self.cam_item.clear()
            return
        self.cam_item.setImage(overlays.activation_rgba(cams[state.z], self._cam_lut), autoLevels=False,
                               levels=None)
        self.cam_item.setRect(self._rect)

    def _draw_masks(self) -> None:
        state, layers = self.viewer, self._layers
        result = state.result
        if result is None or state.volume is None:
            self.mask_item.clear()
            return
        z = state.z
        lesion = getattr(result, "lesion_mask", None)
        lung = getattr(result, "lung_mask", None)
        rgba = overlays.masks_rgba(
            state.volume.array.shape[1:],
            lesion[z] if lesion is not None and layers.lesion_visible else None,
            lung[z] if lung is not None and layers.lung_visible else None,
            lesion_color=layers.lesion_color, lesion_alpha=layers.lesion_opacity,
            lesion_outline=layers.lesion_outline, lung_colors=LUNG_COLORS, lung_alpha=layers.lung_opacity)
        self.mask_item.setImage(rgba, autoLevels=False, levels=None)
        self.mask_item.setRect(self._rect)

    def reset_view(self) -> None:
        """Fit the slice in the view (key ``r``)."""
        if not self._rect.isEmpty():
            self.view.setRange(self._rect, padding=0.0)

    # --- mouse -------------------------------------------------------------------------
    def _on_window_drag(self, dx: float, dy: float) -> None:
        width, level = self.viewer.window
        gain = max(width, 50.0) * _WL_GAIN
        # Drag right widens the window, drag down raises the level (as in most PACS viewers).
        self.viewer.set_window(width + dx * gain, level + dy * gain)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        volume = self.viewer.volume
        if volume is None or not self.view.sceneBoundingRect().contains(scene_pos):
            self.viewer.set_cursor(None)
            return
        p = self.view.mapSceneToView(scene_pos)
        _, sy, sx = volume.spacing
        self.viewer.set_cursor(p.x() / sx, p.y() / sy)

    def voxel_to_scene(self, x: float, y: float) -> QPointF:
        """Scene position of the centre of voxel column ``x``, row ``y`` (used by tests)."""
        _, sy, sx = self.viewer.volume.spacing
        return self.view.mapViewToScene(QPointF((x + 0.5) * sx, (y + 0.5) * sy))
