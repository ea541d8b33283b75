"""Lesion editing in the real main window (pytest-qt, offscreen): tools, shortcuts, undo/redo order
and depth, live numbers, the re-run guard, autosave and restore."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402

from jcs_viewer.settings import SettingsStore  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume  # noqa: E402
from jcs_viewer.pipeline.quantify import quantify  # noqa: E402
from jcs_viewer.session.store import load_session, session_path  # noqa: E402
from jcs_viewer.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def study():
    volume, lung, lesion = synthetic_volume(n_slices=40, size=128, seed=3)
    return volume, lung, lesion


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("JCS_VIEWER_CONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("JCS_VIEWER_RESTORE_SESSION", raising=False)
    monkeypatch.delenv("JCS_VIEWER_EDIT_SCRIPT", raising=False)
    Settings(undo_depth=4).save()
    return tmp_path


@pytest.fixture
def open_window(qtbot, env, study):
    volume, lung, lesion = study
    results = {"lesion": lesion}

    def analyze(vol, options=None, progress=None, cancel=None, models=None):
        return synthetic_result(vol, lung, results["lesion"], cam_size=16)

    def make(restore: str = "ask") -> MainWindow:
        settings = SettingsStore(env / "config" / "settings.ini")  # holds undo_depth 4 (the env fixture)
        settings.update(auto_analyze=True, session_restore=restore)
        window = MainWindow(settings=settings, analyze=analyze, load_study=lambda path, series_uid=None: volume)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        window.open_path(env / "study.nii.gz")
        qtbot.waitUntil(lambda: window.editing.session is not None and not window.busy, timeout=20000)
        window.state.set_slice(20)
        return window

    make.results = results
    return make


def view_point(window, x: float, y: float) -> QPoint:
    """Viewport pixel of voxel column x, row y (centre) in the axial view."""
    scene = window.slice_view.voxel_to_scene(x, y)
    return window.slice_view.mapFromScene(scene)


def drag(qtbot, window, points, button=Qt.MouseButton.LeftButton, mods=Qt.KeyboardModifier.NoModifier):
    viewport = window.slice_view.viewport()
    pts = [view_point(window, x, y) for x, y in points]
    # pyqtgraph drops moves sooner than 1/mouseRateLimit s after the last one it took: space them as a hand does.
    gap_ms = int(1500 / max(1.0, float(pg.getConfigOption("mouseRateLimit"))))
    QTest.mousePress(viewport, button, mods, pts[0])
    for p in pts[1:]:  # moves carry the held button and modifiers, as a real mouse's do
        qtbot.wait(gap_ms)
        move = QMouseEvent(QEvent.Type.MouseMove, QPointF(p), QPointF(viewport.mapToGlobal(p)),
                           Qt.MouseButton.NoButton, button, mods)
        QApplication.sendEvent(viewport, move)
    QTest.mouseRelease(viewport, button, mods, pts[-1])


def key(qtbot, window, k, mods=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(window.slice_view, k, mods)


def test_brush_drag_paints_a_gapless_stroke_and_numbers_follow(qtbot, open_window):
    window = open_window()
    session, z = window.editing.session, 20
    key(qtbot, window, Qt.Key.Key_B)
    assert window.editing.controller.tool == "brush" and window.editing.brush_action.isChecked()
    window.editing.controller.set_radius(2.0)
    before_ml = session.quant.lesion_volume_ml["total"]
    before_summary = window.summary_panel.text()
    # A fast drag: only the two end points and one in between reach the view.
    drag(qtbot, window, [(20, 100), (60, 100), (100, 100)])
    painted = session.labels.data[z, 100, 20:101]
    assert painted.all(), "interpolated dabs leave no gap along a fast drag"
    assert session.labels.undo_labels()[-1] == "brush" and len(session.labels.undo_labels()) == 1
    # The stroke is as wide as the brush's diameter in mm, give or take a pixel.
    rows = np.flatnonzero(session.labels.data[z, :, 60] & ~window.editing.session.ai_result.lesion_mask[z, :, 60])
    assert abs(len(rows) * volume_spacing(window)[1] - 4.0) <= volume_spacing(window)[1]
    # Live: quantification, summary, strip area, overlay.
    full = quantify(window.state.volume, session.ai_result.lung_mask, session.labels.data)
    assert session.quant.lesion_volume_ml["total"] == pytest.approx(full.lesion_volume_ml["total"])
    assert session.quant.lesion_volume_ml["total"] > before_ml
    assert window.summary_panel.text() != before_summary
    area = window.score_strip.area_curve.getData()[1]
    assert area is not None and area[z] > 0
    assert window.slice_view.mask_item.image[100, 60, 3] > 0
    assert window.editing.undo_action.text() == "Undo brush"


def volume_spacing(window):
    return window.state.volume.spacing


def test_ctrl_erases_e_key_eraser_and_middle_drag_pans(qtbot, open_window):
    window = open_window()
    session, c = window.editing.session, window.editing.controller
    z = 20
    key(qtbot, window, Qt.Key.Key_B)
    c.set_radius(3.0)
    drag(qtbot, window, [(30, 30), (60, 30)])
    assert session.labels.data[z, 30, 45]
    drag(qtbot, window, [(40, 30), (50, 30)], mods=Qt.KeyboardModifier.ControlModifier)
    assert not session.labels.data[z, 30, 45] and session.labels.data[z, 30, 32]
    assert session.labels.undo_labels()[-1] == "eraser"
    key(qtbot, window, Qt.Key.Key_E)
    assert c.tool == "eraser"
    drag(qtbot, window, [(30, 30), (34, 30)])
    assert not session.labels.data[z, 30, 32]
    # Middle-drag pans while a tool is active (labels unchanged); with no tool, left-drag is the reading-room
    # scheme's window/level and paints nothing.
    labels = session.labels.data.copy()
    before = window.slice_view.view.viewRange()
    drag(qtbot, window, [(64, 64), (80, 64), (96, 64)], button=Qt.MouseButton.MiddleButton)
    after = window.slice_view.view.viewRange()
    assert after[0] != before[0]
    np.testing.assert_array_equal(session.labels.data, labels)
    c.set_tool("none")
    level_window = tuple(window.state.window)
    drag(qtbot, window, [(64, 64), (80, 80), (96, 96)])
    assert tuple(window.state.window) != level_window and window.slice_view.view.viewRange() == after
    np.testing.assert_array_equal(session.labels.data, labels)


def test_brush_size_keys_wheel_and_outline(qtbot, open_window):
    window = open_window()
    c = window.editing.controller
    key(qtbot, window, Qt.Key.Key_B)
    c.set_radius(5.0)
    key(qtbot, window, Qt.Key.Key_BracketRight)
    assert c.radius_mm == pytest.approx(6.0)
    key(qtbot, window, Qt.Key.Key_BracketLeft)
    key(qtbot, window, Qt.Key.Key_BracketLeft)
    assert c.radius_mm == pytest.approx(5.0 / 1.2)
    assert window.editing.panel.radius.value() == pytest.approx(round(5.0 / 1.2, 1))
    viewport = window.slice_view.viewport()
    pos = view_point(window, 64, 64)
    QTest.mouseMove(viewport, pos)
    qtbot.waitUntil(lambda: c.outline.isVisible(), timeout=2000)
    r_before = c.radius_mm
    from PySide6.QtGui import QWheelEvent

    event = QWheelEvent(QPointF(pos), QPointF(viewport.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ShiftModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    z = window.state.z
    QApplication.sendEvent(viewport, event)
    assert c.radius_mm == pytest.approx(r_before * 1.2) and window.state.z == z  # size, not slice
    # The outline has the brush's true size: radius_mm / pixel spacing pixels, in mm view units.
    rect = c.outline.rect()
    sy, sx = window.state.volume.spacing[1:]
    assert rect.width() / sx == pytest.approx(2 * c.radius_mm / sx)
    assert rect.height() / sy == pytest.approx(2 * c.radius_mm / sy)
    center = rect.center()
    assert center.x() / sx - 0.5 == pytest.approx(64, abs=1.0)


def test_hu_range_sphere_and_slice_tools(qtbot, open_window):
    window = open_window()
    session, c, z = window.editing.session, window.editing.controller, 20
    volume = window.state.volume
    key(qtbot, window, Qt.Key.Key_B)
    c.set_radius(8.0)
    # HU limit: painting over body (+40 HU) and lung (-850 HU) with -900..-700 only marks lung voxels.
    c.set_hu_limit(True, -900, -700)
    c.stroke_polyline([(10, 64), (40, 64)])
    new = session.labels.data[z] & ~session.ai_result.lesion_mask[z]
    assert new.any() and (volume.array[z][new > 0] <= -700).all()
    c.set_hu_limit(False)
    # 3-D brush: a 12 mm ball on 8 mm slices reaches z-1..z+1 (about 9 mm there), not z+-2.
    c.set_sphere(True)
    c.set_radius(12.0)
    c.stroke_polyline([(64, 20)])
    assert session.labels.undo_labels()[-1] == "3-D brush"
    assert all(session.labels.data[zz, 20, 64] for zz in (z - 1, z, z + 1))
    assert not any(session.labels.data[zz, 20, 64] for zz in (z - 2, z + 2))
    c.set_sphere(False)
    # Fill holes, remove islands, clear slice, reset slice, accept AI: each is one undo step.
    session.labels.paint_mask(z, np.zeros_like(session.labels.data[z], bool), 1)  # no-op
    with session.labels.stroke("ring"):
        yy, xx = np.mgrid[0:128, 0:128]
        ring = (np.hypot(yy - 100, xx - 100) <= 8) & (np.hypot(yy - 100, xx - 100) > 4)
        session.labels.paint_mask(z, ring, 1)
        session.labels.paint_mask(z, (yy == 5) & (xx == 120), 1)  # a one-pixel island
    panel = window.editing.panel
    panel.fill_button.click()
    assert session.labels.data[z, 100, 100] == 1
    panel.island_area.setValue(20.0)  # pixels are 2.8 x 2.8 mm: the island is 7.8 mm², the ring ~1200
    panel.islands_button.click()
    assert session.labels.data[z, 5, 120] == 0 and session.labels.data[z, 100, 100] == 1
    panel.clear_button.click()
    assert not session.labels.data[z].any()
    panel.reset_button.click()
    np.testing.assert_array_equal(session.labels.data[z], session.ai_result.lesion_mask[z])
    panel.accept_button.click()
    np.testing.assert_array_equal(session.labels.data, session.ai_result.lesion_mask)
    assert session.labels.undo_labels()[-4:] == ["remove islands", "clear slice", "reset slice to AI",
                                                 "accept AI result"]
    assert window.editing.undo_action.text() == "Undo accept AI result"
    # The AI outline (yellow) can be shown for comparison.
    assert not c.ai_item.isVisible()
    panel.ai_box.setChecked(True)
    assert c.ai_item.isVisible() and c.ai_item.image[..., 3].any() == session.ai_result.lesion_mask[z].any()


def test_typing_notes_or_numbers_is_not_a_hotkey(qtbot, open_window):
    window = open_window()
    notes, c = window.editing.panel.notes, window.editing.controller
    notes.setFocus()
    qtbot.waitUntil(notes.hasFocus, timeout=2000)
    z = window.state.z
    qtbot.keyClicks(notes, "bens 2x")
    assert notes.toPlainText() == "bens 2x"
    assert c.tool == "none" and window.state.z == z and window.state.preset == "lung"
    assert window.state.review.decisions() == {}
    qtbot.waitUntil(lambda: window.editing.session.notes == "bens 2x", timeout=2000)


def test_undo_redo_shortcuts_order_and_depth(qtbot, open_window):
    window = open_window()  # settings: undo_depth 4
    session, c = window.editing.session, window.editing.controller
    key(qtbot, window, Qt.Key.Key_B)
    c.set_radius(2.0)
    states = [session.labels.data.copy()]
    for i in range(6):
        c.stroke_polyline([(10 + 15 * i, 10), (10 + 15 * i, 30)])
        states.append(session.labels.data.copy())
    assert len(session.labels.undo_labels()) == 4  # depth cap from the settings
    for expected in reversed(states[2:-1]):
        key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        np.testing.assert_array_equal(session.labels.data, expected)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # nothing left: no change
    np.testing.assert_array_equal(session.labels.data, states[2])
    assert window.editing.undo_action.text() == "Undo" and not window.editing.undo_action.isEnabled()
    assert window.editing.redo_action.text() == "Redo brush"
    key(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(session.labels.data, states[3])
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(session.labels.data, states[4])
    # Undoing a stroke made on another slice shows that slice.
    window.state.set_slice(30)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.state.z == 20 and "Undid brush" in window.last_status
    key(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    c.stroke_polyline([(120, 120)])  # a new stroke drops the redo steps
    assert not session.labels.can_redo and window.editing.redo_action.text() == "Redo"
    full = quantify(window.state.volume, session.ai_result.lung_mask, session.labels.data)
    assert session.quant.lesion_volume_ml == full.lesion_volume_ml


def test_rerun_guard_cancel_keep_replace(qtbot, open_window):
    window = open_window()
    session, c, z = window.editing.session, window.editing.controller, 20
    c.set_tool("brush")
    c.stroke_polyline([(20, 20), (40, 20)])
    edited = session.labels.data.copy()
    lesion = open_window.results["lesion"]
    shifted = np.roll(lesion, 3, axis=2)
    open_window.results["lesion"] = shifted
    asked = []

    def rerun(choice):
        window.editing.ask_rerun = lambda: asked.append(choice) or choice
        old = window.state.result
        window.start_analysis()
        qtbot.waitUntil(lambda: not window.busy, timeout=20000)
        return old

    old = rerun("cancel")
    assert asked == ["cancel"] and window.state.result is old
    np.testing.assert_array_equal(session.labels.data, edited)
    rerun("keep")
    assert window.editing.session is session
    np.testing.assert_array_equal(session.ai_result.lesion_mask, shifted)
    np.testing.assert_array_equal(session.labels.data[z], edited[z])  # my slice kept
    np.testing.assert_array_equal(session.labels.data[z + 5], shifted[z + 5])  # others: new AI
    assert window.editing.undo_action.text() == "Undo re-run analysis (edits kept)"
    rerun("replace")
    np.testing.assert_array_equal(session.labels.data, shifted)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(session.labels.data[z], edited[z])
    assert window.state.result.lesion_mask is session.labels.data
    open_window.results["lesion"] = lesion


def test_autosave_within_two_seconds_and_restore_dialog(qtbot, open_window, env):
    window = open_window()
    session, c = window.editing.session, window.editing.controller
    path = session_path(window.state.volume, env / "data" / "sessions")
    assert session.autosaver.path == path
    c.set_tool("brush")
    for i in range(3):
        c.stroke_polyline([(20 + 20 * i, 50), (30 + 20 * i, 60)])
    window.state.review.confirm(window.state.review.flagged[0])
    window.editing.panel.notes.setPlainText("RLL GGO")
    t0 = time.monotonic()
    qtbot.waitUntil(lambda: path.is_file() and load_session(path).notes == "RLL GGO", timeout=2500)
    assert time.monotonic() - t0 < 2.5
    expected = session.labels.data.copy()
    window.close()

    again = open_window(restore="ask")
    box = again.editing.restore_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert path.with_name(path.stem + ".previous.jcssession").is_file()  # safety copy
    assert not again.editing.session.has_edits  # nothing restored until the reader says so
    restore = next(b for b in box.buttons() if b.text() == "Restore")
    restore.click()
    np.testing.assert_array_equal(again.editing.session.labels.data, expected)
    assert again.state.review.decision(again.state.review.flagged[0]) is not None
    assert again.editing.panel.notes.toPlainText() == "RLL GGO"
    np.testing.assert_array_equal(again.slice_view.mask_item.image[..., 3][expected[again.state.z] > 0] > 0, True)


def test_steady_strokes_reach_the_disk_within_five_seconds_snapshot_on_the_gui_thread(qtbot, open_window, env):
    """Strokes 0.4 s apart (under the 1 s debounce) for 6 s: the session file still appears within 5 s."""
    import threading

    window = open_window()
    session, c = window.editing.session, window.editing.controller
    path = session.autosaver.path
    path.unlink(missing_ok=True)
    taken_on = []
    snapshot = session.autosaver._snapshot
    session.autosaver._snapshot = lambda: (taken_on.append(threading.get_ident()), snapshot())[1]
    c.set_tool("brush")
    t0, on_disk = time.monotonic(), None
    for i in range(15):
        c.stroke_polyline([(10 + 5 * i, 40), (14 + 5 * i, 44)])
        qtbot.wait(400)
        if path.is_file():  # written while the strokes go on (the next one would still have come in 0.4 s)
            on_disk = time.monotonic() - t0
            break
    assert on_disk is not None and on_disk < 5.0
    assert set(taken_on) == {threading.main_thread().ident}
    qtbot.waitUntil(lambda: np.array_equal(load_session(path).edited_mask, session.labels.data), timeout=6000)


def _viewport_pixels(window) -> np.ndarray:
    """What the axial viewport shows, as RGB ``(height, width, 3)`` in viewport pixels."""
    from PySide6.QtGui import QImage

    QApplication.processEvents()
    image = window.slice_view.viewport().grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, :3 * width].reshape(height, width, 3).astype(int)


def test_stroke_cursor_and_undo_as_the_reader_sees_them(qtbot, open_window):
    """The rendered viewport, not the overlay arrays: a drag leaves lesion colour on screen along
    its path, the brush outline is a ring of the brush's size around the cursor, Ctrl+Z repaints
    the CT as it was."""
    window = open_window()
    window.resize(900, 700)
    window.state.set_layers(cam_visible=False)  # the activation map's colours would mask the lesion's
    c, z = window.editing.controller, window.state.z
    key(qtbot, window, Qt.Key.Key_B)
    c.set_radius(4.0)
    lung = window.editing.session.ai_result.lung_mask[z]
    assert lung[56, 24:51].all() and not window.editing.session.ai_result.lesion_mask[z, 50:63, 20:55].any()
    before = _viewport_pixels(window)
    drag(qtbot, window, [(24, 56), (37, 56), (50, 56)])
    after = _viewport_pixels(window)

    def reddish(rgb):
        return rgb[..., 0] - np.maximum(rgb[..., 1], rgb[..., 2]) > 50

    for x in (26, 32, 37, 44, 48):
        p = view_point(window, x, 56)
        assert reddish(after[p.y(), p.x()]) and not reddish(before[p.y(), p.x()]), (x, after[p.y(), p.x()])
    above = view_point(window, 37, 50)  # 6 rows = 17 mm above a 4 mm brush: untouched
    assert not reddish(after[above.y(), above.x()])

    # The cursor outline: a yellow ring of the brush's radius on screen around the cursor.
    centre = view_point(window, 95, 60)
    QTest.mouseMove(window.slice_view.viewport(), centre)
    qtbot.waitUntil(lambda: c.outline.isVisible(), timeout=2000)
    ring = _viewport_pixels(window)
    yellow = (ring[..., 0] > 180) & (ring[..., 1] > 180) & (ring[..., 2] < 120)
    ys, xs = np.nonzero(yellow)
    px_per_mm = (view_point(window, 105, 60).x() - centre.x()) / (10 * window.state.volume.spacing[2])
    distance = np.hypot(xs - centre.x(), ys - centre.y())
    near = distance < 3 * c.radius_mm * px_per_mm
    assert near.sum() > 20, "no brush outline drawn around the cursor"
    np.testing.assert_allclose(np.median(distance[near]), c.radius_mm * px_per_mm, rtol=0.2, atol=1.5)

    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    undone = _viewport_pixels(window)
    for x in (26, 37, 48):
        p = view_point(window, x, 56)
        assert not reddish(undone[p.y(), p.x()])
        assert np.abs(undone[p.y(), p.x()] - before[p.y(), p.x()]).max() <= 2


def test_new_results_do_not_stack_label_listeners(qtbot, open_window):
    """Three more analyses (edits kept, then replaced): the edit controller hears the labels once."""
    window = open_window()
    session = window.editing.session
    controller_hooks = lambda s: [f for f in s.labels._listeners if f == window.editing.controller._on_labels]  # noqa: E731,E501
    assert len(controller_hooks(session)) == 1
    window.editing.controller.set_tool("brush")
    window.editing.controller.stroke_polyline([(20, 20), (40, 20)])
    for choice in ("keep", "keep", "replace"):
        window.editing.ask_rerun = lambda c=choice: c
        window.start_analysis()
        qtbot.waitUntil(lambda: not window.busy, timeout=20000)
        current = window.editing.session
        assert len(controller_hooks(current)) == 1, choice
        if current is not session:
            assert controller_hooks(session) == []  # the old session is no longer heard
    window.state.set_volume(None)  # the study closes: its session is no longer heard either
    assert window.editing.controller.session is None and controller_hooks(current) == []


def test_viewer_state_events_disconnect():
    from jcs_viewer.gui.state import ViewerState

    state, heard = ViewerState(), []
    off = state.on("slice", heard.append)
    state.emit("slice", 3)
    off()
    state.emit("slice", 4)
    state.off("slice", heard.append)  # a second disconnect is harmless
    assert heard == [3]


def test_viewer_state_refuses_an_event_it_does_not_have():
    """A misspelt event name would connect a listener that never fires: it raises instead."""
    from jcs_viewer.gui.state import EVENTS, ViewerState

    state = ViewerState()
    with pytest.raises(ValueError, match="no event 'slices'"):
        state.on("slices", lambda z: None)
    with pytest.raises(ValueError, match="no event 'reslut'"):
        state.emit("reslut", None)
    assert {"volume", "result", "slice", "labels"} <= set(EVENTS)


def test_grow_tool_and_interpolation_in_the_window(qtbot, open_window, study):
    """Issue 19, item 6: G grows a lesion from a click within the HU range, inside the lungs; Ctrl+I fills the
    slices between two edited slices; each is one undo step."""
    window = open_window()
    session, c = window.editing.session, window.editing.controller
    volume, lung, _ = study
    z = 20
    key(qtbot, window, Qt.Key.Key_G)
    assert c.tool == "grow" and window.editing.grow_action.isChecked()
    # Seed: a lung pixel outside the AI's lesions, in the range set in the panel (its whole aerated region grows).
    hu = volume.array[z]
    lo, hi = float(hu[lung[z] > 0].min()) - 1, float(np.percentile(hu[lung[z] > 0], 40))
    c.set_hu_limit(False, lo, hi)
    ok = (lung[z] > 0) & (hu >= lo) & (hu <= hi) & (session.labels.data[z] == 0)
    # A seed whose 3 x 3 neighbours qualify too: a click lands within a pixel of where it was aimed.
    sure = ok[1:-1, 1:-1] & ok[:-2, 1:-1] & ok[2:, 1:-1] & ok[1:-1, :-2] & ok[1:-1, 2:]
    candidates = np.argwhere(sure) + 1
    y, x = (int(v) for v in candidates[len(candidates) // 2])
    before = session.labels.data[z].copy()
    msgs = []
    c.message.connect(msgs.append)
    QTest.mouseClick(window.slice_view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view_point(window, x, y))
    grown = (session.labels.data[z] > 0) & (before == 0)
    assert grown[y, x] and grown.sum() > 1, msgs
    assert ((hu[grown] >= lo) & (hu[grown] <= hi)).all() and (lung[z][grown] > 0).all()
    assert session.labels.undo_labels()[-1] == "grow region"
    # Interpolation: paint on slices 10 and 16, then Ctrl+I fills 11-15 from their shapes.
    key(qtbot, window, Qt.Key.Key_B)
    c.set_radius(4.0)
    for zz in (10, 16):
        window.state.set_slice(zz)
        drag(qtbot, window, [(60, 60), (66, 60)])
    filled_before = [int(session.labels.data[zz].sum()) for zz in range(11, 16)]
    QTest.keyClick(window.slice_view, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    assert session.labels.undo_labels()[-1] == "interpolate"
    assert all(session.labels.data[zz, 60, 63] for zz in range(11, 16))
    assert [int(session.labels.data[zz].sum()) for zz in range(11, 16)] != filled_before
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [int(session.labels.data[zz].sum()) for zz in range(11, 16)] == filled_before


def test_ruler_and_ellipse_measure_list_save_and_reach_the_report(qtbot, open_window, study, env):
    """Issue 19, item 1: L and O draw a ruler and an ellipse ROI by left-drag; the Measurements tab lists them;
    they are saved with the session, come back with it, and the report lists them."""
    from jcs_viewer.report.content import build_content
    from jcs_viewer.session.measurements import Measurement

    window = open_window()
    session, c = window.editing.session, window.editing.controller
    volume = study[0]
    _, sy, sx = volume.spacing
    key(qtbot, window, Qt.Key.Key_L)
    assert c.tool == "ruler" and window.editing.ruler_action.isChecked()
    drag(qtbot, window, [(30, 40), (50, 40), (70, 40)])
    assert len(session.measurements) == 1
    ruler = session.measurements[0]
    assert ruler.kind == "ruler" and ruler.z == 20
    assert ruler.length_mm((sy, sx)) == pytest.approx(40 * sx, rel=0.05)
    key(qtbot, window, Qt.Key.Key_O)
    drag(qtbot, window, [(40, 60), (50, 70), (60, 80)])
    ellipse = session.measurements[1]
    stats = ellipse.stats(volume.array[20], (sy, sx))
    inside = volume.array[20][ellipse.mask(volume.array[20].shape)]
    assert stats["mean"] == pytest.approx(float(inside.mean())) and stats["min"] == float(inside.min())
    assert stats["area_mm2"] == pytest.approx(np.pi * 10 * 10 * sy * sx, rel=0.1)
    panel = window.editing.measure_panel
    lines = [panel.list.item(i).text() for i in range(panel.list.count())]
    assert lines[0].startswith("Slice 21: ruler ") and lines[1].startswith("Slice 21: ellipse ")
    assert "HU" in lines[1] and "±" in lines[1]
    assert len(c.measure._items) == 4  # two shapes and their labels on this slice
    window.state.set_slice(5)
    assert not c.measure._items  # drawn only on their own slice
    panel.list.setCurrentRow(0)
    panel.delete_selected()
    assert [m.kind for m in session.measurements] == ["ellipse"]
    # Saved with the session and restored from it; the report lists it.
    session.flush()
    state = load_session(session.autosaver.path)
    assert [Measurement.from_dict(m) for m in state.measurements] == [ellipse]
    content = build_content(session.ai_result, volume, measurements=session.measurements)
    assert content.measurements == [lines[1]]
    session.restore(state)
    assert session.measurements == [ellipse]
