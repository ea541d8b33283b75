"""The viewer window driven with pytest-qt (offscreen): keys, W/L, strip, layers, workers, errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl  # noqa: E402

from jcs_viewer.settings import SettingsStore  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume  # noqa: E402
from jcs_viewer.io.volume import Volume  # noqa: E402
from jcs_viewer.pipeline.progress import ProgressEvent  # noqa: E402
from jcs_viewer.session.review import ReviewDecision  # noqa: E402


@pytest.fixture(scope="module")
def study():
    volume, lung, lesion = synthetic_volume(n_slices=40, size=128, seed=3)
    return volume, synthetic_result(volume, lung, lesion, cam_size=16)


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))

    def make(**kwargs):
        settings = SettingsStore(tmp_path / "settings.ini")
        settings.update(auto_analyze=kwargs.pop("auto", False))
        window = MainWindow(settings=settings, **kwargs)
        qtbot.addWidget(window)
        window.show()
        return window
    return make


def shows(window, result) -> bool:
    """The window shows this analysis: its edited view (a separate object) shares the AI result's arrays."""
    shown = window.state.result
    return shown is not None and shown.slice_probability is result.slice_probability


def _key(qtbot, window, key):
    qtbot.keyClick(window.slice_view, key)


def _open_volume(qtbot, window, volume, path=Path("/synthetic")):
    window._load_study = lambda p, series_uid=None: volume
    window.open_path(path)
    qtbot.waitUntil(lambda: window.state.volume is volume, timeout=5000)


def staged_analysis(result, steps=12, delay=0.05, started=None):
    """An analyze() stand-in that reports progress per stage and honours the cancel token."""
    def analyze(volume, options=None, progress=None, cancel=None, models=None):
        if started is not None:
            started.set()
        for stage in ("classify", "segment"):
            for done in range(steps + 1):
                cancel.raise_if_cancelled()
                progress(ProgressEvent(stage, done, steps, ""))
                time.sleep(delay)
        return result
    return analyze


def test_keys_presets_and_navigation(qtbot, make_window, study):
    volume, result = study
    window = make_window(analyze=staged_analysis(result, steps=1, delay=0))
    _open_volume(qtbot, window, volume)
    state = window.state
    assert state.z == 20 and window.slice_label.text().startswith("Slice 21/40")
    assert state.window == (1500.0, -600.0)
    assert window.slice_view.image.levels is not None
    assert list(window.slice_view.image.levels) == [-1350.0, 150.0]
    _key(qtbot, window, Qt.Key.Key_2)
    assert state.window == (400.0, 40.0) and list(window.slice_view.image.levels) == [-160.0, 240.0]
    _key(qtbot, window, Qt.Key.Key_3)
    assert state.window == (2000.0, 500.0) and "bone" in window.window_label.text()
    _key(qtbot, window, Qt.Key.Key_Up)
    _key(qtbot, window, Qt.Key.Key_Up)
    _key(qtbot, window, Qt.Key.Key_Down)
    assert state.z == 21
    shown = window.slice_view.image.image
    assert np.array_equal(shown, volume.array[21])
    for _ in range(60):
        _key(qtbot, window, Qt.Key.Key_Up)
    assert state.z == 39  # clamped
    # Zoom then `r`: the view fits the slice again and the lung window is back.
    view = window.slice_view.view
    fitted = view.viewRange()
    view.scaleBy((0.3, 0.3))
    assert view.viewRange()[0][1] - view.viewRange()[0][0] < 0.5 * (fitted[0][1] - fitted[0][0])
    _key(qtbot, window, Qt.Key.Key_R)
    assert state.window == (1500.0, -600.0)
    assert np.allclose(view.viewRange(), fitted, atol=1.0)


