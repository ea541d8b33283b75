"""Multiplanar layouts, the linked crosshair and the 3-D tab of the main window (pytest-qt, offscreen).

The real-render check of the 3-D tab runs the window in a subprocess on the X display from the
environment (CI: ``xvfb-run -a pytest``) and is skipped without one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402

from jcs_viewer.settings import SettingsStore  # noqa: E402
from PySide6.QtGui import QMouseEvent, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.slice_view import LUNG_COLORS  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume  # noqa: E402
from jcs_viewer.io.volume import Volume  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    volume, lung, lesion = synthetic_volume(n_slices=40, size=128, seed=3)
    return volume, synthetic_result(volume, lung, lesion, cam_size=16)


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    config = tmp_path / "config"
    monkeypatch.setenv("JCS_VIEWER_CONFIG", str(config))
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JCS_VIEWER_RESTORE_SESSION", "never")

    def make(volume=None, result=None, default_layout=None):
        settings = SettingsStore(config / "settings.ini")  # one settings source: the window reads only this
        settings.update(auto_analyze=False, default_layout=default_layout or "axial")
        window = MainWindow(settings=settings)
        qtbot.addWidget(window)
        window.resize(1400, 860)
        window.show()
        if volume is not None:
            window.state.set_volume(volume)
        if result is not None:
            window.state.set_result(result)
        qtbot.waitExposed(window)
        return window
    return make


def _send_mouse(graphics_view, scene_pos, kind=QEvent.Type.MouseMove, modifiers=Qt.KeyboardModifier.ShiftModifier):
    """A real mouse event with modifiers on the view's viewport at a scene position."""
    viewport = graphics_view.viewport()
    local = QPointF(graphics_view.mapFromScene(scene_pos))
    button = Qt.MouseButton.LeftButton if kind == QEvent.Type.MouseButtonPress else Qt.MouseButton.NoButton
    event = QMouseEvent(kind, local, QPointF(viewport.mapToGlobal(local.toPoint())), button, button, modifiers)
    QApplication.sendEvent(viewport, event)
    if kind == QEvent.Type.MouseButtonPress:  # release, so the next test starts clean
        release = QMouseEvent(QEvent.Type.MouseButtonRelease, local, QPointF(viewport.mapToGlobal(local.toPoint())),
                              button, Qt.MouseButton.NoButton, modifiers)
        QApplication.sendEvent(viewport, release)


