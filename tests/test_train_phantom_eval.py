"""``jcs-viewer evaluate phantom``: the shipped-weights checks on the synthetic demo study, with tiny real networks."""

from __future__ import annotations

import json


from jcs_viewer.cli import main


def _run(capsys, *args) -> dict:
    assert main(["evaluate", "phantom", "--slices", "12", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_classifier_and_segmenter_on_the_phantom(registered, capsys):
    cls = _run(capsys, "--model", "cls")
    assert cls["task"] == "cls-phantom" and cls["weights"] == "test-cls" and 0 <= cls["auc"] <= 1
    assert 0 < cls["n_covid"] < cls["n"] <= 12 and 0 <= cls["flagged_lesion_free"] <= 1
    seg = _run(capsys, "--model", "seg")
    assert seg["task"] == "seg-phantom" and seg["true_lesion_ml"] > 0 and 0 <= seg["dice"] <= 1


def test_joint_runs_the_pipeline_on_the_phantom_and_its_twin(registered, capsys):
    joint = _run(capsys, "--model", "joint", "--threshold", "0.0")
    assert joint["weights"] == "test-cls" and joint["seg_weights"] == "test-seg"
    assert set(joint) >= {"joint", "classifier", "lesion_evidence", "decision", "lesion_free_decision"}
    # Cutoff 0: every slice with lung of both studies is positive, so both are positive studies.
    assert joint["joint"]["sensitivity"] == 1.0 and joint["positive_slices"] == joint["scored_slices"] >= 10
    assert joint["decision"] == joint["lesion_free_decision"] == "positive"


def test_gradcam_pointing_on_medseg_masks(registered, tmp_path, capsys):
    from test_train_smoke import _medseg

    _medseg(tmp_path / "medseg_covid19_ct100_jcs")
    assert main(["evaluate", "cam", "--split", "val", "--data-root", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from jcs_viewer.train.splits import medseg_split

    # Only slices with a lesion count: the helper leaves every fifth id lesion-free.
    with_lesion = sum(1 for i in medseg_split("val") if i % 5)
    assert result["task"] == "cls-cam" and result["n"] == with_lesion and result["split"] == "val"
    assert 0.0 <= result["pointing_game"] <= 1.0 and result["mass_ratio"] >= 0.0