def test_wheel_right_drag_and_cursor_readout(qtbot, make_window, study):
    volume, result = study
    window = make_window()
    _open_volume(qtbot, window, volume)
    state = window.state
    view = window.slice_view.view

    class Wheel:  # the pyqtgraph wheel event interface the view box reads
        def __init__(self, delta, mods=Qt.KeyboardModifier.NoModifier):
            self._d, self._m, self.accepted = delta, mods, False

        def delta(self):
            return self._d

        def modifiers(self):
            return self._m

        def accept(self):
            self.accepted = True

    view.wheelEvent(Wheel(120))
    view.wheelEvent(Wheel(120))
    assert state.z == 22
    view.wheelEvent(Wheel(-120))
    assert state.z == 21
    width, level = state.window
    view.sigWindowDrag.emit(100.0, -50.0)  # drag right and up: wider window, lower level
    assert state.window[0] > width and state.window[1] < level and state.preset == "custom"
    # Move the mouse over voxel (x=70, y=40): the status bar shows that voxel and its HU.
    scene_pos = window.slice_view.voxel_to_scene(70, 40)
    window.slice_view.scene().sigMouseMoved.emit(scene_pos)
    expected = int(volume.array[21, 40, 70])
    assert state.cursor == {"x": 70, "y": 40, "z": 21, "value": expected}
    assert "voxel (70, 40, 21)" in window.cursor_label.text() and f"HU {expected}" in window.cursor_label.text()
    _key(qtbot, window, Qt.Key.Key_Up)  # the HU under a still cursor follows the slice
    assert state.cursor["z"] == 22 and state.cursor["value"] == int(volume.array[22, 40, 70])
    assert "mm" in window.position_label.text()


def test_load_warnings_show_in_a_dismissible_banner(qtbot, make_window, study):
    volume, _ = study
    warned = Volume(array=volume.array, spacing=volume.spacing,
                    warnings=["Slice gap of 5.0 mm between IM_7.dcm and IM_8.dcm."])
    window = make_window()
    _open_volume(qtbot, window, warned)
    assert window.banner.isVisible() and "IM_7.dcm" in window.banner.label.text()
    window.banner.findChild(type(window.cancel_button)).click()
    assert not window.banner.isVisible()
    _open_volume(qtbot, window, volume)
    assert not window.banner.isVisible()


def test_non_hu_volume_presets_use_full_range(qtbot, make_window):
    array = np.random.default_rng(0).integers(0, 256, (6, 32, 32)).astype(np.int16)
    volume = Volume(array=array, spacing=(1.0, 0.5, 0.5), is_hu=False, source_format="images")
    window = make_window()
    _open_volume(qtbot, window, volume)
    for key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3):
        _key(qtbot, window, key)
        assert window.state.levels == (0.0, 255.0)
    window.slice_view.scene().sigMouseMoved.emit(window.slice_view.voxel_to_scene(3, 4))
    assert "value" in window.cursor_label.text()


