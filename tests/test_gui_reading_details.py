"""Small things a new user hit (issue 19, item 7): runs of flagged slices, the window presets on grey-level data,
the other series' UIDs, the first window size."""

from __future__ import annotations

import pytest

from helpers_dicom import write_series
from jcs_viewer.io import load_study
from jcs_viewer.session.review import ReviewState

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from jcs_viewer.gui import window_chrome  # noqa: E402
from jcs_viewer.gui.state import ViewerState  # noqa: E402


def test_runs_of_flagged_slices_and_the_jumps_between_them():
    review = ReviewState(flagged=[20, 2, 3, 4, 10, 11])
    assert review.runs() == [(2, 4), (10, 11), (20, 20)]
    assert [review.next_run(z) for z in (0, 3, 4, 10, 15, 20)] == [2, 10, 10, 20, 20, 2]
    assert [review.previous_run(z) for z in (3, 2, 10, 11, 15, 0)] == [2, 20, 2, 10, 10, 20]
    assert ReviewState(flagged=[]).next_run(5) is None and ReviewState(flagged=[]).previous_run(5) is None


def synthetic_window(qtbot, tmp_path, monkeypatch, n_slices: int, seed: int):
    """The window showing a synthetic study and its synthetic result (no analysis)."""
    from helpers_gui import open_window
    from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume

    window = open_window(qtbot, tmp_path, monkeypatch, auto_analyze=False)
    volume, lung, lesion = synthetic_volume(n_slices=n_slices, size=64, seed=seed)
    window.state.set_volume(volume)
    window.state.set_result(synthetic_result(volume, lung, lesion, cam_size=8))
    return window


def test_shift_n_and_shift_p_walk_the_runs_in_the_window(qtbot, tmp_path, monkeypatch):
    window = synthetic_window(qtbot, tmp_path, monkeypatch, n_slices=40, seed=7)
    runs = window.state.review.runs()
    assert len(runs) >= 1
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    by_text = {a.text(): a for a in view_menu.actions()}
    next_run, previous_run = by_text["Next run of flagged slices"], by_text["Previous run of flagged slices"]
    assert next_run.shortcut().toString() == "Shift+N" and previous_run.shortcut().toString() == "Shift+P"
    window.state.set_slice(0)
    next_run.trigger()
    assert window.state.z == runs[0][0]
    window.state.set_slice(runs[0][1])  # the run's last slice: Shift+P goes back to its first, not one by one
    previous_run.trigger()
    assert window.state.z == runs[0][0]


def test_presets_on_grey_levels_say_why_they_are_all_the_same():
    import dataclasses

    from jcs_viewer.gui.synthetic import synthetic_volume

    volume, _, _ = synthetic_volume(n_slices=3, size=32, seed=1)
    state = ViewerState()
    state.set_volume(dataclasses.replace(volume, is_hu=False))
    for key in (1, 2, 3):
        state.apply_preset(key)
        assert state.preset == "full range: grey levels, not HU" and state.window == (255.0, 127.5)
    state.set_volume(volume)
    state.apply_preset(Qt.Key.Key_1 - Qt.Key.Key_0)
    assert state.preset == "lung"


def test_the_note_about_other_series_gives_their_uids(tmp_path):
    _, big = write_series(tmp_path, n=6, series_number=2)
    _, small = write_series(tmp_path, n=3, series_number=5, names=[f"B{i}.dcm" for i in range(3)])
    volume = load_study(tmp_path)
    note = next(w for w in volume.warnings if "series" in w)
    assert small in note and "--series" in note and big not in note.split("Also there:")[1]
    assert 'loaded series 2 "TEST" (CT, 6 slices). Also there: series 5 "TEST" (CT, 3 slices), UID ' in note


def test_the_first_window_size_follows_the_screen(qtbot):
    width, height = window_chrome.initial_size()
    assert (width, height) >= window_chrome.MIN_SIZE
    from PySide6.QtWidgets import QApplication

    free = QApplication.primaryScreen().availableGeometry()
    assert width == max(1440, int(free.width() * 0.9)) and height == max(900, int(free.height() * 0.9))


def test_the_series_picker_shows_study_date_and_plane_of_real_files(qtbot, tmp_path):
    from jcs_viewer.gui.series_picker import SeriesPickerDialog
    from jcs_viewer.io.dicom_scan import scan_folder

    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    write_series(tmp_path, n=4, series_number=2)
    write_series(tmp_path, n=3, series_number=7, orientation=coronal, names=[f"COR{i}.dcm" for i in range(3)])
    entries = scan_folder(tmp_path)
    dialog = SeriesPickerDialog(entries, str(tmp_path))
    qtbot.addWidget(dialog)
    headers = [dialog.table.horizontalHeaderItem(c).text() for c in range(dialog.table.columnCount())]
    rows = {dialog.table.item(r, 0).text(): {h: dialog.table.item(r, c).text() for c, h in enumerate(headers)}
            for r in range(dialog.table.rowCount())}
    assert rows["2"]["Plane"] == "axial" and rows["7"]["Plane"] == "coronal"
    study_date = entries[0].info.study_date
    assert len(study_date) == 8 and rows["2"]["Study date"] == f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:]}"


def test_the_summary_says_why_a_rejected_slice_still_counts(qtbot, tmp_path, monkeypatch):
    window = synthetic_window(qtbot, tmp_path, monkeypatch, n_slices=30, seed=8)
    text = window.summary_panel.browser.toPlainText()
    assert "The reader" not in text
    flagged = window.state.review.flagged
    window.state.review.reject(flagged[0])
    window.state.review.confirm(flagged[1])
    text = window.summary_panel.browser.toPlainText()
    assert "The reader confirmed 1, rejected 1 of them. The count and the decision above are the AI's" in text
