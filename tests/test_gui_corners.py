"""Image corners (issue 19, item 3): patient, study and series, slice position and thickness, W/L and zoom on the
axial view; key I hides them; View ▸ Anonymise view takes the identifying lines away. On the demo study and on a
real DICOM series."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from jcs_viewer.gui.corners import corner_texts  # noqa: E402
from helpers_gui import open_window  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume  # noqa: E402
from jcs_viewer.io.volume import StudyInfo  # noqa: E402
from conftest import shared_data_path  # noqa: E402

PATIENT = StudyInfo(patient_name="DOE^JANE^Q", patient_id="P-0042", birth_date="19500102", sex="F", age="071Y",
                    study_date="20201103", study_description="CT CHEST", series_number="3",
                    series_description="LUNG 1.0", modality="CT", slice_thickness=1.0)


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    return open_window(qtbot, tmp_path, monkeypatch, auto_analyze=False)


def _shown(win):
    return win.slice_view.corners.texts()


def test_corners_follow_slice_window_and_zoom_and_hide_with_i(window, qtbot):
    volume, lung, lesion = synthetic_volume(n_slices=30, size=128, seed=2)
    volume = dataclasses.replace(volume, info=PATIENT)
    window.state.set_volume(volume)
    window.state.set_result(synthetic_result(volume, lung, lesion, cam_size=16))
    texts = _shown(window)
    assert texts["top_left"].splitlines() == ["DOE, JANE Q", "ID P-0042", "born 1950-01-02", "female, 71 years"]
    assert texts["top_right"].splitlines() == ["2020-11-03", "CT CHEST", "CT", "Series 3 LUNG 1.0"]
    assert f"Slice {window.state.z + 1} / 30" in texts["bottom_left"] and "thickness 1 mm" in texts["bottom_left"]
    window.state.set_slice(4)
    assert _shown(window)["bottom_left"].startswith("Slice 5 / 30")
    assert f"z {volume.slice_position_mm(4):.1f} mm" in _shown(window)["bottom_left"]
    window.state.apply_preset(2)
    assert _shown(window)["bottom_right"].startswith("W 400  L 40  mediastinum")
    zoom_before = _shown(window)["bottom_right"].splitlines()[1]
    window.slice_view.view.scaleBy((0.5, 0.5))  # zoom in twice
    qtbot.waitUntil(lambda: _shown(window)["bottom_right"].splitlines()[1] != zoom_before)
    before, after = (int(t.split()[1]) for t in (zoom_before, _shown(window)["bottom_right"].splitlines()[1]))
    assert after == pytest.approx(2 * before, rel=0.05)
    # Key I hides the corners and brings them back.
    window.handle_key(Qt.Key.Key_I)
    assert all(not item.isVisible() for item in window.slice_view.corners.items.values())
    window.handle_key(Qt.Key.Key_I)
    assert _shown(window)["top_left"].startswith("DOE, JANE")


def test_anonymise_view_removes_the_identifying_lines(window):
    volume, lung, lesion = synthetic_volume(n_slices=12, size=96, seed=4)
    window.state.set_volume(dataclasses.replace(volume, info=PATIENT))
    window.anonymise_action.setChecked(True)
    texts = _shown(window)
    everything = "\n".join(texts.values())
    for secret in ("DOE", "JANE", "P-0042", "1950", "2020-11-03", "CT CHEST"):
        assert secret not in everything
    assert texts["top_left"] == "Anonymised" and "Slice" in texts["bottom_left"]
    window.anonymise_action.setChecked(False)
    assert "DOE, JANE Q" in _shown(window)["top_left"]


def test_corners_on_a_real_dicom_series(window):
    from jcs_viewer.io import load_study

    volume = load_study(shared_data_path("covid19_ny_sbu_dicom_slices", "A002304", "axial"))
    window.state.set_volume(volume)
    texts = _shown(window)
    assert "ID A002304" in texts["top_left"] and "male, 71 years" in texts["top_left"]
    assert texts["top_right"].splitlines()[:2] == ["1901-01-12", "CT CHEST PULMONARY ANGIO WITH IV CON"]
    assert "Slice 1 / 1" in texts["bottom_left"] and "thickness 1.25 mm" in texts["bottom_left"]
    assert texts["bottom_right"].startswith("W 1500  L -600  lung")


def test_grey_level_studies_say_so_and_missing_fields_leave_no_blank_lines():
    volume, _, _ = synthetic_volume(n_slices=3, size=32, seed=1)
    grey = dataclasses.replace(volume, is_hu=False, info=StudyInfo())
    texts = corner_texts(grey, 0, (255.0, 127.5), "full range", 1.0, anonymised=False)
    assert texts["top_left"] == "" and "" not in texts["top_right"].splitlines()
    assert "(grey levels)" in texts["bottom_right"] and texts["bottom_right"].endswith("Zoom 100 %")


def test_a_short_study_gets_whole_slice_numbers_on_the_score_strip(window):
    """Item 7: a one-slice study was labelled 0.6 ... 1.4."""
    volume, lung, lesion = synthetic_volume(n_slices=1, size=64, seed=1)
    lesion[0, 28:36, 20:28] = 1  # a lesion on the slice
    window.state.set_volume(volume)
    result = synthetic_result(volume, lung, lesion, cam_size=8)
    result.slice_score, result.classifier_probability = "joint", result.slice_probability * 0.5
    window.state.set_result(result)
    axis = window.score_strip.getPlotItem().getAxis("bottom")
    assert axis._tickLevels == [[(1, "1")]]  # the ticks drawn (pyqtgraph keeps set ticks there)
    summary = window.summary_panel.browser.toPlainText()
    assert "no patient threshold (a single slice)" in summary and "more than 0 slices" not in summary
    assert " of 1 slice positive" in summary
    # Its score and the classifier's probability are dots: a line through one point draws nothing.
    dots = np.array(sorted(tuple(spot.pos()) for spot in window.score_strip.lone.points()))
    expected = sorted([(1.0, float(result.slice_probability[0])), (1.0, float(result.classifier_probability[0]))])
    assert dots.shape == (2, 2) and np.allclose(dots, expected)
    edges, area = window.score_strip.area_curve.getData()  # the lesion area: a bar one slice wide
    assert list(edges) == [0.5, 1.5] and list(area) == [1.0]
    many, lung, lesion = synthetic_volume(n_slices=40, size=64, seed=1)
    window.state.set_volume(many)
    assert axis._tickLevels is None  # a longer study: pyqtgraph's own whole-number spacing


def test_a_grey_level_export_read_back_in_hu_says_its_hu_are_estimated(window, tmp_path):
    """An 8-bit NIfTI of a chest through a lung window is read back in HU (jcs_viewer.io.hu_estimate): the lung
    preset shows it as a CT, and the corner and the cursor say the HU are estimates, not the scanner's."""
    import numpy as np
    import SimpleITK as sitk

    from jcs_viewer.io import load_study
    from jcs_viewer.io.phantom import make_phantom

    hu = make_phantom(n_slices=12, size=128, seed=2).to_volume().array
    grey = np.clip(np.rint((hu.astype(np.float32) + 1000) / 1200 * 255), 0, 255).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(grey), str(tmp_path / "export.nii.gz"))
    volume = load_study(tmp_path / "export.nii.gz")
    window.state.set_volume(volume)
    assert window.state.levels == (-1350.0, 150.0)  # the lung preset, in HU
    assert "(estimated HU)" in _shown(window)["bottom_right"]
    window.slice_view.scene().sigMouseMoved.emit(window.slice_view.voxel_to_scene(64, 64))
    assert f"est. HU {int(volume.array[window.state.z, 64, 64])}" in window.cursor_label.text()


def test_a_scored_slice_between_slices_without_lung_is_a_dot():
    from jcs_viewer.gui.score_strip import lone_points

    values = np.array([np.nan, 0.3, np.nan, 0.5, 0.6, np.nan, 0.2])
    assert lone_points(values).tolist() == [False, True, False, False, False, False, True]
    assert not lone_points(np.zeros(0)).any() and lone_points(np.array([0.7])).tolist() == [True]