def test_analysis_strip_review_layers_and_summary(qtbot, make_window, study):
    volume, result = study
    window = make_window(analyze=staged_analysis(result, steps=2, delay=0.0), auto=True)
    _open_volume(qtbot, window, volume)
    qtbot.waitUntil(lambda: shows(window, result), timeout=10000)
    state, strip = window.state, window.score_strip
    flagged = np.flatnonzero(result.slice_positive)
    assert len(flagged) > 1
    assert window.last_status == f"Analysis finished: {result.decision}, {len(flagged)} flagged slices."
    # Strip: curve, cutoff, one shaded region per run of flagged slices.
    xs, ys = strip.curve.getData()
    assert np.allclose(ys, result.slice_probability) and xs[0] == 1
    assert strip.cutoff_line.value() == pytest.approx(result.slice_cutoff)
    runs = np.count_nonzero(np.diff(np.concatenate(([0], result.slice_positive.astype(int)))) == 1)
    assert strip.flagged_region_count == runs
    # Click on the strip at slice number 6 (index 5).
    vb = strip.getPlotItem().vb
    target = strip.mapFromScene(vb.mapViewToScene(QPointF(6.0, 0.5)))
    qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(int(target.x()), int(target.y())))
    assert state.z == 5 and strip.marker.value() == 6
    # Activation maps show on flagged slices only, unless the reader asks for every slice.
    state.set_slice(int(np.flatnonzero(~result.slice_positive)[0]))
    assert window.slice_view.cam_item.image is None
    window.layers_panel.cam_flagged.setChecked(False)
    assert window.slice_view.cam_item.image is not None
    window.layers_panel.cam_flagged.setChecked(True)
    assert window.slice_view.cam_item.image is None
    state.set_slice(5)
    # n / p jump between flagged slices; c confirms, x rejects.
    _key(qtbot, window, Qt.Key.Key_N)
    first = int(flagged[flagged > 5][0])
    assert state.z == first
    _key(qtbot, window, Qt.Key.Key_C)
    assert state.review.decision(first) == ReviewDecision.CONFIRMED
    _key(qtbot, window, Qt.Key.Key_N)
    second = state.z
    assert second == int(flagged[flagged > first][0])
    window.review_panel.reject_button.click()
    assert state.review.decision(second) == ReviewDecision.REJECTED
    _key(qtbot, window, Qt.Key.Key_P)
    assert state.z == first
    assert window.review_panel.progress_label.text().startswith(f"<b>2 of {len(flagged)} reviewed")
    assert "confirmed" in window.review_panel._items[first].text()
    tick_x, _ = strip.ticks.getData()
    assert sorted(tick_x.tolist()) == [first + 1, second + 1]
    # Overlays are drawn on the flagged slice: lesions (on top of lung outlines) where the mask is.
    view, lesion = window.slice_view, result.lesion_mask[first] > 0
    rgba = view.mask_item.image
    assert rgba.shape == volume.array.shape[1:] + (4,)
    assert np.all(rgba[lesion][:, :3] == state.layers.lesion_color)
    lung_edge = (rgba[..., 3] > 0) & ~lesion
    assert lung_edge.sum() > 0 and np.all(result.lung_mask[first][lung_edge] > 0)
    assert view.cam_item.image.shape == result.cams.shape[1:] + (4,)
    assert view.cam_item.image[..., 3].max() > 0
    window.layers_panel.lung_box.setChecked(False)
    assert np.array_equal(view.mask_item.image[..., 3] > 0, lesion)
    # `s` hides every overlay; the layers panel mirrors it; `s` again shows them.
    _key(qtbot, window, Qt.Key.Key_S)
    assert not view.mask_item.isVisible() and not view.cam_item.isVisible()
    assert not window.layers_panel.all_box.isChecked()
    _key(qtbot, window, Qt.Key.Key_S)
    assert view.mask_item.isVisible() and view.cam_item.isVisible()
    window.layers_panel.lesion_outline.setChecked(True)
    outline = view.mask_item.image[..., 3] > 0
    assert 0 < outline.sum() < lesion.sum() and not outline[~lesion].any()
    window.layers_panel.lesion_opacity.setValue(40)
    assert view.mask_item.image[..., 3].max() == round(0.4 * 255)
    window.layers_panel.cam_opacity.setValue(20)
    assert view.cam_item.opacity() == pytest.approx(0.2)
    window.layers_panel.cam_box.setChecked(False)
    assert not view.cam_item.isVisible()
    # Summary: decision, count vs threshold, rule, quantification, attributes, notice.
    text = window.summary_panel.text()
    assert f"Decision: {result.decision.upper()}" in text
    assert f"{result.positive_slices} of {result.n_slices} slices positive" in text
    assert f"more than {result.threshold} slices" in text and result.threshold_rule in text
    assert f"{result.quant.lesion_volume_ml['total']:.1f} mL" in text
    assert "Ground-glass opacity" in text and "Research use only" in text
    assert f"Slice {first + 1} attributes: GGO {result.attributes[first, 0]:.2f}" in text
    assert "Research use only" in window.notice_label.text()


