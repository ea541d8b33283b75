"""File ▸ Open Prior Study for Comparison (issue 19, item 5) in the real window (pytest-qt, offscreen): the prior
beside the current images, scrolling and window/level linked through the registration, the Comparison tab, the
report's section; on the phantom's follow-up and on a real patient's two studies."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from conftest import shared_data_path
from test_export_support import require_tools

pytest.importorskip("pytestqt")

from helpers_gui import open_window  # noqa: E402
from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.settings import SettingsStore  # noqa: E402


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    from jcs_viewer.io.phantom import write_demo_study

    root = tmp_path_factory.mktemp("follow-up")
    common = {"seed": 4, "n_slices": 20, "size": 128}
    return (write_demo_study(root / "base", **common) / "dicom",
            write_demo_study(root / "later", follow_up_days=30, lesion_scale=1.6, **common) / "dicom")


def _window(qtbot, tmp_path, monkeypatch, study):
    window = open_window(qtbot, tmp_path, monkeypatch, auto_analyze=True)
    window.open_path(study)
    qtbot.waitUntil(lambda: bool(window.state.result is not None or window.last_error), timeout=120000)
    assert window.last_error is None, window.last_error
    return window


def _open_prior(qtbot, window, path):
    window.prior.open_prior(path)
    qtbot.waitUntil(lambda: bool(window.prior.comparison is not None or window.last_error), timeout=120000)
    assert window.last_error is None, window.last_error
    return window.prior.pane


def test_the_prior_opens_beside_the_current_study_linked_through_the_registration(qtbot, tmp_path, monkeypatch,
                                                                                  follow_up):
    base, later = follow_up
    window = _window(qtbot, tmp_path, monkeypatch, later)
    pane = _open_prior(qtbot, window, base)
    comparison = window.prior.comparison
    # Beside the current images, in the same row.
    assert pane.isVisible() and window.prior.split.indexOf(window.views.panel) == 0
    assert pane.state.volume.info.study_date == "20200315" and "Prior 2020-03-15" in pane.title.text()
    # Scrolling the current study moves the prior to the registered slice, and back.
    window.state.set_slice(7)
    assert pane.state.z == comparison.prior_slice[7] == 7
    pane.state.set_slice(12)
    assert window.state.z == 12
    window.state.set_window(400, 40, "mediastinum")
    assert pane.state.window == (400, 40)
    window.state.set_layers(cam_visible=False)
    assert pane.state.layers.cam_visible is False
    pane.link_box.setChecked(False)  # unlinked: each scrolls alone
    window.state.set_slice(3)
    assert pane.state.z == 12
    # The Comparison tab: then, now, change per lung.
    panel = window.prior.panel
    assert window.side_tabs.currentWidget() is panel
    cells = {panel.table.item(r, 0).text(): [panel.table.item(r, c).text() for c in (1, 2, 3)]
             for r in range(panel.table.rowCount())}
    then, now = comparison.lesion_ml["total"]
    assert cells["Lesion volume, both lungs"] == [f"{then:.1f} mL", f"{now:.1f} mL", f"{now - then:+.1f} mL"]
    assert now > then > 0 and "(30 days)" in panel.header.text()
    # The report carries the comparison.
    out = tmp_path / "report.pdf"
    window.exports.export_report(path=out, anonymize=False, with_segmentation=False)
    qtbot.waitUntil(lambda: bool("report" in window.exports.last_written or window.last_error), timeout=60000)
    assert window.last_error is None, window.last_error
    require_tools("pdftotext")
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
    assert "Comparison" in text and "2020-03-15 → 2020-04-14 (30 days)" in text
    # Another study: the prior belonged to this one and goes.
    window.open_path(base)
    qtbot.waitUntil(lambda: window.prior.pane is None, timeout=60000)
    tabs = [window.side_tabs.tabText(i) for i in range(window.side_tabs.count())]
    assert "Comparison" not in tabs and window.prior.comparison is None and window.prior.panel is None
    assert window.views.panel.parentWidget() is window.image_split


def test_a_prior_before_any_result_and_a_prior_without_lungs_are_one_sentence(qtbot, tmp_path, monkeypatch,
                                                                               follow_up):
    base, later = follow_up
    window = MainWindow(settings=SettingsStore(tmp_path / "s.ini"))
    qtbot.addWidget(window)
    window.prior.open_prior(base)
    assert "Analyse the current study before" in window.last_error
    window = _window(qtbot, tmp_path, monkeypatch, later)
    window.prior.open_prior(tmp_path / "nowhere")
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=60000)
    assert "Traceback" not in window.last_error and window.prior.pane is None
    ct = shared_data_path("real_ct_small", "totalsegmentator", "example_ct_sm.nii.gz")
    if ct.is_file():  # the real abdomen below the TotalSegmentator volume's lung bases: no lungs to register by
        import SimpleITK as sitk

        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(ct.with_name("example_seg.nii.gz"))))
        first_lung = int(np.flatnonzero(np.isin(seg, [10, 11, 12, 13, 14]).any(axis=(1, 2))).min())
        sitk.WriteImage(sitk.ReadImage(str(ct))[:, :, :first_lung], str(tmp_path / "abdomen.nii.gz"))
        window.last_error = None
        window.prior.open_prior(tmp_path / "abdomen.nii.gz")
        qtbot.waitUntil(lambda: window.last_error is not None, timeout=120000)
        assert "cannot be compared" in window.last_error and window.prior.pane is None


def test_a_real_patient_s_two_studies_side_by_side(qtbot, tmp_path, monkeypatch):
    folder = shared_data_path("covid19_ny_sbu_dicom_slices", "A046441", "axial")
    if not folder.is_dir():
        pytest.skip("../shared/data/covid19_ny_sbu_dicom_slices is not here")
    prior, current = sorted(folder.glob("*.dcm"))
    window = _window(qtbot, tmp_path, monkeypatch, current)
    pane = _open_prior(qtbot, window, prior)
    comparison = window.prior.comparison
    assert comparison.days is not None and comparison.days > 0
    np.testing.assert_array_equal(comparison.prior_slice, [0])
    assert "paired in order" in window.prior.panel.notes.text() and pane.state.n_slices == 1
