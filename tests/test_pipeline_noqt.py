"""The pipeline imports and runs headless: PySide6, pyqtgraph and VTK blocked."""

from pathlib import Path

from helpers_noqt import GUI_PACKAGES, TORCH_PACKAGES, run_without

TESTS = Path(__file__).parent


def test_pipeline_runs_without_gui_packages():
    code = """
    import numpy as np
    from jcs_viewer.pipeline import AnalysisOptions, analyze
    from jcs_viewer.cli import analyze_cmd
    from test_pipeline_support import small_phantom, tiny_models
    vol = small_phantom(4, 64, seed=0).to_volume()
    result = analyze(vol, AnalysisOptions(device="cpu", segment_all_slices=True), models=tiny_models())
    assert result.lung_mask.shape == vol.shape
    """
    done = run_without(GUI_PACKAGES, code, extra_path=(TESTS,))
    assert done.returncode == 0, done.stderr
    assert "NOQT-OK" in done.stdout


def test_results_and_quantification_import_without_torch():
    """The session layer re-quantifies and reloads results without loading torch."""
    code = """
    import sys
    import numpy as np
    from jcs_viewer.pipeline import StudyResult, quantify, CancelToken, ProgressEvent
    q = quantify(np.full((3, 8, 8), -850, np.int16), np.ones((3, 8, 8), np.uint8), np.zeros((3, 8, 8), np.uint8),
                 spacing=(1, 1, 1))
    assert q.lesion_volume_ml["total"] == 0.0
    """
    done = run_without(GUI_PACKAGES + TORCH_PACKAGES, code)
    assert done.returncode == 0, done.stderr
    assert "NOQT-OK" in done.stdout


def test_session_edits_and_the_report_work_without_gui_packages(tmp_path):
    """A reader's edits (undo included), the session file and the PDF report: all headless."""
    code = f"""
    import numpy as np
    from jcs_viewer.pipeline import AnalysisOptions, analyze
    from jcs_viewer.report import write_report
    from jcs_viewer.session.store import load_session, save_session
    from jcs_viewer.session.study_session import StudySession
    from test_pipeline_support import small_phantom, tiny_models
    vol = small_phantom(6, 64, seed=0).to_volume()
    result = analyze(vol, AnalysisOptions(device="cpu"), models=tiny_models())
    session = StudySession(vol, result)
    with session.labels.stroke("brush"):
        session.labels.paint_disk(3, (32, 20), 4, 1)
    painted = session.labels.data.copy()
    session.labels.undo()
    session.labels.redo()
    assert np.array_equal(session.labels.data, painted)
    saved = save_session(session.snapshot(), {str(tmp_path / 's.jcssession')!r})
    assert np.array_equal(load_session(saved).edited_mask, painted)
    pdf = write_report(result, vol, {str(tmp_path / 'r.pdf')!r}, edited_mask=painted)
    assert pdf.read_bytes().startswith(b"%PDF")
    """
    done = run_without(GUI_PACKAGES, code, extra_path=(TESTS,))
    assert done.returncode == 0, done.stderr
    assert "NOQT-OK" in done.stdout