def test_event_loop_runs_during_analysis_and_cancel_keeps_result(qtbot, make_window, study):
    volume, result = study
    window = make_window(analyze=staged_analysis(result, steps=1, delay=0.0))
    _open_volume(qtbot, window, volume)
    window.start_analysis()
    qtbot.waitUntil(lambda: shows(window, result), timeout=10000)
    window.state.review.confirm(int(np.flatnonzero(result.slice_positive)[0]))

    # A second, slow analysis: a QTimer keeps ticking and the progress bar moves while it runs.
    started = threading.Event()
    other = synthetic_result(volume, np.zeros_like(result.lung_mask), np.zeros_like(result.lesion_mask))
    window._analyze = staged_analysis(other, steps=40, delay=0.05, started=started)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    window.start_analysis()
    assert window.busy and window._progress_action.isVisible()
    qtbot.waitUntil(lambda: window.progress.value() > 0, timeout=5000)
    qtbot.wait(500)
    timer.stop()
    assert len(ticks) >= 10, "the GUI event loop stalled while the analysis ran"
    assert max(np.diff(ticks)) < 0.25
    assert "Classifying slices" in window.progress.format() or "Segmenting" in window.progress.format()
    _key(qtbot, window, Qt.Key.Key_Up)  # the viewer still reacts to keys
    window.cancel_button.click()
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
    assert shows(window, result)  # the previous result and its review are kept
    assert window.state.review.reviewed == 1
    assert "previous result is kept" in window.last_status
    assert not window._progress_action.isVisible()


def test_the_progress_bar_hides_when_busy_ends_not_later(qtbot, make_window, study):
    """The bar follows the same event that ends ``busy`` (the worker's ``settled``), so no handler ever sees a
    window that is not busy with its progress bar still up (it once followed the thread's end, a moment later)."""
    volume, result = study
    window = make_window(analyze=staged_analysis(result, steps=5, delay=0.05))
    _open_volume(qtbot, window, volume)
    seen = []
    window.start_analysis()
    window.analysis_worker.settled.connect(lambda: seen.append((window.busy, window._progress_action.isVisible())))
    assert window.busy and window._progress_action.isVisible()
    qtbot.waitUntil(lambda: bool(seen), timeout=10000)
    assert seen == [(False, False)]
    assert shows(window, result)


def test_a_finished_task_nobody_holds_still_delivers_its_outcome(qtbot):
    """``start_task`` keeps a worker until its outcome arrived, not only until its thread ended: the outcome is an
    event posted to the worker, lost if the worker were freed first (an autosave holds no reference)."""
    import gc

    from jcs_viewer.gui.workers import start_task

    got = []
    first = start_task("first", lambda progress, cancel: "first done", succeeded=got.append)
    assert first.wait(5000)  # its thread ended; its outcome still waits in the GUI thread's queue
    second = start_task("second", lambda progress, cancel: "second done", succeeded=got.append)
    del first
    gc.collect()
    qtbot.waitUntil(lambda: len(got) == 2, timeout=5000)
    assert sorted(got) == ["first done", "second done"]
    assert second.wait(2000)


def test_the_status_line_of_a_finished_analysis_counts_its_flagged_slices():
    from types import SimpleNamespace

    from jcs_viewer.gui.window_chrome import analysis_finished_text

    one = SimpleNamespace(decision="not assessable", slice_positive=np.array([False, True, False]))
    assert analysis_finished_text(one) == "Analysis finished: not assessable, 1 flagged slice."


def test_the_progress_reading_of_analysis_stages_and_of_other_tasks():
    from jcs_viewer.gui.window_chrome import progress_reading
    from jcs_viewer.pipeline.progress import STAGES

    first, last = STAGES[0], STAGES[-1]
    assert progress_reading(first, 0, 10, "")[0] == 0
    value, text = progress_reading(last, 5, 10, "slow disk")
    assert value == round((len(STAGES) - 0.5) / len(STAGES) * 1000) and text.endswith(" 5/10 — slow disk")
    assert progress_reading(last, 10, 10, "")[0] == 1000
    assert progress_reading("export", 1, 4, "") == (250, "Exporting")  # a window task fills the bar alone
    assert progress_reading("unheard of", 3, 0, "") == (1000, "Unheard of")


