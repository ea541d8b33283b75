"""The VTK 3-D view: mesh building, the no-OpenGL fallback, offscreen export and (under X) real rendering.

Qt runs offscreen here (tests/conftest.py), where VTK's Qt widget cannot draw: those tests check the
fallback. The real-render test starts a subprocess on the X display from the environment
(CI: ``xvfb-run -a pytest``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vtkmodules")

from jcs_viewer.errors import ExportError  # noqa: E402
from jcs_viewer.gui.surfaces import (  # noqa: E402
    Geometry,
    build_lesion_surface,
    build_lung_surface,
    crop_to_mask,
    mask_bounds_lps,
    polydata_bounds,
    split_boxes,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SPACING = (2.5, 1.5, 1.5)
ORIGIN = (-96.0, -90.0, -210.0)


def synthetic_masks(n_slices: int = 48, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Two ellipsoid lungs (1 = right at low x, 2 = left) and one lesion high in the right lung."""
    z, y, x = np.ogrid[:n_slices, :size, :size]
    lung = np.zeros((n_slices, size, size), np.uint8)
    for label, xc in ((1, 0.3 * size), (2, 0.7 * size)):
        inside = (((x - xc) / (0.16 * size)) ** 2 + ((y - 0.5 * size) / (0.3 * size)) ** 2
                  + ((z - 0.5 * n_slices) / (0.45 * n_slices)) ** 2) <= 1.0
        lung[inside] = label
    lesion = ((((x - 0.3 * size) / (0.08 * size)) ** 2 + ((y - 0.45 * size) / (0.08 * size)) ** 2
               + ((z - 0.68 * n_slices) / (0.12 * n_slices)) ** 2) <= 1.0) & (lung == 1)
    return lung, lesion.astype(np.uint8)


