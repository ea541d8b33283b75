"""3-D view of the lungs (translucent) and lesions (solid) as an embeddable Qt widget.

Embedding API (everything runs on the GUI thread; meshes are built in a worker thread)::

    view = LungLesionView(parent)                 # cheap; VTK is imported here, not at module import
    view.set_study(lung_mask, lesion_mask, spacing, origin, direction)
    view.update_lesions(lesion_mask)              # after edits: rebuilds the lesion surface only
    view.reset_view()                             # anterior view, head up (also the "r" key)
    view.export_png(path, size=(800, 800))        # -> Path; offscreen render for the PDF report
    view.wait_for_build(timeout=None)             # block until the pending meshes are shown
    view.shutdown()                               # call from the host's closeEvent (finalises VTK)

- ``lung_mask``: uint8 ``(z, y, x)``, 0 outside, 1 right lung, 2 left lung.
- ``lesion_mask``: uint8 ``(z, y, x)``, non-zero = lesion. Both are read on the calling
  thread only (their bounding boxes are copied), so the caller may keep editing them.
- ``spacing`` ``(z, y, x)`` mm, ``origin`` ``(x, y, z)`` LPS mm and ``direction`` 3x3
  as in :class:`jcs_viewer.io.volume.Volume`.

Attributes: ``available`` (the interactive OpenGL view works), ``unavailable_reason``,
``build_seconds`` (time from the last ``set_study``/``update_lesions`` call until its meshes were
in the scene, before drawing), ``render_seconds`` (last on-screen frame), ``last_stats``
(per-surface :class:`~jcs_viewer.gui.surfaces.SurfaceStats`).
Signals: ``surfaces_ready(float seconds)``, ``build_failed(str message)``.

Without a usable OpenGL window (Qt's offscreen platform, Wayland, a driver without OpenGL 3.2, an
OpenGL error before the first frame, or ``JCS_VIEWER_NO_3D=1``) the widget shows
"3-D view unavailable: OpenGL could not be initialised (reason)." instead; meshes are still built,
and ``export_png`` still works through VTK's offscreen EGL window where that exists.

Camera: anterior view (camera looks along +y, i.e. posterior, view-up +z), so the patient's right
is on the image's left, as on a radiograph. Rotate = left drag, pan = middle drag or Shift+left,
zoom = wheel or right drag (VTK trackball camera).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from jcs_viewer.errors import ExportError
from jcs_viewer.gui.workers import TaskWorker, start_task
from jcs_viewer.gui.vtk_scene import (add_corner_axes, anterior_camera, configure_renderer, make_actors,
                                     offscreen_window, orientation_axes, read_pixels, set_mesh)

# Qt platforms on which VTK has a native OpenGL window to draw into.
NATIVE_PLATFORMS = {"xcb": "X11", "windows": "Win32", "cocoa": "Cocoa"}
DISABLE_ENV = "JCS_VIEWER_NO_3D"


def opengl_unavailable_reason() -> str | None:
    """Why the interactive 3-D view cannot work in this process, or ``None`` when it may.

    Checks only what needs no OpenGL context; :class:`LungLesionView` also probes the driver.
    """
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        return f"disabled by the {DISABLE_ENV} environment variable"
    platform = QGuiApplication.platformName()
    if platform == "wayland":
        return "VTK cannot draw into Wayland windows; start the viewer with QT_QPA_PLATFORM=xcb"
    if platform not in NATIVE_PLATFORMS:
        return f"the Qt platform '{platform}' has no on-screen OpenGL windows"
    return None


@dataclass
class _Job:
    """One mesh build: inputs are private copies, so the worker never touches the caller's masks."""

    study_gen: int
    lesion_gen: int
    started: float
    geometry: Any
    lung: tuple[np.ndarray, tuple[int, int, int]] | None  # None: keep the current lung surface
    lesion: tuple[np.ndarray, tuple[int, int, int]]
    lung_poly: Any = None
    lesion_poly: Any = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    done: bool = False  # built (set by the worker thread, read by the GUI thread)
    applied: bool = False




