"""``jcs-viewer bench gui``: time to show a new slice with every overlay (offscreen);
``jcs-viewer bench view3d``: the 3-D surface build for a 300-slice study."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from typing import Any

import numpy as np


def bench_gui(args: Any) -> int:
    """Build the window on a synthetic study + result and time slice changes.

    Each timed change sets a new slice (image + activation map + lesion + lung outline
    RGBA built for that slice), then processes events and repaints the slice view.
    Prints the median and the 90th percentile over ``max(100, 20 * repeats)`` changes.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    n_slices = int(getattr(args, "slices", 300) or 300)
    size = int(getattr(args, "size", 512) or 512)
    changes = max(100, 20 * int(getattr(args, "repeats", 5) or 5))

    from jcs_viewer.settings import SettingsStore
    from PySide6.QtWidgets import QApplication

    from jcs_viewer.gui.app import ensure_app
    from jcs_viewer.gui.main_window import MainWindow
    from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume

    app = ensure_app()
    t0 = time.perf_counter()
    volume, lung, lesion = synthetic_volume(n_slices=n_slices, size=size)
    result = synthetic_result(volume, lung, lesion)
    build_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        settings = SettingsStore(os.path.join(tmp, "bench.ini"))
        settings.update(auto_analyze=False)
        window = MainWindow(settings=settings)
        window.resize(1440, 900)
        window.show()
        window.state.set_volume(volume)
        window.state.set_result(result)
        window.state.set_layers(cam_flagged_only=False)  # worst case: the activation map on every slice
        app.processEvents()
        view = window.slice_view
        rng_slices = [(7 * i + 3) % n_slices for i in range(changes)]  # jump around: no caching helps
        times = []
        build_times = []
        painted = []
        for z in rng_slices:
            start = time.perf_counter()
            window.state.set_slice(z if z != window.state.z else (z + 1) % n_slices)
            built = time.perf_counter()
            QApplication.processEvents()  # scene update + one repaint of the view, as in the app
            end = time.perf_counter()
            painted.append(all(item.qimage is not None for item in (view.image, view.cam_item, view.mask_item)))
            times.append(end - start)
            build_times.append(built - start)
        visible = all(painted) and all(item.isVisible() and item.image is not None
                      for item in (view.cam_item, view.mask_item))
        window.close()

    times_ms = sorted(t * 1000 for t in times)
    figures = {
        "slices": n_slices,
        "size": size,
        "changes": changes,
        "median_ms": round(statistics.median(times_ms), 2),
        "p90_ms": round(times_ms[int(0.9 * (len(times_ms) - 1))], 2),
        "median_set_slice_ms": round(statistics.median(build_times) * 1000, 2),
        "target_ms": 16.0,
        "overlays_visible": visible,
        "synthetic_build_s": round(build_s, 2),
    }
    if getattr(args, "json", False):
        print(json.dumps(figures))
    else:
        print(f"GUI slice change ({n_slices} slices of {size}², image + activation map + lesion + lung outline, "
              f"offscreen, {changes} changes incl. repaint + processEvents)")
        print(f"  median {figures['median_ms']:.2f} ms   p90 {figures['p90_ms']:.2f} ms   "
              f"(state + overlay build only: {figures['median_set_slice_ms']:.2f} ms)   target <= 16 ms")
        print(f"  every change painted, all overlays visible: {visible}")
    return 0