def test_bad_folder_gives_one_sentence(qtbot, make_window, tmp_path):
    empty = tmp_path / "empty study"
    empty.mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not an image")
    window = make_window()
    for folder in (empty, tmp_path / "notes"):
        window.last_error = None
        window.open_path(folder)
        qtbot.waitUntil(lambda: window.last_error is not None, timeout=10000)
        sentence = window.last_error
        assert "Traceback" not in sentence and "\n" not in sentence
        assert folder.name in sentence
        box = window._message_box
        assert box is not None and box.text() == sentence
        box.close()
    assert window.state.volume is None


def test_unexpected_error_is_logged_not_shown(qtbot, make_window, tmp_path):
    def broken(path, series_uid=None):
        raise ZeroDivisionError("internal detail")
    window = make_window(load_study=broken)
    window._scan_folder = lambda p: []
    window.open_path(tmp_path)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=5000)
    assert "internal detail" not in window.last_error and "ZeroDivisionError" not in window.last_error
    assert "details were written to" in window.last_error
    log = tmp_path / "data" / "logs" / "jcs-viewer.log"
    from jcs_viewer.gui.user_messages import setup_logging
    setup_logging()
    window.last_error = None
    window.open_path(tmp_path)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=5000)
    assert "ZeroDivisionError" in log.read_text()


def test_series_picker_recent_studies_and_drop(qtbot, make_window, study, tmp_path):
    volume, _ = study

    class Entry:
        def __init__(self, uid, n, modality="CT"):
            self.series_uid, self.n_slices, self.modality = uid, n, modality
            self.description, self.rows, self.columns, self.slice_thickness = f"s{uid}", 128, 128, 1.0

    calls = []

    def load(path, series_uid=None):
        calls.append(series_uid)
        return volume
    window = make_window(load_study=load)
    window._scan_folder = lambda p: [Entry("1.2.1", 40), Entry("1.2.2", 80), Entry("1.2.3", 3, "SR")]
    asked = []

    def pick(folder, entries):
        from jcs_viewer.gui.series_picker import SeriesPickerDialog
        dialog = SeriesPickerDialog(entries, str(folder), window)
        asked.append((dialog.table.rowCount(), dialog.selected_uid()))  # pre-selects the biggest CT
        dialog.deleteLater()
        return "1.2.1"
    window.pick_series = pick
    folder = tmp_path / "two series"
    folder.mkdir()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    window.dropEvent(drop)
    qtbot.waitUntil(lambda: window.state.volume is volume, timeout=5000)
    assert asked == [(3, "1.2.2")] and calls == ["1.2.1"]
    assert window.recent.paths()[0] == str(folder)
    assert [a.text() for a in window.recent.menu.actions()][0] == str(folder)


def test_unusable_settings_give_the_defaults_and_a_note_not_a_stuck_analysis(make_window, tmp_path):
    """device=quantum in the settings file raised ValueError inside analysis_options: a traceback on stderr and a
    window that never analysed (an unattended run never quit). The CLI already fell back with a note."""
    window = make_window()
    window.settings.path.write_text("[General]\ndevice=quantum\nslice_cutoff=7\nslice_threshold=-5\n")
    options = window.analysis_options()
    assert (options.device, options.slice_cutoff, options.threshold) == ("auto", 0.5, None)
    assert "device 'quantum' is not one of auto, cpu, cuda" in window.settings_note
    assert str(window.settings.path) in window.settings_note
    window.apply_settings(window.settings.update(device="cpu"))  # the Settings dialog's OK
    assert window.analysis_options().device == "cpu" and window.settings_note == ""


def test_unusable_settings_are_said_at_start_though_the_first_save_replaces_them(make_window, tmp_path):
    """Opening a study saves the recent list, which wrote the defaults over the bad values before any analysis read
    them: the note has to come from the file as the window found it, and stay with each analysis."""
    (tmp_path / "settings.ini").write_text("[General]\nauto_analyze=false\ndevice=quantum\n")
    window = make_window(auto=False)
    assert "device 'quantum' is not one of auto, cpu, cuda" in window.last_status
    window.recent.remember(tmp_path / "study")  # the first save
    assert "quantum" not in window.settings.path.read_text()
    window.analysis_options()
    assert "device 'quantum'" in window.settings_note