class LungLesionView(QWidget):
    """Lungs and lesions as VTK surfaces, with trackball rotate/zoom/pan and an anterior reset."""

    surfaces_ready = Signal(float)
    build_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LungLesionView")
        # The VTK widget makes this widget and its siblings native X windows, whose background nobody
        # paints otherwise: the tool row would show stale pixels (the slice view's) behind its buttons.
        self.setAutoFillBackground(True)
        self.build_seconds: float | None = None
        self.last_stats: dict[str, Any] = {}
        self.render_seconds: float | None = None
        self.available = False
        self.unavailable_reason: str | None = None
        self._geometry: Any = None
        self._shape: tuple[int, ...] | None = None
        self._lung_poly: Any = None
        self._lesion_poly: Any = None
        self._study_gen = 0
        self._lesion_gen = 0
        self._lock = threading.Lock()
        # Builds run one at a time, in order, on the app's one worker abstraction (TaskWorker): they never
        # compete for the two cores, and a superseded job is dropped by its generation numbers.
        self._waiting: list[_Job] = []
        self._worker: TaskWorker | None = None
        self._worker_job: _Job | None = None
        self._vtk_widget: Any = None
        self._renderer: Any = None
        self._actors: dict[str, Any] = {}
        self._marker: Any = None
        self._fallback_label: QLabel | None = None
        self._camera_set = False
        self._initialised = False
        self._frame_done = False

        self._reset_button = QPushButton("Reset view")
        self._reset_button.setToolTip("Anterior view, head up (r)")
        self._reset_button.clicked.connect(self.reset_view)
        self._lungs_box = QCheckBox("Lungs")
        self._lungs_box.setChecked(True)
        self._lungs_box.setToolTip("Show the translucent lung surface")
        self._lungs_box.toggled.connect(self._on_lungs_toggled)
        self._status = QLabel("No study")
        self._status.setObjectName("view3dStatus")
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(self._reset_button)
        bar.addWidget(self._lungs_box)
        bar.addStretch(1)
        bar.addWidget(self._status)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self._layout.addLayout(bar)

        reason = opengl_unavailable_reason()
        if reason is None:
            try:
                reason = self._create_vtk_view()
            except Exception as exc:  # noqa: BLE001 - any failure here means "no 3-D view", never a crash
                reason = f"{type(exc).__name__}: {exc}"
        if reason is not None:
            self._show_fallback(reason)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ----------------------------------------------------------------------------- set-up

    def _create_vtk_view(self) -> str | None:
        """Builds the interactive VTK widget; returns a reason string when OpenGL is unusable."""
        import vtkmodules.qt

        vtkmodules.qt.PyQtImpl = "PySide6"
        import vtkmodules.vtkInteractionStyle  # noqa: F401 - registers the interactor styles
        import vtkmodules.vtkRenderingOpenGL2  # noqa: F401 - registers the OpenGL back end
        from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
        from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow

        if QGuiApplication.platformName() == "xcb":
            # The factory would honour VTK_DEFAULT_OPENGL_WINDOW (EGL, offscreen only); the widget needs GLX.
            from vtkmodules.vtkRenderingOpenGL2 import vtkXOpenGLRenderWindow

            window = vtkXOpenGLRenderWindow()
        else:
            window = vtkRenderWindow()
        if not window.SupportsOpenGL():
            return "the graphics driver offers no OpenGL 3.2 context"
        widget = QVTKRenderWindowInteractor(self, rw=window)
        try:
            renderer = vtkRenderer()
            configure_renderer(renderer, window, depth_peeling=False)
            window.AddRenderer(renderer)
            style = vtkInteractorStyleTrackballCamera()
            # An observer on the style replaces its key handling: VTK's defaults ("e" quits,
            # "w" wireframe, "3" stereo...) make no sense inside the viewer; "r" resets to anterior.
            style.AddObserver("CharEvent", self._on_char)
            widget.SetInteractorStyle(style)
            # Errors before the first frame (context creation, shader compilation) mean no 3-D view.
            window.AddObserver("ErrorEvent", self._on_vtk_error)
            window.AddObserver("EndEvent", self._on_frame_done)
        except Exception:
            widget.setParent(None)
            widget.deleteLater()
            raise
        self._style = style
        self._vtk_widget = widget
        self._renderer = renderer
        self._actors = make_actors(renderer)
        self._layout.addWidget(widget, 1)
        self.available = True
        return None

    def _on_vtk_error(self, _window, _event, message: str | None = None) -> None:
        if self._frame_done or self._vtk_widget is None:
            return
        lines = (message or "").strip().splitlines() or ["unknown OpenGL error"]
        # Swap after VTK has unwound: never delete the window from inside its own callback.
        QTimer.singleShot(0, self, lambda: self._fall_back_after_error(lines[-1].strip()))

    # VTK passes the error text only to callbacks that declare it (vtkConstants.VTK_STRING; set
    # here rather than with vtkmodules.util.misc.calldata_type so importing this module stays VTK-free).
    _on_vtk_error.CallDataType = 13  # type: ignore[attr-defined]

    def _on_frame_done(self, _window, _event) -> None:
        self._frame_done = True

    def _fall_back_after_error(self, message: str) -> None:
        if self._vtk_widget is None or self._frame_done:
            return
        self.shutdown()
        self._show_fallback(message[:200])

    def _show_fallback(self, reason: str) -> None:
        if getattr(self, "_fallback_label", None) is not None:
            return
        self.available = False
        self.unavailable_reason = reason
        self._vtk_widget = None
        self._renderer = None
        self._actors = {}
        label = QLabel(f"3-D view unavailable: OpenGL could not be initialised ({reason}).")
        label.setObjectName("view3dUnavailable")
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setStyleSheet("color: #c8c8c8; background: #16171c; padding: 12px;")
        self._fallback_label = label
        self._layout.addWidget(label, 1)
        self._reset_button.setEnabled(False)
        self._lungs_box.setEnabled(False)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._vtk_widget is not None and not self._initialised:
            self._initialised = True
            self._vtk_widget.Initialize()
            self._add_orientation_marker()

    def _add_orientation_marker(self) -> None:
        """Axes labelled L/P/S in the lower-left corner: which way the patient faces."""
        try:
            from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget

            marker = vtkOrientationMarkerWidget()
            marker.SetOrientationMarker(orientation_axes())
            marker.SetInteractor(self._vtk_widget.GetRenderWindow().GetInteractor())
            marker.SetViewport(0.0, 0.0, 0.16, 0.16)
            marker.SetEnabled(1)
            marker.InteractiveOff()
            self._marker = marker
        except Exception:  # noqa: BLE001 - the marker is a nicety; the view works without it
            self._marker = None

    # ----------------------------------------------------------------------------- public API

    def set_study(
        self,
        lung_mask: np.ndarray,
        lesion_mask: np.ndarray,
        spacing: tuple[float, float, float],
        origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
        direction: np.ndarray | None = None,
    ) -> None:
        """Shows a new study: builds both surfaces in the background, then resets to the anterior view.

        Raises:
            ValueError: the masks are not 3-D, differ in shape, or the geometry is invalid.
        """
        from jcs_viewer.gui.surfaces import Geometry, crop_to_mask

        started = time.perf_counter()
        lung_mask = np.asarray(lung_mask)
        lesion_mask = np.asarray(lesion_mask)
        if lung_mask.ndim != 3 or lung_mask.shape != lesion_mask.shape:
            raise ValueError(
                f"lung and lesion masks must be 3-D and the same shape, got {lung_mask.shape} and {lesion_mask.shape}"
            )
        geometry = Geometry.create(spacing, origin, direction)
        with self._lock:
            self._study_gen += 1
            self._lesion_gen += 1
            job = _Job(self._study_gen, self._lesion_gen, started, geometry, crop_to_mask(lung_mask),
                       crop_to_mask(lesion_mask))
        self._geometry = geometry
        self._shape = lung_mask.shape
        self._camera_set = False
        self._submit(job)

    def update_lesions(self, lesion_mask: np.ndarray) -> None:
        """Rebuilds only the lesion surface (after edits); the camera stays where the reader left it.

        Raises:
            RuntimeError: no study was set.
            ValueError: the mask's shape differs from the study's.
        """
        from jcs_viewer.gui.surfaces import crop_to_mask

        if self._geometry is None:
            raise RuntimeError("update_lesions() needs set_study() first")
        lesion_mask = np.asarray(lesion_mask)
        if lesion_mask.shape != self._shape:
            raise ValueError(f"lesion mask shape {lesion_mask.shape} differs from the study's {self._shape}")
        started = time.perf_counter()
        with self._lock:
            self._lesion_gen += 1
            job = _Job(self._study_gen, self._lesion_gen, started, self._geometry, None, crop_to_mask(lesion_mask))
        self._submit(job)

    def wait_for_build(self, timeout: float | None = None) -> bool:
        """Blocks until every requested build is done and shown; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._worker_job is not None:
            job, worker = self._worker_job, self._worker
            if not job.done:
                left_ms = 2 ** 31 - 1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
                if not worker.wait(left_ms) and not job.done:
                    return False
            self._on_job_done(job)  # its queued signal arrives later and finds it applied
            self._start_next()
        return True

    def reset_view(self) -> None:
        """Anterior view (patient facing the viewer, head up), zoomed to fit the lungs."""
        if self._renderer is None:
            return
        anterior_camera(self._renderer, self._scene_bounds())
        self._camera_set = True
        self._render()

    def export_png(self, path: str | os.PathLike, size: tuple[int, int] = (800, 800)) -> Path:
        """Renders the current scene offscreen at ``size`` and writes a PNG atomically.

        Uses the reader's camera when the interactive view exists, else the anterior view.

        Raises:
            ExportError: nothing to show, the folder is missing, OpenGL is unavailable, or the write failed.
        """
        path = Path(path)
        self.wait_for_build()
        if self._lung_poly is None and self._lesion_poly is None:
            raise ExportError(f"Cannot write {path}: no study is shown in the 3-D view.")
        if not path.parent.is_dir():
            raise ExportError(f"Cannot write {path}: the folder {path.parent} does not exist.")
        pixels = self.snapshot(size)
        height, width, _ = pixels.shape
        image = QImage(pixels.tobytes(), width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if not image.save(str(tmp), "PNG"):
                raise ExportError(f"Cannot write {path}: the image could not be saved there.")
            os.replace(tmp, path)
        except OSError as exc:
            raise ExportError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def snapshot(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """RGB ``(height, width, 3)`` uint8 image of the scene.

        ``size=None`` reads the on-screen window (interactive view only); a size renders offscreen.

        Raises:
            ExportError: no OpenGL window could render the scene.
        """
        if size is None:
            if self._vtk_widget is None or not self._initialised:
                raise ExportError("The 3-D view is not shown, so it cannot be captured; give a size.")
            window = self._vtk_widget.GetRenderWindow()
            window.Render()
            return read_pixels(window)
        return self._render_offscreen(size)

    def shutdown(self) -> None:
        """Releases the OpenGL window and the worker thread.

        The interactive view is gone afterwards; meshes can still be built and exported.
        """
        self._waiting.clear()
        worker, self._worker, self._worker_job = self._worker, None, None
        if worker is not None:
            worker.cancel()  # a build takes seconds at most: it ends on its own (see workers.start_task)
        widget, self._vtk_widget = self._vtk_widget, None
        if widget is not None:
            if self._marker is not None:
                self._marker.SetEnabled(0)
                self._marker = None
            widget.close()  # before Finalize, else X errors at exit
            widget.Finalize()
        self._renderer = None
        self._actors = {}

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        # Only a top-level view gets close events; embedded, the host calls shutdown() (or the
        # application's aboutToQuit does).
        self.shutdown()
        super().closeEvent(event)

    # ----------------------------------------------------------------------------- building

    def _submit(self, job: _Job) -> None:
        self._status.setText("Building 3-D surfaces…")
        self._waiting.append(job)
        self._start_next()

    def _start_next(self) -> None:
        """Start the next waiting build once the current one is built (GUI thread)."""
        if self._worker_job is not None and not self._worker_job.done:
            return
        if not self._waiting:
            self._worker, self._worker_job = None, None
            return
        job = self._waiting.pop(0)
        self._worker_job = job
        self._worker = start_task("3-D surfaces", lambda _progress, _cancel: self._build(job),
                                  succeeded=self._on_job_done, settled=self._start_next)

    def _build(self, job: _Job) -> _Job:
        """Worker thread: meshes only; no VTK rendering object is touched here."""
        from jcs_viewer.gui.surfaces import build_lesion_surface, build_lung_surface

        try:
            if job.study_gen != self._study_gen:
                return job  # superseded before it started
            if job.lung is not None:
                job.lung_poly, job.stats["lungs"] = build_lung_surface(job.lung[0], job.geometry, job.lung[1])
            if job.lesion_gen == self._lesion_gen:
                job.lesion_poly, job.stats["lesions"] = build_lesion_surface(
                    job.lesion[0], job.geometry, job.lesion[1]
                )
        except Exception as exc:  # noqa: BLE001 - reported to the GUI as one sentence
            job.error = f"The 3-D surfaces could not be built: {exc}"
        # Free the mask copies now: finished jobs stay referenced until the next submit.
        job.lung = None if job.lung is None else (np.empty((0, 0, 0), np.uint8), job.lung[1])
        job.lesion = (np.empty((0, 0, 0), np.uint8), job.lesion[1])
        job.done = True
        return job

    def _on_job_done(self, job: _Job) -> None:
        """GUI thread: puts the fresh meshes into the scene (once per job)."""
        if job.applied:
            return
        job.applied = True
        if job.error:
            self._status.setText("3-D build failed")
            self.build_failed.emit(job.error)
            return
        changed = False
        with self._lock:
            if job.lung_poly is not None and job.study_gen == self._study_gen:
                self._lung_poly = job.lung_poly
                changed = True
            lesion_current = job.lesion_gen == self._lesion_gen and job.study_gen == self._study_gen
            if job.lesion_poly is not None and lesion_current:
                self._lesion_poly = job.lesion_poly
                changed = True
        if not changed:
            return
        self._show_meshes()
        if lesion_current:
            self.build_seconds = time.perf_counter() - job.started
            self.last_stats = dict(job.stats)
            none = "" if self._lesion_poly is not None and self._lesion_poly.GetNumberOfPoints() else "; no lesions"
            self._status.setText(f"Surfaces built in {self.build_seconds:.2f} s{none}")
        self._render()
        if lesion_current:
            self.surfaces_ready.emit(self.build_seconds)

    def _show_meshes(self) -> None:
        if not self._actors:
            return
        set_mesh(self._actors["lungs"], self._lung_poly, self._lungs_box.isChecked())
        set_mesh(self._actors["lesions"], self._lesion_poly)
        if not self._camera_set:
            anterior_camera(self._renderer, self._scene_bounds())
            self._camera_set = True

    def _scene_bounds(self) -> tuple[float, ...] | None:
        from jcs_viewer.gui.surfaces import polydata_bounds

        boxes = [b for b in (polydata_bounds(p) for p in (self._lung_poly, self._lesion_poly) if p is not None)
                 if b is not None]
        if not boxes:
            return None
        stacked = np.array(boxes)
        return tuple(np.ravel(np.column_stack([stacked[:, 0::2].min(axis=0), stacked[:, 1::2].max(axis=0)])))

    # ----------------------------------------------------------------------------- rendering

    def _render(self) -> None:
        if self._vtk_widget is None:
            return
        if self._initialised and self._vtk_widget.isVisible():
            started = time.perf_counter()
            self._vtk_widget.GetRenderWindow().Render()
            self.render_seconds = time.perf_counter() - started
        else:
            self._vtk_widget.update()

    def _on_lungs_toggled(self, checked: bool) -> None:
        if "lungs" in self._actors:
            set_mesh(self._actors["lungs"], self._lung_poly, checked)
            self._render()

    def _on_char(self, style, _event) -> None:
        if style.GetInteractor().GetKeyCode() in ("r", "R"):
            self.reset_view()

    def _render_offscreen(self, size: tuple[int, int]) -> np.ndarray:
        from vtkmodules.vtkRenderingCore import vtkRenderer

        width, height = (int(v) for v in size)
        if width < 16 or height < 16 or width > 8192 or height > 8192:
            raise ExportError(f"The image size {size} is outside 16..8192 pixels.")
        window, reason = offscreen_window()
        if window is None:
            raise ExportError(f"The 3-D image could not be rendered: OpenGL could not be initialised ({reason}).")
        try:
            window.SetSize(width, height)
            renderer = vtkRenderer()
            configure_renderer(renderer, window, depth_peeling=True)
            window.AddRenderer(renderer)
            # Fresh actors and mappers: OpenGL buffers belong to one context and cannot be shared.
            actors = make_actors(renderer)
            set_mesh(actors["lungs"], self._lung_poly, self._lungs_box.isChecked())
            set_mesh(actors["lesions"], self._lesion_poly)
            if self._renderer is not None and self._camera_set:
                renderer.GetActiveCamera().DeepCopy(self._renderer.GetActiveCamera())
                renderer.ResetCameraClippingRange()
            else:
                anterior_camera(renderer, self._scene_bounds())
            add_corner_axes(window, renderer)
            window.Render()
            return read_pixels(window)
        finally:
            window.Finalize()
