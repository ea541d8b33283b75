"""File ▸ Export Report / Export Segmentation from the real main window (pytest-qt, offscreen)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result, synthetic_volume  # noqa: E402
from jcs_viewer.settings import SettingsStore  # noqa: E402
from test_export_support import require_tools  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    volume, lung, lesion = synthetic_volume(n_slices=24, size=96, seed=5)
    settings = SettingsStore(tmp_path / "settings.ini")
    settings.update(auto_analyze=True, session_restore="never")

    def analyze(vol, options=None, progress=None, cancel=None, models=None):
        return synthetic_result(vol, lung, lesion, cam_size=16)

    win = MainWindow(settings=settings, analyze=analyze, load_study=lambda path, series_uid=None: volume)
    qtbot.addWidget(win)
    win.show()
    win.open_path(tmp_path / "study.nii.gz")
    qtbot.waitUntil(lambda: win.editing.session is not None, timeout=20000)
    return win


def test_export_before_analysis_says_so(qtbot, tmp_path):
    win = MainWindow(settings=SettingsStore(tmp_path / "s.ini"))
    qtbot.addWidget(win)
    win.exports.export_report(path=tmp_path / "r.pdf")
    assert "no result to export" in win.last_error
    assert not (tmp_path / "r.pdf").exists()


def test_report_carries_the_reader_edits(qtbot, window, tmp_path):
    session = window.editing.session
    with session.labels.stroke("brush"):
        session.labels.paint_disk(12, (48, 30), 6, 1)
    session.reviewer = "Dr Export"
    out = tmp_path / "report.pdf"
    window.exports.export_report(path=out, anonymize=False, with_segmentation=False)
    qtbot.waitUntil(lambda: "report" in window.exports.last_written, timeout=60000)
    assert out.read_bytes()[:5] == b"%PDF-"
    require_tools("pdftotext")
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
    assert "Dr Export" in text
    assert "edited" in text.lower()


def test_segmentation_export_writes_the_edited_mask(qtbot, window, tmp_path):
    import SimpleITK as sitk

    session = window.editing.session
    with session.labels.stroke("brush"):
        session.labels.paint_disk(10, (40, 40), 5, 1)
    expected = (session.labels.data > 0).astype(np.uint8)
    window.exports.export_segmentation(folder=tmp_path / "seg")
    qtbot.waitUntil(lambda: bool("lesion_nifti" in window.exports.last_written or window.last_error), timeout=60000)
    assert window.last_error is None, window.last_error
    written = window.exports.last_written
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(written["lesion_nifti"])))
    np.testing.assert_array_equal(mask > 0, expected > 0)
    assert "lesion_seg" not in written  # a NIfTI-like study has no DICOM source for a SEG ...
    assert "No lesion_seg.dcm: DICOM SEG needs a DICOM source" in window.last_status  # ... and the reader is told
    assert (tmp_path / "seg" / "per_slice.csv").exists()
    # Issue 19, item 7: the next export dialog starts where this export went, not in the home folder.
    assert window.settings.values.export_dir == str(tmp_path / "seg")
    assert window.exports._default_folder() == tmp_path / "seg"


def test_unwritable_target_is_one_sentence(qtbot, window, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    window.exports.export_report(path=blocker / "r.pdf", with_segmentation=False)
    qtbot.waitUntil(lambda: bool(window.last_error and "r.pdf" in window.last_error), timeout=60000)
    assert "Traceback" not in window.last_error and "\n" not in window.last_error


def test_the_reviewer_typed_in_the_report_dialog_is_kept_for_the_next_report(qtbot, window, tmp_path):
    """Issue 19, item 7: the name typed in File > Export Report was forgotten by the next report."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from jcs_viewer.gui.export_actions import ReportDialog
    from jcs_viewer.settings import SettingsStore

    seen = []

    def answer(path, reviewer=None):
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ReportDialog)
        seen.append(dialog.reviewer_edit.text())
        dialog.path_edit.setText(str(path))
        if reviewer is not None:
            dialog.reviewer_edit.setText(reviewer)
        dialog.accept()

    first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"
    QTimer.singleShot(0, lambda: answer(first, "Dr Kept"))
    window.exports.export_report()
    qtbot.waitUntil(lambda: first.is_file() and not window.busy, timeout=60000)
    assert window.settings.values.reviewer_name == "Dr Kept"
    assert SettingsStore(window.settings.path).values.reviewer_name == "Dr Kept"  # on disk, for the next start
    QTimer.singleShot(0, lambda: answer(second))
    window.exports.export_report()
    qtbot.waitUntil(lambda: second.is_file() and not window.busy, timeout=60000)
    assert seen == ["", "Dr Kept"]  # the second dialog starts with the name typed in the first