def _wheel(graphics_view, steps=1):
    viewport = graphics_view.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    event = QWheelEvent(centre, QPointF(viewport.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)


def _colour_pixels(rgba: np.ndarray, colour) -> np.ndarray:
    return (rgba[..., :3] == np.asarray(colour, np.uint8)).all(axis=-1) & (rgba[..., 3] > 0)


# ---------------------------------------------------------------------------------------------- layouts


def test_layout_switching_by_toolbar_and_menu(make_window, study, qtbot):
    volume, result = study
    window = make_window(volume, result)
    views = window.views
    assert views.layout_mode == "axial" and views.layout_actions["axial"].isChecked()
    assert views.panel.coronal is None  # built only when first needed
    views.toggle_action.trigger()  # the toolbar toggle
    assert views.layout_mode == "1x3" and views.layout_actions["1x3"].isChecked()
    coronal, sagittal = views.panel.coronal, views.panel.sagittal
    qtbot.waitUntil(lambda: coronal.isVisible() and sagittal.isVisible(), timeout=3000)
    assert window.slice_view.isVisible() and views.panel.axial_crosshair.v_line.isVisible()
    widths = [w.width() for w in (window.slice_view, coronal, sagittal)]
    assert min(widths) > 0.25 * sum(widths), widths  # three similar columns
    views.layout_actions["axial"].trigger()  # the View menu
    assert views.layout_mode == "axial" and not views.toggle_action.isChecked()
    assert not coronal.isVisible() and not sagittal.isVisible() and window.slice_view.isVisible()
    with pytest.raises(ValueError, match="unknown layout"):
        views.set_layout("2x2")


def test_default_layout_comes_from_settings(make_window, study):
    volume, result = study
    window = make_window(volume, result, default_layout="1x3")
    assert window.views.layout_mode == "1x3" and window.views.toggle_action.isChecked()
    assert window.views.panel.coronal.isVisible()


# ---------------------------------------------------------------------------------------------- crosshair


def test_shift_move_in_coronal_moves_axial_slice_strip_and_other_views(make_window, study, qtbot):
    volume, result = study
    window = make_window(volume, result, default_layout="1x3")
    state, panel = window.state, window.views.panel
    coronal, sagittal = panel.coronal, panel.sagittal
    qtbot.waitUntil(lambda: coronal.isVisible(), timeout=3000)
    z0, y0, x0 = state.point
    assert (z0, y0, x0) == (20, 64, 64)
    dz, dy, dx = volume.spacing

    # Plain mouse movement only hovers.
    _send_mouse(coronal, coronal.voxel_to_scene(30, 10), modifiers=Qt.KeyboardModifier.NoModifier)
    assert state.point == (z0, y0, x0)
    # Shift+move in the coronal view: z and x come from the mouse, y stays the coronal plane.
    _send_mouse(coronal, coronal.voxel_to_scene(30, 10))
    assert state.point == (10, y0, 30) and state.z == 10
    assert window.score_strip.marker.value() == 11  # the strip follows the axial position (1-based)
    assert window.slice_label.text().startswith("Slice 11/40")
    assert sagittal.index == 30  # the sagittal plane moved to x
    assert coronal.v_line.value() == pytest.approx(30.5 * dx)
    assert coronal.h_line.value() == pytest.approx(10.5 * dz)
    assert sagittal.h_line.value() == pytest.approx(10.5 * dz)
    axial = panel.axial_crosshair
    assert axial.v_line.value() == pytest.approx(30.5 * dx) and axial.h_line.value() == pytest.approx((y0 + 0.5) * dy)

    # Shift+click in the sagittal view jumps the axial slice (and moves y).
    _send_mouse(sagittal, sagittal.voxel_to_scene(50, 25), kind=QEvent.Type.MouseButtonPress)
    assert state.point == (25, 50, 30) and coronal.index == 50
    assert window.slice_view.image.image is not None
    np.testing.assert_array_equal(window.slice_view.image.image, volume.array[25])

    # Shift+move in the axial view moves y and x and keeps the slice.
    _send_mouse(window.slice_view, window.slice_view.voxel_to_scene(70, 20))
    assert state.point == (25, 20, 70) and coronal.index == 20 and sagittal.index == 70

    # The wheel steps the coronal plane through y and the sagittal plane through x.
    _wheel(coronal, 1)
    assert state.point == (25, 21, 70) and coronal.index == 21
    _wheel(sagittal, -1)
    assert state.point == (25, 21, 69) and sagittal.index == 69
    # The axial wheel still steps slices, and the planes' crosshair follows.
    _wheel(window.slice_view, 1)
    assert state.z == 26 and coronal.h_line.value() == pytest.approx(26.5 * dz)


# ---------------------------------------------------------------------------------------------- geometry


def test_aspect_ratio_follows_the_voxel_spacing(make_window, study, qtbot):
    base, _ = study
    volume = Volume(array=base.array, spacing=(5.0, 0.7, 0.7))  # thick slices: the planes are tall
    window = make_window(volume, default_layout="1x3")
    coronal, sagittal = window.views.panel.coronal, window.views.panel.sagittal
    qtbot.waitUntil(lambda: coronal.isVisible(), timeout=3000)
    nz, ny, nx = volume.array.shape
    for view, columns in ((coronal, nx), (sagittal, ny)):
        rect = view.image.mapRectToScene(view.image.boundingRect())  # on-screen pixels of the plane
        expected = (nz * 5.0) / (columns * 0.7)
        assert rect.height() / rect.width() == pytest.approx(expected, rel=0.02)
        assert view.image.image.shape == (nz, columns)


def test_orientation_superior_up_and_patient_right_on_the_left(make_window, qtbot):
    nz, n = 32, 64
    array = np.full((nz, n, n), -1000, np.int16)
    array[24:, :, : n // 4] = 1000  # bright: superior (high z) and patient right (low x, LPS)
    array[24:, : n // 4, :] = 1000  # and anterior (low y)
    window = make_window(Volume(array=array, spacing=(2.0, 1.0, 1.0)), default_layout="1x3")
    state, panel = window.state, window.views.panel
    qtbot.waitUntil(lambda: panel.coronal.isVisible(), timeout=3000)
    state.set_point(16, n // 2, n // 2)  # coronal: only low x bright; sagittal: only low y
    for view, bright_col, dark_col in ((panel.coronal, 4, 50), (panel.sagittal, 4, 50)):
        image = view.viewport().grab().toImage()

        def grey(col, z, view=view, image=image):
            colour = image.pixelColor(view.mapFromScene(view.voxel_to_scene(col, z)))
            return (colour.red() + colour.green() + colour.blue()) / 3

        top_left, top_right, bottom_left = grey(bright_col, 28), grey(dark_col, 28), grey(bright_col, 4)
        assert top_left > 200 and top_right < 100 and bottom_left < 100, (view.plane, top_left, top_right, bottom_left)
        # The bright (superior) rows are drawn above the dark (inferior) ones, the low columns left.
        assert view.mapFromScene(view.voxel_to_scene(4, 28)).y() < view.mapFromScene(view.voxel_to_scene(4, 4)).y()
        assert view.mapFromScene(view.voxel_to_scene(4, 28)).x() < view.mapFromScene(view.voxel_to_scene(50, 28)).x()
    assert panel.coronal.letters.text() == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert panel.sagittal.letters.text() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert panel.axial_crosshair.letters.text() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    # A study stored right-to-left (x axis pointing to the patient's right) gets its letters swapped.
    flipped = Volume(array=array, spacing=(2.0, 1.0, 1.0), direction=np.diag([-1.0, 1.0, 1.0]))
    state.set_volume(flipped)
    assert panel.coronal.letters.text()["left"] == "L" and panel.axial_crosshair.letters.text()["right"] == "R"


# ---------------------------------------------------------------------------------------------- overlays


def test_overlays_in_every_view(make_window, study, qtbot):
    volume, result = study
    window = make_window(volume, result, default_layout="1x3")
    state, panel = window.state, window.views.panel
    coronal, sagittal = panel.coronal, panel.sagittal
    qtbot.waitUntil(lambda: coronal.isVisible(), timeout=3000)
    lesion = result.lesion_mask
    z = int(np.argmax(lesion.reshape(lesion.shape[0], -1).sum(axis=1)))
    ys, xs = np.nonzero(lesion[z])
    y, x = int(np.median(ys)), int(xs[np.argmin(np.abs(ys - np.median(ys)))])
    assert lesion[z, y, x] and result.slice_positive[z]
    state.set_point(z, y, x)
    colour = state.layers.lesion_color
    axial_rgba = window.slice_view.mask_item.image
    cor_rgba, sag_rgba = coronal.mask_item.image, sagittal.mask_item.image
    assert cor_rgba.shape[:2] == (volume.n_slices, volume.array.shape[2])
    assert _colour_pixels(axial_rgba, colour)[y, x]
    assert _colour_pixels(cor_rgba, colour)[z, x] and _colour_pixels(sag_rgba, colour)[z, y]
    # The planes show exactly the lesion voxels of their row / column, and the lung outlines.
    np.testing.assert_array_equal(_colour_pixels(cor_rgba, colour), lesion[:, y, :] > 0)
    assert _colour_pixels(cor_rgba, LUNG_COLORS[1]).any() and _colour_pixels(sag_rgba, LUNG_COLORS[1]).any()
    assert _colour_pixels(cor_rgba, LUNG_COLORS[2]).any()
    # Activation map: the CAM row of every flagged slice, blank on unflagged slices (layer default), and only
    # within (a few mm around) the plane's lungs: per-slice maps side by side banded across the chest (item 7).
    for view, lung_plane in ((coronal, result.lung_mask[:, y, :]), (sagittal, result.lung_mask[:, :, x])):
        alpha = view.cam_item.image[..., 3]
        assert alpha.shape == lung_plane.shape and alpha[z].max() > 0
        assert not alpha[~result.slice_positive].any()
        far = np.ones_like(lung_plane, dtype=bool)
        for row, lung_row in zip(far, lung_plane > 0):
            cols = np.flatnonzero(lung_row)
            if cols.size:
                row[max(cols.min() - 6, 0):cols.max() + 7] = False
        assert alpha[(lung_plane > 0) & result.slice_positive[:, None]].any() and not alpha[far].any()
        assert view.cam_item.isVisible() and view.mask_item.isVisible()
    state.set_layers(cam_flagged_only=False)
    assert coronal.cam_item.image[..., 3][~result.slice_positive].any() or not result.cams[
        ~result.slice_positive].any()
    # Outline mode and the overlay switch (key s) apply to every view.
    state.set_layers(lesion_outline=True)
    assert _colour_pixels(coronal.mask_item.image, colour).sum() < (lesion[:, y, :] > 0).sum()
    qtbot.keyClick(window.slice_view, Qt.Key.Key_S)
    assert not coronal.cam_item.isVisible() and not sagittal.mask_item.isVisible()
    assert not window.slice_view.mask_item.isVisible()


def test_cam_in_lungs_by_hand():
    from jcs_viewer.gui.reformat import cam_in_lungs

    values = np.full((6, 4), 200, np.uint8)  # 6 slices, a CAM row of 4 values
    values[3] = 0  # one slice whose map is empty between two bright ones
    lung = np.zeros((6, 40), np.uint8)
    lung[:, 10:20] = 1
    out = cam_in_lungs(values, lung, (5.0, 1.0), margin_mm=2.0, z_sigma_mm=5.0)
    assert out.shape == (6, 40) and out.dtype == np.uint8
    assert not out[:, :8].any() and not out[:, 22:].any() and out[:, 8:22].all()  # lungs grown by 2 mm
    assert 0 < out[3, 15] < out[1, 15] <= 200  # blended along z: no hard band
    sharp = cam_in_lungs(values, lung, (5.0, 1.0), margin_mm=0.0, z_sigma_mm=0.0)
    assert sharp[3, 15] == 0 and sharp[0, 15] == 200 and not sharp[:, 20:].any()


def test_brush_strokes_show_in_the_planes_at_once(make_window, qtbot):
    volume, lung, lesion = synthetic_volume(n_slices=40, size=128, seed=3)
    result = synthetic_result(volume, lung, lesion, cam_size=16)  # the session adopts (and edits) it
    window = make_window(volume, default_layout="1x3")
    state, coronal, sagittal = window.state, window.views.panel.coronal, window.views.panel.sagittal
    qtbot.waitUntil(lambda: coronal.isVisible(), timeout=3000)
    window.editing.adopt_result(volume, result)  # what a finished analysis does: an editing session
    z, y = 5, 30  # a slice without lesions
    assert not result.lesion_mask[z].any()
    state.set_point(z, y, 64)
    controller = window.editing.controller
    controller.set_tool("brush")
    controller.begin_stroke(20.0, float(y))
    controller.continue_stroke(60.0, float(y))  # the planes redraw while the stroke is open
    colour = state.layers.lesion_color
    painted = _colour_pixels(coronal.mask_item.image, colour)
    assert painted[z, 22:58].all() and not painted[z, 70:].any()
    controller.end_stroke()
    edited = state.result.lesion_mask  # the session's live label layer
    assert edited is window.editing.session.labels.data and edited[z, y, 20:60].all()
    assert not window.editing.session.ai_result.lesion_mask[z].any()  # the AI layer stays separate
    np.testing.assert_array_equal(_colour_pixels(coronal.mask_item.image, colour), edited[:, y, :] > 0)
    state.set_point(z, y, 40)
    assert _colour_pixels(sagittal.mask_item.image, colour)[z, y]
    window.editing.controller.session.labels.undo()  # undo redraws too
    assert not _colour_pixels(sagittal.mask_item.image, colour)[z].any()


# ---------------------------------------------------------------------------------------------- memory


def test_reformats_are_views_of_the_one_volume(make_window, qtbot):
    volume, lung, lesion = synthetic_volume(n_slices=80, size=256, seed=1)
    result = synthetic_result(volume, lung, lesion, cam_size=16)
    window = make_window(volume, result)
    qtbot.wait(50)
    tracemalloc.start()
    try:
        window.views.set_layout("1x3")
        QApplication.processEvents()
        for step in range(12):
            window.state.set_point(5 + 3 * step, 40 + 12 * step, 200 - 10 * step)
            QApplication.processEvents()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    coronal, sagittal = window.views.panel.coronal, window.views.panel.sagittal
    assert np.shares_memory(coronal.image.image, volume.array)
    assert np.shares_memory(sagittal.image.image, volume.array)
    # Planes, per-plane overlays and the axial slice only: far below one volume (10.5 MB here).
    assert peak < volume.array.nbytes / 4, f"peak {peak / 1e6:.2f} MB vs volume {volume.array.nbytes / 1e6:.2f} MB"


# ---------------------------------------------------------------------------------------------- 3-D tab


def reddish(pixels: np.ndarray) -> np.ndarray:
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 120) & (r - b > 70) & (r - g > 30)


def test_3d_tab_is_built_lazily_follows_edits_and_exports(make_window, qtbot, tmp_path):
    from PySide6.QtGui import QImage

    from jcs_viewer.errors import ExportError

    volume, lung, lesion = synthetic_volume(n_slices=32, size=96, seed=2)
    window = make_window(volume)
    views = window.views
    assert [views.tabs.tabText(i) for i in range(views.tabs.count())] == ["Slices", "3-D"]
    views.show_3d()
    assert views.three_d.view is None  # nothing to show yet: VTK is not even imported for it
    assert views.export_3d(tmp_path / "none.png") is None and "analyse the study first" in window.last_error
    result = synthetic_result(volume, lung, lesion, cam_size=8)
    window.editing.adopt_result(volume, result)  # as a finished analysis does: an editing session
    view = views.three_d.view
    assert view is not None  # built because the tab is showing
    assert views.three_d.wait_until_current(60)
    assert view.last_stats["lesions"].points > 0 and views.three_d.build_seconds is not None
    # An edit rebuilds only the lesion surface (debounced).
    labels = window.editing.controller.session.labels
    with labels.stroke("brush"):
        labels.paint_disk(10, (45, 70), 6.0, 1)  # a new lesion in the left lung
    qtbot.waitUntil(lambda: set(view.last_stats) == {"lesions"}, timeout=10_000)
    assert view.last_stats["lesions"].points > 0
    try:
        path = views.three_d.export_png(tmp_path / "lungs_3d.png", size=(240, 240))
    except ExportError as exc:
        if "OpenGL" in str(exc):
            pytest.skip(f"no offscreen OpenGL (EGL) here: {exc}")
        raise
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(240, image.bytesPerLine())[:, :720].reshape(240, 240, 3)
    assert pixels.std() > 5 and reddish(pixels).sum() > 30


WINDOW_3D_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from jcs_viewer.settings import SettingsStore
    from jcs_viewer.gui.app import ensure_app
    app = ensure_app()
    from jcs_viewer.gui.main_window import MainWindow
    from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume

    window = MainWindow(settings=SettingsStore({ini!r}))
    window.resize(1200, 800)
    window.show()
    volume, lung, lesion = synthetic_volume(n_slices=48, size=128, seed=3)
    window.state.set_volume(volume)
    window.state.set_result(synthetic_result(volume, lung, lesion, cam_size=8))
    tab = window.views.show_3d()
    for _ in range(10):
        app.processEvents()
    out = {{"available": tab.view.available, "reason": tab.view.unavailable_reason}}
    if tab.view.available:
        tab.wait_until_current(60)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        pixels = tab.view.snapshot()
        grab = window.views.grab_window().toImage()
        grab.save({png!r})
        out.update(std=float(pixels.std()), shape=list(pixels.shape), build=tab.build_seconds)
        red = pixels[..., 0].astype(int)
        out["red"] = int(((red > 120) & (red - pixels[..., 2] > 70) & (red - pixels[..., 1] > 30)).sum())
    window.close()
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.xvfb
def test_3d_tab_says_why_it_has_nothing_to_show(make_window, qtbot, tmp_path):
    from jcs_viewer.errors import ExportError

    volume, lung, lesion = synthetic_volume(n_slices=24, size=96, seed=2)
    window = make_window()
    views = window.views
    views.show_3d()
    window.state.set_volume(volume)  # a study opened on the 3-D tab: the Slices page stays behind its tab
    assert not window.image_split.isVisible() and views.three_d.isVisible()
    empty = synthetic_result(volume, np.zeros_like(lung), np.zeros_like(lesion), cam_size=8)
    window.state.set_result(empty)
    assert views.three_d.message.isVisible() and "found no lungs and no lesions" in views.three_d.message.text()
    assert views.three_d.view is None  # no empty black scene is built
    with pytest.raises(ExportError, match="nothing to show in 3-D"):
        views.three_d.export_png(tmp_path / "x.png")
    one = dataclasses.replace(volume, array=volume.array[:1].copy())
    window.state.set_volume(one)
    window.state.set_result(synthetic_result(one, lung[:1], lesion[:1], cam_size=8))
    assert "A study of 1 slice has no 3-D shape" in views.three_d.message.text()


def test_window_3d_tab_renders_on_x_display(tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.skip("DISPLAY is unset: VTK's Qt widget needs a real X display; run `xvfb-run -a pytest`")
    script = tmp_path / "window3d.py"
    png = tmp_path / "window3d.png"
    script.write_text(WINDOW_3D_SCRIPT.format(ini=str(tmp_path / "w.ini"), png=str(png)))
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", JCS_VIEWER_CONFIG=str(tmp_path / "config"),
               JCS_VIEWER_DATA=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, str(script)], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["available"], f"the window's 3-D view fell back on X: {result['reason']}"
    assert result["std"] > 5, "the 3-D tab rendered a blank image"
    assert result["red"] > 100, "no lesion colour in the 3-D tab"
    assert png.is_file() and result["build"] is not None
