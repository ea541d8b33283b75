"""The whole loop against a live Orthanc: store a study, find it, get it, ``analyze --report --send`` it, then ask
Orthanc for the new series and read them back with highdicom and dciodvfy.

Two studies (the synthetic demo, and the real 3-slice chest CT of ``../shared/data/ct_3slice_dcmqi``) over
both protocols (DIMSE and DICOMweb); the demo goes once more with ``--anonymize``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import shared_data_path
from jcs_viewer.cli import main
from jcs_viewer.io import write_demo_study
from jcs_viewer.pacs.client import find_studies
from jcs_viewer.pipeline.result import StudyResult
from orthanc_server import orthanc, require_dicomweb  # noqa: F401 - fixture
from test_export_support import dciodvfy, require_tools


def address(server, protocol: str) -> str:
    if protocol == "dicomweb":
        require_dicomweb()
    return server.dimse if protocol == "dimse" else server.dicomweb


def demo_study(root: Path) -> list[Path]:
    write_demo_study(root, n_slices=16, seed=5, size=64)
    return sorted((root / "dicom").glob("*.dcm"))


def real_study(root: Path) -> list[Path]:
    return sorted(shared_data_path("ct_3slice_dcmqi").glob("*.dcm"))


def sr_values(path: Path) -> dict:
    """Tracking label -> {measurement meaning: (value, unit)}, and the decision with its reason."""
    import highdicom as hd

    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    out: dict = {}
    for group in sr.content.get_image_measurement_groups():
        label = group.tracking_identifier
        out[label] = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        for evaluation in group.get_qualitative_evaluations():
            out["decision"] = evaluation.value.meaning
        for item in group[0].ContentSequence:
            if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeMeaning == "Comment":
                out["reason"] = item.TextValue
            if item.ValueType == "CONTAINER":  # the algorithm's parameters (TID 4019) sit in the group
                pass
    out["algorithm"] = [str(i.TextValue) for i in _walk(sr) if i.get("ValueType") == "TEXT"
                        and i.ConceptNameCodeSequence[0].CodeMeaning in ("Algorithm Name", "Algorithm Version",
                                                                         "Algorithm Parameters")]
    return out


def _walk(ds):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _walk(item)


def check_dciodvfy(path: Path) -> None:
    require_tools("dciodvfy")
    errors, _warnings = dciodvfy(path)
    assert errors == [], (path.name, errors)


CASES = [("demo", "dimse", False), ("demo", "dicomweb", False), ("demo", "dimse", True),
         ("real", "dimse", False), ("real", "dicomweb", False)]


@pytest.mark.parametrize("source, protocol, anonymize", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_store_find_get_analyze_send_and_read_back(orthanc, tmp_path, source, protocol, anonymize,
                                                   capsys):  # noqa: F811
    import highdicom as hd

    server = address(orthanc, protocol)
    files = demo_study(tmp_path / "src") if source == "demo" else real_study(tmp_path)
    orthanc.clear()
    orthanc.upload(files)
    original = pydicom.dcmread(files[0], stop_before_pixels=True)
    study_uid = str(original.StudyInstanceUID)

    rows = find_studies(server, patient_id=str(original.PatientID))
    assert [r["StudyInstanceUID"] for r in rows] == [study_uid]
    got = tmp_path / "got"
    assert main(["pacs", "get", "--server", server, "--study-uid", study_uid, "--out", str(got), "--quiet"]) == 0
    out = tmp_path / "out"
    argv = ["analyze", str(got), "--out", str(out), "--report", "--send", server, "--device", "cpu", "--quiet"]
    assert main(argv + (["--anonymize"] if anonymize else [])) == 0
    printed = capsys.readouterr().out
    assert "Sent lesion_seg.dcm, results_sr.dcm, report_pdf.dcm" in printed
    result = StudyResult.load(out)

    # Orthanc holds three new series in the study (a pseudonymous one when anonymised).
    sr_file = pydicom.dcmread(out / "results_sr.dcm", stop_before_pixels=True)
    target_study = study_uid if not anonymize else str(sr_file.StudyInstanceUID)
    assert (target_study != study_uid) == anonymize
    series = orthanc.series_of_study(target_study)
    modalities = sorted(s["Modality"] for s in series)
    assert modalities == (["CT", "DOC", "SEG", "SR"] if not anonymize else ["DOC", "SEG", "SR"])
    fetched = {}
    for s in series:
        if s["Modality"] != "CT":
            assert len(s["Instances"]) == 1
            fetched[s["Modality"]] = tmp_path / f"from_orthanc_{s['Modality']}.dcm"
            fetched[s["Modality"]].write_bytes(orthanc.instance_file(s["Instances"][0]))
    series_uids = {pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in fetched.values()}
    assert len(series_uids) == 3  # a new series each

    # SEG: highdicom reads it back onto the retrieved slices.
    seg = hd.seg.segread(fetched["SEG"])
    labels = [seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()]
    assert labels[0] in ("Lesion", "Ground-glass opacity") and "Right lung" in labels
    if not anonymize:
        sources = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in got.glob("*.dcm")),
                         key=lambda d: float(d.ImagePositionPatient[2]))
        pixels = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in sources], combine_segments=False)
        lung_right = pixels[..., labels.index("Right lung")] > 0
        assert lung_right.sum() == (result.lung_mask == 1).sum()

    # SR: the quantities of results.json, in mL and %, the decision with its reason, the models by name.
    values = sr_values(fetched["SR"])
    q = result.quant
    for label, key in (("Right lung", "right"), ("Left lung", "left"), ("Both lungs", "total")):
        value, unit = values[label]["Volume"]
        assert unit == "ml" and value == pytest.approx(q.lung_volume_ml[key], rel=1e-6)
        if result.lesions_measured:
            lesion = values[f"Lesions, {label.lower()}"]
            assert lesion["Volume"][0] == pytest.approx(q.lesion_volume_ml[key], rel=1e-6, abs=1e-9)
            assert lesion["Lung involvement (lesion volume / lung volume)"][1] == "%"
            assert lesion["Lung involvement (lesion volume / lung volume)"][0] == pytest.approx(
                q.involvement_percent[key], rel=1e-6, abs=1e-9)
    assert values["decision"].lower() == result.decision
    assert values["reason"]
    assert any(result.models["cls"]["name"] in line for line in values["algorithm"])
    for modality in ("SEG", "SR", "DOC"):
        ds = pydicom.dcmread(fetched[modality], stop_before_pixels=modality != "DOC")
        assert ds.StudyInstanceUID == target_study
        if anonymize:
            assert ds.PatientID == "ANONYMOUS" and str(original.PatientID) not in str(ds)
        else:
            assert (ds.PatientID, ds.PatientName) == (original.PatientID, original.PatientName)
    pdf = pydicom.dcmread(fetched["DOC"])
    assert pdf.MIMETypeOfEncapsulatedDocument == "application/pdf"
    document = bytes(pdf.EncapsulatedDocument)[: int(pdf.EncapsulatedDocumentLength)]
    assert document == (out / "report.pdf").read_bytes()
    for modality in ("SR", "SEG", "DOC"):
        check_dciodvfy(fetched[modality])
    assert json.loads((out / "results.json").read_text())["decision"] == result.decision
    assert np.any(result.lung_mask)