def reddish(pixels: np.ndarray) -> np.ndarray:
    """Boolean map of lesion-coloured (orange/red) pixels."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 120) & (r - b > 70) & (r - g > 30)


# ---------------------------------------------------------------------------------- meshes


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, -1.0, 1.0])], ids=["identity", "flipped-xy"])
def test_lesion_surface_lies_within_the_lesion_voxels(direction):
    lung, lesion = synthetic_masks()
    geometry = Geometry.create(SPACING, ORIGIN, direction)
    poly, stats = build_lesion_surface(lesion, geometry)
    assert poly.GetNumberOfPoints() > 50 and stats.triangles > 100
    mesh = polydata_bounds(poly)
    voxels = mask_bounds_lps(lesion, geometry)
    # Windowed-sinc smoothing may overshoot a voxel corner by ~0.1 voxel; a placement error is >= 1 voxel.
    tolerance = 0.25 * np.abs(geometry.direction) @ geometry.spacing_xyz
    assert np.all(mesh[0::2] >= voxels[0::2] - tolerance), (mesh, voxels)
    assert np.all(mesh[1::2] <= voxels[1::2] + tolerance), (mesh, voxels)
    # Not shrunk or misplaced: the mesh spans most of the lesion along every axis.
    assert np.all((mesh[1::2] - mesh[0::2]) > 0.7 * (voxels[1::2] - voxels[0::2]))


@pytest.mark.parametrize("spacing", [(2.5, 0.7, 0.7), (1.0, 0.7, 0.7), (0.7, 0.7, 0.7), (5.0, 0.8, 0.8)])
def test_a_lesion_one_slice_thick_keeps_its_thickness(spacing):
    """A brush stroke (or an AI lesion) on a single slice is a slab one slice thick in 3-D, not a
    sheet of paper: the blur used to spread it over neighbouring slices until it barely crossed the
    iso-value (0.5 mm thick for a 2.5 mm slice)."""
    mask = np.zeros((9, 128, 128), np.uint8)
    yy, xx = np.ogrid[:128, :128]
    mask[4][((yy - 64) ** 2 + (xx - 64) ** 2) <= 15 ** 2] = 1
    mask[4, 20:24, 10:100] = 1  # a 4-pixel wide stroke on the same slice
    geometry = Geometry.create(spacing, ORIGIN)
    poly, stats = build_lesion_surface(mask, geometry)
    assert stats.triangles > 100
    mesh, voxels = polydata_bounds(poly), mask_bounds_lps(mask, geometry)
    thickness = mesh[5] - mesh[4]
    assert thickness >= 0.6 * spacing[0], (thickness, spacing)
    tolerance = 0.25 * geometry.spacing_xyz
    assert np.all(mesh[0::2] >= voxels[0::2] - tolerance) and np.all(mesh[1::2] <= voxels[1::2] + tolerance)


def test_cropped_copy_builds_the_same_surface_as_the_full_mask():
    _, lesion = synthetic_masks()
    geometry = Geometry.create(SPACING, ORIGIN)
    crop, offset = crop_to_mask(lesion)
    assert crop.size < lesion.size and offset != (0, 0, 0)
    full, _ = build_lesion_surface(lesion, geometry)
    cropped, _ = build_lesion_surface(crop, geometry, offset)
    np.testing.assert_allclose(polydata_bounds(cropped), polydata_bounds(full), atol=1e-4)


def test_scattered_lesions_are_meshed_in_separate_tight_boxes():
    mask = np.zeros((30, 40, 50), np.uint8)
    mask[2:6, 3:9, 4:10] = 1
    mask[20:28, 25:35, 30:45] = 2
    boxes = sorted(split_boxes(mask), key=lambda box: box[0].start)
    assert [tuple((s.start, s.stop) for s in box) for box in boxes] == [
        ((2, 6), (3, 9), (4, 10)),
        ((20, 28), (25, 35), (30, 45)),
    ]
    speckle = np.zeros((8, 40, 40), np.uint8)
    speckle[:, ::2, ::2] = 1  # hundreds of separable dots: one box, not hundreds
    assert len(split_boxes(speckle, max_boxes=48)) == 1
    geometry = Geometry.create(SPACING, ORIGIN)
    poly, _ = build_lesion_surface(mask, geometry)
    tolerance = 0.25 * geometry.spacing_xyz
    voxels = mask_bounds_lps(mask, geometry)
    mesh = polydata_bounds(poly)
    assert np.all(mesh[0::2] >= voxels[0::2] - tolerance) and np.all(mesh[1::2] <= voxels[1::2] + tolerance)


def test_lung_surface_is_downsampled_and_covers_both_lungs():
    lung, _ = synthetic_masks()
    geometry = Geometry.create(SPACING, ORIGIN)
    poly, stats = build_lung_surface(lung, geometry)
    assert stats.downsample[1:] == (2, 2)
    assert poly.GetNumberOfPoints() > 100
    mesh = polydata_bounds(poly)
    voxels = mask_bounds_lps(lung, geometry)
    block_mm = np.array(geometry.spacing_xyz) * np.array(stats.downsample[::-1])
    # Downsampling moves the boundary by up to a block; the surface is also inflated by half a block.
    assert np.all(np.abs(mesh - voxels) <= np.repeat(1.5 * block_mm, 2)), (mesh, voxels)


def test_empty_mask_gives_empty_surface():
    poly, stats = build_lesion_surface(np.zeros((4, 8, 8), np.uint8), Geometry.create(SPACING))
    assert poly.GetNumberOfPoints() == 0 and stats.triangles == 0
    assert polydata_bounds(poly) is None


def test_geometry_rejects_bad_values():
    with pytest.raises(ValueError, match="spacing"):
        Geometry.create((0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="direction"):
        Geometry.create((1.0, 1.0, 1.0), direction=np.zeros((3, 3)))


# ---------------------------------------------------------------------------------- widget, offscreen


@pytest.fixture
def view(qtbot):
    from jcs_viewer.gui.view3d import LungLesionView

    widget = LungLesionView()
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()


def test_offscreen_platform_shows_the_fallback_and_still_builds(view, qtbot):
    from PySide6.QtWidgets import QLabel

    assert not view.available
    label = view.findChild(QLabel, "view3dUnavailable")
    assert label is not None
    assert label.text().startswith("3-D view unavailable: OpenGL could not be initialised (")
    assert "offscreen" in label.text()
    lung, lesion = synthetic_masks()
    with qtbot.waitSignal(view.surfaces_ready, timeout=30_000):
        view.set_study(lung, lesion, SPACING, ORIGIN, np.eye(3))
    assert view.build_seconds is not None and view.build_seconds > 0
    assert view.last_stats["lungs"].points > 0 and view.last_stats["lesions"].points > 0


def test_update_lesions_rebuilds_only_the_lesion_surface(view):
    lung, lesion = synthetic_masks()
    view.set_study(lung, lesion, SPACING, ORIGIN, np.eye(3))
    assert view.wait_for_build(30)
    lung_poly, old_lesion_bounds = view._lung_poly, polydata_bounds(view._lesion_poly)
    edited = np.zeros_like(lesion)
    edited[20:26, 40:50, 60:70] = 1  # the lesion moved to the left lung
    view.update_lesions(edited)
    assert view.wait_for_build(30)
    assert view._lung_poly is lung_poly
    assert set(view.last_stats) == {"lesions"}
    new_bounds = polydata_bounds(view._lesion_poly)
    assert not np.allclose(new_bounds, old_lesion_bounds)
    voxels = mask_bounds_lps(edited, Geometry.create(SPACING, ORIGIN))
    tolerance = 0.25 * np.array(SPACING[::-1])
    assert np.all(new_bounds[0::2] >= voxels[0::2] - tolerance) and np.all(new_bounds[1::2] <= voxels[1::2] + tolerance)


def test_bad_calls_raise_clear_errors(view, tmp_path):
    with pytest.raises(RuntimeError, match="set_study"):
        view.update_lesions(np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="same shape"):
        view.set_study(np.zeros((4, 8, 8), np.uint8), np.zeros((4, 8, 9), np.uint8), SPACING)
    with pytest.raises(ExportError, match="no study"):
        view.export_png(tmp_path / "none.png")
    view.set_study(np.zeros((4, 8, 8), np.uint8), np.zeros((4, 8, 8), np.uint8), SPACING)
    with pytest.raises(ValueError, match="differs"):
        view.update_lesions(np.zeros((4, 8, 9), np.uint8))


def test_disable_switch_names_itself(qtbot, monkeypatch):
    from jcs_viewer.gui.view3d import LungLesionView

    monkeypatch.setenv("JCS_VIEWER_NO_3D", "1")
    widget = LungLesionView()
    qtbot.addWidget(widget)
    assert not widget.available and "JCS_VIEWER_NO_3D" in widget.unavailable_reason


def test_export_png_offscreen_via_egl(view, tmp_path):
    from PySide6.QtGui import QImage

    lung, lesion = synthetic_masks()
    view.set_study(lung, lesion, SPACING, ORIGIN, np.eye(3))
    with pytest.raises(ExportError, match="does not exist"):
        view.export_png(tmp_path / "missing" / "view.png")
    try:
        path = view.export_png(tmp_path / "view.png", size=(320, 240))
    except ExportError as exc:
        if "OpenGL" in str(exc):
            pytest.skip(f"no offscreen OpenGL (EGL) here: {exc}")
        raise
    assert path == tmp_path / "view.png" and path.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["view.png"]  # no temp file left
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert (image.width(), image.height()) == (320, 240)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(240, image.bytesPerLine())[:, :960].reshape(240, 320, 3)
    assert pixels.std() > 5
    red = reddish(pixels)
    assert red.sum() > 50
    # Anterior view, head up: the lesion (right lung, upper part) is on the image's left and upper half.
    rows, cols = np.nonzero(red)
    assert cols.mean() < 160 and rows.mean() < 120


# ---------------------------------------------------------------------------------- real X display

REAL_RENDER_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    sys.path.insert(0, {tests_dir!r})
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from jcs_viewer.gui.view3d import LungLesionView
    from test_gui_3d import ORIGIN, SPACING, synthetic_masks, reddish

    view = LungLesionView()
    out = {{"available": view.available, "reason": view.unavailable_reason}}
    if view.available:
        view.resize(480, 480)
        view.show()
        lung, lesion = synthetic_masks()
        view.set_study(lung, lesion, SPACING, ORIGIN, np.eye(3))
        view.wait_for_build(60)
        for _ in range(10):
            app.processEvents()
            time.sleep(0.02)
        pixels = view.snapshot()
        red = reddish(pixels)
        rows, cols = np.nonzero(red)
        out.update(shape=list(pixels.shape), std=float(pixels.std()), red=int(red.sum()),
                   red_col=float(cols.mean()) if red.any() else -1.0,
                   red_row=float(rows.mean()) if red.any() else -1.0)
        camera = view._renderer.GetActiveCamera()
        camera.Azimuth(90)
        camera.Elevation(30)
        interactor = view._vtk_widget.GetRenderWindow().GetInteractor()
        interactor.SetKeyCode("r")
        interactor.InvokeEvent("CharEvent")  # the "r" key resets to the anterior view
        out.update(projection=list(camera.GetDirectionOfProjection()), view_up=list(camera.GetViewUp()))
        exported = view.export_png({png!r}, size=(200, 200))
        out["exported"] = exported.is_file()
        # An OpenGL error before the first frame swaps in the explanation instead of a black box.
        broken = LungLesionView()
        broken._vtk_widget.GetRenderWindow().InvokeEvent("ErrorEvent", "ERROR: shader failed to compile")
        for _ in range(5):
            app.processEvents()
        out.update(broken_available=broken.available, broken_reason=broken.unavailable_reason)
        broken.shutdown()
    view.shutdown()
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.xvfb
def test_real_render_on_x_display(tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.skip("DISPLAY is unset: VTK's Qt widget needs a real X display; run `xvfb-run -a pytest`")
    script = tmp_path / "render3d.py"
    script.write_text(REAL_RENDER_SCRIPT.format(tests_dir=str(REPO_ROOT / "tests"), png=str(tmp_path / "x.png")))
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    proc = subprocess.run([sys.executable, str(script)], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["available"], f"the 3-D view fell back on X: {result['reason']}"
    height, width, _ = result["shape"]
    assert result["std"] > 5, "the rendered image is blank"
    assert result["red"] > 100, "no lesion colour in the rendered image"
    # Anterior view, head up: the right-lung lesion is left of centre and above the middle.
    assert result["red_col"] < width / 2 and result["red_row"] < height / 2, result
    np.testing.assert_allclose(result["projection"], [0.0, 1.0, 0.0], atol=1e-6)  # looking posterior
    np.testing.assert_allclose(result["view_up"], [0.0, 0.0, 1.0], atol=1e-6)  # head up
    assert result["exported"]
    assert not result["broken_available"] and "shader failed to compile" in result["broken_reason"]


# ---------------------------------------------------------------------------------- benchmark


def test_bench_view3d_prints_its_figures(capsys):
    """``jcs-viewer bench view3d`` builds real meshes of the phantom and prints one JSON object
    (figures only: the timing itself is the benchmark's job, not this test's)."""
    from jcs_viewer.cli import main

    assert main(["bench", "view3d", "--slices", "12", "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["slices"] == 12 and report["size"] == 512 and report["repeats"] == 1
    assert report["lung_triangles"] > 1000 and report["lesion_triangles"] > 0
    for key in ("mesh_build_median_s", "view_set_study_median_s", "lesion_rebuild_after_stroke_median_s"):
        assert report[key] > 0, key
    assert report["offscreen_render_800_median_s"] is None or report["offscreen_render_800_median_s"] > 0