def bench_view3d(args: Any) -> int:
    """``jcs-viewer bench view3d``: 3-D surface build time for a generated study (default 300 slices).

    On the deterministic chest phantom (``--slices`` x 512², lungs and lesions from its ground truth),
    prints medians over ``--repeats`` runs of:

    - the mesh build the 3-D view's worker does for a new study (crop both masks, lung surface,
      lesion surfaces): the figure issue 8 asks for;
    - the view end to end, ``LungLesionView.set_study`` until the meshes are in the scene
      (``surfaces_ready``), as the reader waits for it;
    - the lesion-only rebuild after one brush stroke (``update_lesions``);
    - one offscreen render + read-back at 800², when OpenGL (EGL) is available ("n/a" otherwise).
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    n_slices = int(getattr(args, "slices", 300) or 300)
    size = int(getattr(args, "size", 512) or 512)
    repeats = max(1, int(getattr(args, "repeats", 5) or 5))

    from jcs_viewer.errors import ExportError
    from jcs_viewer.gui.app import ensure_app
    from jcs_viewer.gui.surfaces import Geometry, bench_surfaces
    from jcs_viewer.gui.view3d import LungLesionView
    from jcs_viewer.io.phantom import make_phantom

    app = ensure_app()
    t0 = time.perf_counter()
    phantom = make_phantom(n_slices=n_slices, size=size)
    volume = phantom.to_volume()
    lung = np.ascontiguousarray(phantom.lung_mask, dtype=np.uint8)
    lesion = (np.asarray(phantom.lesion_mask) > 0).astype(np.uint8)
    del phantom
    phantom_s = time.perf_counter() - t0
    geometry = Geometry.create(volume.spacing, volume.origin, volume.direction)

    meshes = bench_surfaces(lung, lesion, geometry, repeats=repeats)

    view = LungLesionView()
    view.resize(800, 800)
    end_to_end, rebuild, render = [], [], []
    edited = lesion.copy()
    _, ny, nx = lesion.shape
    z_mid = n_slices // 2
    try:
        for i in range(repeats):
            start = time.perf_counter()
            view.set_study(lung, lesion, volume.spacing, volume.origin, volume.direction)
            if not view.wait_for_build(300):
                raise RuntimeError("the 3-D build did not finish within 5 minutes")
            end_to_end.append(time.perf_counter() - start)
            # One brush stroke (a 10 mm disc dragged 30 mm) on a middle slice, then the lesion rebuild.
            yy, xx = np.ogrid[:ny, :nx]
            cy, cx = ny // 2 - 40, nx // 3 + 5 * i
            stroke = (((yy - cy) / 14.0) ** 2 + ((xx - cx) / 57.0) ** 2) <= 1.0
            edited[z_mid][stroke] = 1
            start = time.perf_counter()
            view.update_lesions(edited)
            if not view.wait_for_build(300):
                raise RuntimeError("the lesion rebuild did not finish within 5 minutes")
            rebuild.append(time.perf_counter() - start)
            app.processEvents()
        try:
            view.snapshot((800, 800))  # the first render compiles shaders: not counted
            for _ in range(repeats):
                start = time.perf_counter()
                view.snapshot((800, 800))
                render.append(time.perf_counter() - start)
        except ExportError as exc:
            render_note = str(exc)
        else:
            render_note = ""
    finally:
        view.shutdown()
        view.deleteLater()

    figures = {
        "slices": n_slices,
        "size": size,
        "spacing_mm": [round(float(s), 3) for s in volume.spacing],
        "repeats": repeats,
        "mesh_build_median_s": round(meshes["surfaces_total_s"], 3),
        "lung_surface_median_s": round(meshes["lung_surface_s"], 3),
        "lesion_surface_median_s": round(meshes["lesion_surface_s"], 3),
        "lung_triangles": int(meshes["lung_triangles"]),
        "lesion_triangles": int(meshes["lesion_triangles"]),
        "view_set_study_median_s": round(statistics.median(end_to_end), 3),
        "lesion_rebuild_after_stroke_median_s": round(statistics.median(rebuild), 3),
        "offscreen_render_800_median_s": round(statistics.median(render), 3) if render else None,
        "offscreen_render_note": render_note,
        "phantom_build_s": round(phantom_s, 2),
    }
    if getattr(args, "json", False):
        print(json.dumps(figures))
    else:
        sz, sy, sx = figures["spacing_mm"]
        print(f"3-D surfaces ({n_slices} slices of {size}², {sz} x {sy} x {sx} mm, chest phantom ground truth; "
              f"median of {repeats})")
        print(f"  mesh build for a new study   {figures['mesh_build_median_s']:.2f} s   "
              f"(lungs {figures['lung_surface_median_s']:.2f} s, {figures['lung_triangles']} triangles; "
              f"lesions {figures['lesion_surface_median_s']:.2f} s, {figures['lesion_triangles']} triangles)")
        print(f"  view: set_study -> meshes shown   {figures['view_set_study_median_s']:.2f} s")
        print(f"  lesion rebuild after a stroke     {figures['lesion_rebuild_after_stroke_median_s']:.2f} s")
        if render:
            print(f"  offscreen render 800x800          {figures['offscreen_render_800_median_s']:.3f} s")
        else:
            print(f"  offscreen render: n/a ({render_note})")
    return 0