def test_recent_studies_keep_the_latest_once_and_survive_a_new_window(make_window, tmp_path):
    from jcs_viewer.gui.recent_studies import MAX_RECENT

    window = make_window()
    assert not window.recent.menu.isEnabled() and window.recent.last_dir() == str(Path.home())
    folders = [tmp_path / f"study {i}" for i in range(MAX_RECENT + 2)]
    for folder in folders:
        window.recent.remember(folder)
    window.recent.remember(folders[3])  # opened again: moves to the top, listed once
    expected = [str(folders[3])] + [str(f) for f in reversed(folders) if f != folders[3]][:MAX_RECENT - 1]
    assert window.recent.paths() == expected
    assert [a.text() for a in window.recent.menu.actions() if a.text()] == [*expected, "Clear list"]
    assert window.recent.last_dir() == str(tmp_path)

    again = make_window()  # the list lives in the settings file, not in the window
    assert again.recent.paths() == expected and again.recent.menu.isEnabled()
    next(a for a in again.recent.menu.actions() if a.text() == "Clear list").trigger()
    assert again.recent.paths() == [] and not again.recent.menu.isEnabled()


def test_cancel_token_stops_a_real_worker(qtbot):
    from jcs_viewer.gui.workers import TaskWorker

    def task(progress, cancel):
        for i in range(200):
            cancel.raise_if_cancelled()
            progress("classify", i, 200, "")
            time.sleep(0.01)
        return "done"
    worker = TaskWorker("test", task)
    finished = []
    worker.succeeded.connect(finished.append)
    with qtbot.waitSignal(worker.cancelled, timeout=5000):
        worker.start()
        qtbot.wait(50)
        worker.cancel()
    assert worker.wait(2000) and finished == []


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_a_worker_is_busy_until_its_outcome_handlers_ran(qtbot, outcome):
    """"Not busy" must never be visible before the result handler ran (a waiter would act on a stale state)."""
    from jcs_viewer.errors import Cancelled
    from jcs_viewer.gui.workers import TaskWorker

    def task(progress, cancel):
        if outcome == "failed":
            raise ValueError("broken")
        if outcome == "cancelled":
            raise Cancelled("stop")
        return "done"

    worker = TaskWorker("test", task)
    seen = []
    getattr(worker, outcome).connect(lambda *_: seen.append(worker.busy))
    worker.start()
    qtbot.waitUntil(lambda: not worker.busy, timeout=5000)
    assert seen == [True]  # the handler ran, and ran while the worker still counted as busy
    assert worker.wait(2000)


def test_a_worker_is_not_busy_before_every_settled_handler_ran(qtbot):
    """A waiter that sees ``delivered`` must see every ``settled`` handler done (the PACS dialog's search button was
    still disabled when a test clicked it); and every handler, lambdas too, runs on the GUI thread."""
    from PySide6.QtCore import QThread

    from jcs_viewer.gui.workers import TaskWorker

    gui_thread = QThread.currentThread()
    worker = TaskWorker("test", lambda progress, cancel: "done")
    threads, seen = [], []
    # A slow handler before another: were settled emitted from the worker thread, this one would sleep there
    # between the posting of the queued ones, and a waiter on the GUI thread could run in the gap.
    worker.settled.connect(lambda: (threads.append(QThread.currentThread()), time.sleep(0.2)),
                           Qt.ConnectionType.DirectConnection)
    worker.settled.connect(lambda: seen.append(worker.busy))
    worker.succeeded.connect(lambda _value: threads.append(QThread.currentThread()))
    worker.start()
    qtbot.waitUntil(lambda: worker.delivered, timeout=5000)
    assert seen == [False]  # ran, and saw "not busy"
    assert threads and all(t is gui_thread for t in threads)
    assert worker.wait(2000)


