"""``jcs-viewer evaluate studies`` and ``evaluate lungs``: whole-study and lung-mask evaluation."""

from __future__ import annotations

import json

import pytest

from conftest import shared_data_path
from jcs_viewer.cli import main
from jcs_viewer.train.studies_eval import overall, parse_labels, read_manifest


def test_label_lists_and_manifest_errors(tmp_path):
    assert parse_labels("10-14") == [10, 11, 12, 13, 14] and parse_labels("1,5, 6") == [1, 5, 6]
    assert parse_labels("") is None
    bad = tmp_path / "bad.csv"
    bad.write_text("path,expected\nstudy,maybe\n")
    with pytest.raises(Exception, match="line 2: expected must be one of positive, negative, not assessable"):
        read_manifest(bad)
    (tmp_path / "cols.csv").write_text("file,label\nx,y\n")
    with pytest.raises(Exception, match="needs the columns path and expected"):
        read_manifest(tmp_path / "cols.csv")


def test_overall_counts_not_assessable_apart():
    rows = [{"expected": "positive", "decision": "positive"}, {"expected": "positive", "decision": "not assessable"},
            {"expected": "negative", "decision": "not assessable", "false_positive_lesion_ml": 0.4},
            {"expected": "negative", "decision": "positive", "false_positive_lesion_ml": 12.0, "lung_dice": 0.9},
            {"expected": "not assessable", "decision": "not assessable", "lung_dice": 0.8}]
    figures = overall(rows)
    assert figures["sensitivity"] == 0.5 and figures["specificity"] == 0.5
    assert figures["not_assessable_agreement"] == 1.0 and figures["mean_lung_dice"] == pytest.approx(0.85)
    assert figures["max_false_positive_lesion_ml"] == 12.0 and figures["n"] == 5


def test_evaluate_studies_runs_the_analysis_and_scores_masks(registered, tmp_path, capsys):
    from jcs_viewer.io.phantom import write_demo_study

    write_demo_study(tmp_path / "demo", n_slices=12, size=128, seed=3)  # the manifest names it relatively
    twin = write_demo_study(tmp_path / "twin", n_slices=12, size=128, seed=3, lesions=False)
    manifest = tmp_path / "studies.csv"
    manifest.write_text(
        "path,expected,lung_mask,lesion_mask\n"
        "demo/dicom,positive,demo/ground_truth/lung_mask.nii.gz,demo/ground_truth/lesion_mask.nii.gz\n"
        f"{twin / 'dicom'},negative,{twin / 'ground_truth' / 'lung_mask.nii.gz'},\n"
        "missing/study,negative,,\n")
    assert main(["evaluate", "studies", "--manifest", str(manifest), "--device", "cpu"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    demo_row, twin_row, missing = doc["studies"]
    assert demo_row["decision"] in ("positive", "negative", "not assessable")
    assert demo_row["lung_dice"] >= 0.97 and twin_row["lung_dice"] >= 0.97  # the HU lungs on the phantom
    assert 0.0 <= demo_row["lesion_dice"] <= 1.0 and "false_positive_lesion_ml" in twin_row
    assert missing["decision"] == "error" and "does not exist" in missing["error"]
    assert doc["n"] == 3 and doc["errors"] == 1 and doc["mean_lung_dice"] >= 0.97


def test_evaluate_lungs_on_held_out_ct_seg_volumes(capsys):
    shared_data_path("covid19_ct_seg20_slices")
    assert main(["evaluate", "lungs", "--split", "test"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["task"] == "lungs" and doc["intensity"] == "clahe" and doc["n"] > 100
    assert len(doc["per_volume_group"]) == 2
    for group in doc["per_volume_group"].values():
        assert group["dice_pooled"] >= 0.95  # a volume's lung Dice


def test_medseg_slices_read_as_one_slice_stacks(capsys):
    """``evaluate stacks --dataset medseg``: each MedSeg slice of the split through the whole analysis, its lesion
    Dice and the net that read it; the whole-data split is CT-Seg's only, said in one sentence."""
    shared_data_path("medseg_covid19_ct100_jcs")
    assert main(["evaluate", "stacks", "--dataset", "medseg", "--split", "val", "--device", "cpu"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [row["slice"] for row in doc["slices"]] == [f"tr_im_{i:04d}.png" for i in range(40, 48)]
    assert all(0.0 <= row["lesion_dice"] <= 1.0 and row["seg_weights"] for row in doc["slices"])
    assert doc["mean_lesion_dice"] == pytest.approx(sum(r["lesion_dice"] for r in doc["slices"]) / 8, abs=1e-4)
    assert main(["evaluate", "stacks", "--dataset", "medseg", "--split", "all"]) != 0
    assert "--split all reads the CT-Seg volume groups" in capsys.readouterr().err
