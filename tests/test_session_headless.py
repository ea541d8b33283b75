"""``jcs-viewer analyze --session FILE``: the reader's edited mask and review drive every output."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from jcs_viewer.session.headless import apply_session_file
from jcs_viewer.session.store import SessionError, SessionState, save_session, study_key
from jcs_viewer.session.study_session import StudySession
from test_session_study import make_study


def test_apply_session_file_requantifies_from_the_edited_mask(tmp_path):
    volume, ai = make_study()
    ai_mask = ai.lesion_mask.copy()
    session = StudySession(volume, ai)
    with session.labels.stroke("brush"):
        session.labels.paint_disk(5, (50, 30), 5, 1)
    session.review.reject(12)
    session.set_notes("check LLL")
    path = save_session(session.snapshot(), tmp_path / "s.jcssession")

    _, fresh = make_study()  # the same study analysed again, headless
    out = apply_session_file(fresh, volume, path)
    np.testing.assert_array_equal(out.result.lesion_mask, session.labels.data)
    np.testing.assert_array_equal(out.ai_result.lesion_mask, ai_mask)
    assert out.edited_slices == [5] and out.review == {12: "rejected"} and out.notes == "check LLL"
    assert out.result.quant.lesion_volume_ml["total"] > fresh.quant.lesion_volume_ml["total"]
    assert out.result.quant == session.quant  # the same numbers as the viewer showed live
    assert "edited by the reader on 1 slice" in out.result.messages[-1]
    assert out.report_kwargs()["result"] is fresh


def test_session_of_another_study_or_shape_is_refused(tmp_path):
    volume, ai = make_study()
    other = save_session(SessionState(edited_mask=np.zeros((3, 4, 5), np.uint8), study_key="x" * 24),
                         tmp_path / "other.jcssession")
    with pytest.raises(SessionError, match="other.jcssession belongs to a different study"):
        apply_session_file(ai, volume, other)
    # An empty key matched any study of the same size: the mask of one patient went onto another's outputs.
    keyless = save_session(SessionState(edited_mask=np.zeros(volume.shape, np.uint8)), tmp_path / "keyless.jcssession")
    with pytest.raises(SessionError, match=r"keyless.jcssession names no study \(its study key is empty\)"):
        apply_session_file(ai, volume, keyless)
    bad = save_session(SessionState(edited_mask=np.zeros((3, 4, 5), np.uint8), study_key=study_key(volume)),
                       tmp_path / "bad.jcssession")
    with pytest.raises(SessionError, match="does not fit"):
        apply_session_file(ai, volume, bad)
    with pytest.raises(SessionError, match="no session file"):
        apply_session_file(ai, volume, tmp_path / "missing.jcssession")


def test_analyze_cli_uses_the_session_for_every_output(tmp_path, monkeypatch):
    import SimpleITK as sitk

    from jcs_viewer.cli import main
    from jcs_viewer.io import load_study
    from jcs_viewer.io.phantom import write_demo_study
    from jcs_viewer.pipeline.quantify import quantify
    from test_pipeline_support import register_tiny_weights

    weights = tmp_path / "weights"
    weights.mkdir()
    register_tiny_weights(weights)
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(weights))
    monkeypatch.setenv("XDG_DATA_HOME", str(weights / "no-user-weights"))
    study = write_demo_study(tmp_path / "patient_s", n_slices=10, size=128, seed=7)
    args = [str(study), "--device", "cpu", "--all-slices", "--threshold", "2", "--quiet"]
    assert main(["analyze", *args, "--out", str(tmp_path / "ai")]) == 0

    # The reader's session: the AI mask plus a painted blob on slice 4, slice 6 rejected.
    volume = load_study(study)
    ai_mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "ai" / "lesion_mask.nii.gz"))).astype(np.uint8)
    edited = ai_mask.copy()
    edited[4, 60:70, 30:42] = 1
    path = save_session(SessionState(edited_mask=edited, review={6: "rejected"}, notes="blob added",
                                     reviewer="Dr C", study_key=study_key(volume)), tmp_path / "s.jcssession")
    out = tmp_path / "edited"
    assert main(["analyze", *args, "--out", str(out), "--session", str(path), "--report"]) == 0

    written = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lesion_mask.nii.gz")))
    np.testing.assert_array_equal(written, edited)
    doc = json.loads((out / "results.json").read_text())
    lung = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lung_mask.nii.gz"))).astype(np.uint8)
    expected = quantify(volume, lung, edited)
    assert doc["lesion_volume_ml"]["total"] == pytest.approx(expected.lesion_volume_ml["total"])
    assert doc["options"]["session"]["edited_slices"] == [4]
    rows = list(csv.DictReader((out / "per_slice.csv").open()))
    assert rows[6]["review_state"] == "rejected" and rows[5]["review_state"] == "unreviewed"
    assert float(rows[4]["lesion_area_mm2"]) == pytest.approx(expected.per_slice_area_mm2[4], abs=1e-3)
    assert (out / "report.pdf").stat().st_size > 1000

    other = tmp_path / "other"
    assert main(["analyze", *args, "--out", str(other), "--session", str(tmp_path / "none.jcssession")]) == 2
    assert not (other / "results.json").exists()