def test_open_a_nifti_file_with_the_real_loader(qtbot, make_window, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    array = np.full((5, 24, 20), -1000, np.int16)
    array[:, 6:18, 4:16] = 40
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 2.0))
    path = tmp_path / "small.nii.gz"
    sitk.WriteImage(image, str(path))
    window = make_window()
    window.open_path(path)
    qtbot.waitUntil(lambda: window.state.volume is not None or window.last_error is not None, timeout=10000)
    assert window.last_error is None
    volume = window.state.volume
    assert volume.array.shape == (5, 24, 20) and volume.spacing[1:] == pytest.approx((0.8, 0.8))
    assert window.slice_label.text().startswith("Slice 3/5")
    assert window.windowTitle().startswith("small.nii.gz")


def test_models_are_loaded_once_and_kept(qtbot, make_window, study):
    volume, result = study
    window = make_window()
    assert window._load_models is not None  # the real pipeline path loads models itself
    loads, seen = [], []

    def load_models(options):
        loads.append(options)
        return "loaded-models"

    def analyze(volume, options=None, progress=None, cancel=None, models=None):
        seen.append(models)
        return result
    window._load_models, window._analyze = load_models, analyze
    _open_volume(qtbot, window, volume)
    for _ in range(2):
        window.start_analysis()
        qtbot.waitUntil(lambda: not window.busy, timeout=5000)
    assert len(loads) == 1 and seen == ["loaded-models", "loaded-models"]
    assert shows(window, result)


def test_opening_another_study_cancels_the_running_analysis(qtbot, make_window, study):
    volume, result = study
    other_volume, lung, lesion = synthetic_volume(n_slices=12, size=64, seed=5)
    other_result = synthetic_result(other_volume, lung, lesion, cam_size=8)
    results = {id(volume): result, id(other_volume): other_result}

    def analyze(vol, options=None, progress=None, cancel=None, models=None):
        for i in range(100 if vol is volume else 1):
            cancel.raise_if_cancelled()
            progress(ProgressEvent("classify", i, 100, ""))
            time.sleep(0.02)
        return results[id(vol)]
    window = make_window(analyze=analyze, auto=True)
    _open_volume(qtbot, window, volume)
    qtbot.waitUntil(lambda: window.progress.value() > 0, timeout=5000)
    first_worker = window.analysis_worker
    _open_volume(qtbot, window, other_volume, Path("/other"))
    qtbot.waitUntil(lambda: shows(window, other_result), timeout=10000)
    qtbot.waitUntil(lambda: not first_worker.isRunning(), timeout=5000)
    qtbot.wait(100)
    assert window.state.volume is other_volume and shows(window, other_result)
    assert first_worker.token.cancelled


def test_summary_fits_its_box_at_1440x900(qtbot, make_window, study):
    """At the default 1440x900 the decision, the numbers and the threshold rule are on screen
    without scrolling, and nothing is cut off sideways (the rule used to be chopped mid-line)."""
    import dataclasses

    from PySide6.QtGui import QTextCursor

    volume, result = study
    rule = ("Threshold 10 = round(25 x min(1 mm / 2.50 mm, 128 / 300)) clamped to 1..127, i.e. the paper's "
            "25 slices of ~1 mm scaled as 25 mm of positive slices.")
    result = dataclasses.replace(result, threshold_rule=rule)
    window = make_window(analyze=staged_analysis(result, steps=1, delay=0), auto=True)
    window.resize(1440, 900)
    _open_volume(qtbot, window, volume)
    qtbot.waitUntil(lambda: shows(window, result), timeout=5000)
    qtbot.waitExposed(window)
    browser = window.summary_panel.browser
    qtbot.waitUntil(lambda: browser.viewport().height() > 0)
    viewport = browser.viewport().rect()
    assert browser.horizontalScrollBar().maximum() == 0, "summary text must wrap, not run off sideways"
    for needle in ("Decision:", "slices positive", "Lesion volume", "Involvement", "Lesions",
                   "Zones (mL)", rule[:40], "positive slices."):
        cursor = browser.document().find(needle)
        assert not cursor.isNull(), needle
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
        browser.setTextCursor(cursor)  # would scroll if the block's end were off screen
        end = browser.cursorRect(cursor)
        assert browser.verticalScrollBar().value() == 0, f"{needle!r} is below the summary's fold"
        assert viewport.contains(end.bottomLeft()), f"{needle!r} ends outside the summary box: {end}"
    # Layers and lesion editing share the tabs below; choosing the brush brings editing forward.
    tabs = window.side_tabs
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["Layers", "Lesion editing", "Measurements"]
    assert tabs.currentWidget() is window.layers_panel
    qtbot.keyClick(window.slice_view, Qt.Key.Key_B)
    assert window.editing.controller.tool == "brush" and tabs.currentIndex() == 1


