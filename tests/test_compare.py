"""Follow-up comparison (issue 19, item 5): a prior study registered to the current one by the lungs, slices paired
through the registration, lesion volume and involvement per lung then and now: in the pipeline, ``analyze --prior``
(comparison.json, the report's Comparison section), on the phantom's follow-ups and on real patients' two studies."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import shared_data_path
from jcs_viewer.cli import main
from test_export_support import require_tools

NY_SBU_AXIAL = ("covid19_ny_sbu_dicom_slices", "A002304", "axial")


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """The phantom patient, and the same patient 21 days later (lesions 1.5x, lying 12 mm further along the
    table) and 40 days later (lesions 0.5x)."""
    from jcs_viewer.io.phantom import write_demo_study

    root = tmp_path_factory.mktemp("follow-up")
    common = {"seed": 3, "n_slices": 24, "size": 128}
    return {"base": write_demo_study(root / "base", **common) / "dicom",
            "grown": write_demo_study(root / "grown", follow_up_days=21, lesion_scale=1.5, **common) / "dicom",
            "shrunk": write_demo_study(root / "shrunk", follow_up_days=40, lesion_scale=0.5, **common) / "dicom"}


@pytest.fixture(scope="module")
def analysed(studies):
    from jcs_viewer.io import load_study
    from jcs_viewer.pipeline import analyze
    from jcs_viewer.pipeline.runner import load_models

    models = load_models()
    out = {}
    for name, path in studies.items():
        volume = load_study(path)
        out[name] = (volume, analyze(volume, models=models))
    return out


def test_the_follow_up_is_registered_by_the_lungs_and_the_change_is_measured(analysed):
    from jcs_viewer.pipeline.compare import compare

    base, grown, shrunk = analysed["base"], analysed["grown"], analysed["shrunk"]
    assert grown[0].origin[2] - base[0].origin[2] == pytest.approx(12.0)  # the patient moved, the slices did not
    c = compare(*grown, *base)
    # The current (fixed) point maps to the prior 12 mm lower, without rotation: slice z shows slice z.
    assert c.translation_mm[2] == pytest.approx(-12.0, abs=1.5)
    assert max(abs(v) for v in c.translation_mm[:2]) < 1.0 and max(abs(a) for a in c.rotation_deg) < 1.0
    np.testing.assert_array_equal(c.prior_slice, np.arange(grown[0].n_slices))
    assert (c.prior_date, c.current_date, c.days) == ("2020-03-15", "2020-04-05", 21) and c.notes == ()
    then, now = c.lesion_ml["total"]
    assert then == pytest.approx(float(base[1].quant.lesion_volume_ml["total"]))
    assert now > 1.5 * then > 0  # lesions 1.5x across: about 3x the volume
    assert c.change("involvement_percent", "total") > 0
    assert {row[0] for row in c.rows()} >= {"Lesion volume, right lung", "Involvement, both lungs"}
    smaller = compare(*shrunk, *base)
    assert smaller.lesion_ml["total"][1] < 0.6 * then and smaller.change("lesion_ml", "total") < 0
    assert smaller.days == 40
    # Backwards (the later scan given as the prior): the change reads backwards and says so.
    backwards = compare(*base, *grown)
    assert backwards.days == -21 and any("later one" in note for note in backwards.notes)
    assert backwards.translation_mm[2] == pytest.approx(12.0, abs=1.5)


def test_a_study_without_lungs_cannot_be_compared(analysed):
    import dataclasses

    from jcs_viewer.pipeline.compare import compare

    volume, result = analysed["base"]
    no_lungs = dataclasses.replace(result, lung_mask=np.zeros_like(result.lung_mask))
    from jcs_viewer.errors import NotComparable

    with pytest.raises(NotComparable, match="no lungs to register by"):
        compare(volume, result, volume, no_lungs)


def test_the_reader_s_edited_mask_is_the_current_in_the_exported_comparison(analysed, tmp_path):
    from jcs_viewer.pipeline.compare import compare
    from jcs_viewer.report import export_all

    volume, result = analysed["grown"]
    c = compare(volume, result, *analysed["base"])
    written = export_all(result, volume, tmp_path, report=False, segmentation=False, comparison=c,
                         edited_mask=np.zeros_like(result.lesion_mask))  # the reader erased every lesion
    doc = json.loads(written["comparison"].read_text())
    assert doc["lesion_ml"]["total"] == [pytest.approx(c.lesion_ml["total"][0]), 0.0]
    assert doc["days"] == 21 and len(doc["translation_mm"]) == 3


def test_analyze_prior_writes_comparison_json_and_the_report_section(studies, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(studies["grown"]), "--prior", str(studies["base"]), "--out", str(out), "--report",
                 "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Comparison with the prior study, 2020-03-15 → 2020-04-05 (21 days)" in printed
    assert "Lesion volume, both lungs" in printed
    doc = json.loads((out / "comparison.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert doc["lesion_ml"]["total"][1] == pytest.approx(results["lesion_volume_ml"]["total"])
    assert doc["lesion_ml"]["total"][1] > doc["lesion_ml"]["total"][0] > 0
    require_tools("pdftotext")
    text = subprocess.run(["pdftotext", str(out / "report.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Comparison" in text and "registered by the lungs" in text and "Involvement, left lung" in text


def test_analyze_prior_refuses_what_it_cannot_compare(studies, tmp_path, capsys):
    assert main(["analyze", str(studies["grown"]), "--prior", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "Prior study" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["analyze", str(studies["grown"].parent.parent), "--prior", str(studies["base"]), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--prior is compared with one study" in err and "Traceback" not in err


def test_two_real_single_slices_of_one_patient_are_paired_in_plane_with_a_note(tmp_path, capsys):
    folder = shared_data_path(*NY_SBU_AXIAL)
    if not folder.is_dir():
        pytest.skip("../shared/data/covid19_ny_sbu_dicom_slices is not here")
    prior, current = sorted(folder.glob("*.dcm"))  # 1900-12-31 and 1901-01-12 (shifted dates)
    out = tmp_path / "out"
    assert main(["analyze", str(current), "--prior", str(prior), "--out", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["days"] == 12
    assert any(note.startswith("Both studies have only 1 slice(s)") for note in doc["notes"])
    then, now = doc["involvement_percent"]["total"]
    assert 0 < then < 100 and 0 < now < 100  # consolidated lung in both, measured on its slice
    assert "paired in order" in capsys.readouterr().out