def _bad_series(root: Path, damage: str) -> Path:
    """A 3-slice series whose files are all damaged the way the hardening corpus damages them (one damaged
    file among good ones is skipped with a note, and the study still opens)."""
    import pydicom

    from helpers_dicom import write_series

    folder = root / damage
    files, _ = write_series(folder, n=3, size=16)
    for victim in map(Path, files):
        if damage == "truncated":
            victim.write_bytes(victim.read_bytes()[:-300])
            continue
        ds = pydicom.dcmread(victim)
        if damage == "rows0":
            ds.Rows = 0
        elif damage == "nan_position":
            ds.ImagePositionPatient = ["nan", "0", "0"]
        elif damage == "huge_frames":
            ds.NumberOfFrames = 65536
        ds.save_as(victim)
    return folder


@pytest.mark.parametrize("damage", ["truncated", "rows0", "nan_position", "huge_frames"])
def test_a_bad_study_gives_the_gui_the_sentence_the_cli_prints(qtbot, make_window, tmp_path, capsys, damage):
    """Issue 15: the same sentence in the GUI as on the command line (exit 2), never a traceback."""
    from jcs_viewer.cli import main
    from jcs_viewer.io import load_study

    folder = _bad_series(tmp_path, damage)
    assert main(["analyze", str(folder), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    cli = capsys.readouterr().err.strip()
    assert cli.startswith("jcs-viewer: ") and len(cli.splitlines()) == 1 and "Traceback" not in cli
    window = make_window(load_study=load_study)
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=10000)
    assert window.last_error == cli[len("jcs-viewer: "):]
    window._message_box.close()


def test_library_warnings_never_reach_the_terminal(tmp_path):
    """Issue 15, item 12: pydicom's warning about a 'nan' DS value was printed raw above our sentence."""
    import subprocess
    import sys

    folder = _bad_series(tmp_path, "nan_position")
    code = "import sys; from jcs_viewer.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "analyze", str(folder), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"jcs-viewer: DICOM file {folder / 'IM0001.dcm'} has a non-finite "
                                                "ImagePositionPatient (nan, 0.0, 0.0)."], proc.stderr


def test_window_title_names_the_demo_and_the_app_once(qtbot, make_window, study):
    """Issue 19, item 7: the title called the demo "dicom" and repeated the app's name."""
    import dataclasses

    from jcs_viewer.io.volume import StudyInfo

    volume, _ = study
    demo = dataclasses.replace(volume, info=StudyInfo(study_description="CT CHEST synthetic demo (JCS Viewer)"))
    window = make_window(demo_study_path=lambda: Path("/cache/demo/dicom"))
    window._load_study = lambda p, series_uid=None: demo
    window.open_demo()
    qtbot.waitUntil(lambda: window.state.volume is demo, timeout=5000)
    title = window.windowTitle()
    assert title.startswith("Demo study (synthetic) — CT CHEST synthetic demo — ") and title.count("JCS Viewer") == 1
    _open_volume(qtbot, window, volume, Path("/studies/patient 7"))
    assert window.windowTitle().startswith("patient 7") and window.windowTitle().count("JCS Viewer") == 1
