"""`jcs-viewer analyze --report [--anonymize]`: report, DICOM SEG, NIfTI and CSV from one command.

Every output is checked with an independent reader: qpdf and poppler for the PDF, dciodvfy and
highdicom for the SEG, SimpleITK (reading the DICOM series itself) for the NIfTI geometry.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from jcs_viewer.cli import main
from jcs_viewer.io import write_demo_study
from jcs_viewer.pipeline.result import StudyResult
from test_export_support import assert_dciodvfy_clean, require_tools

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    write_demo_study(out, n_slices=24, seed=4, size=128)
    return out / "dicom"


def identifiers(demo: Path) -> list[str]:
    """The source series' patient name parts, ID and accession number (the phantom has no birth date)."""
    ds = pydicom.dcmread(next(demo.glob("*.dcm")), stop_before_pixels=True)
    found = [p for p in str(ds.PatientName).split("^") if p] + [ds.PatientID, ds.AccessionNumber]
    assert len(found) == 4 and all(len(x) >= 4 for x in found), found  # long enough to be searched for
    return found


def pdf_text(path: Path) -> str:
    require_tools("pdftotext", "qpdf", "pdfinfo")
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def sources_in_slice_order(demo: Path) -> list[Path]:
    files = [(pydicom.dcmread(f, stop_before_pixels=True), f) for f in demo.glob("*.dcm")]
    return [f for _, f in sorted(files, key=lambda d: float(d[0].ImagePositionPatient[2]))]


def check_seg_reads_back(path: Path, sources: list[Path], result: StudyResult) -> None:
    import highdicom as hd

    seg = hd.seg.segread(path)
    sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in sources]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=sops, combine_segments=False)
    labels = [seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()]
    assert labels == ["Lesion", "Right lung", "Left lung"]
    assert np.array_equal(pixels[..., 0] > 0, result.lesion_mask > 0)
    assert np.array_equal(pixels[..., 1] > 0, result.lung_mask == 1)
    assert np.array_equal(pixels[..., 2] > 0, result.lung_mask == 2)
    z_of_sop = {sop: z for z, sop in enumerate(sops)}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        sop = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        source = pydicom.dcmread(sources[z_of_sop[sop]], stop_before_pixels=True)
        assert np.allclose([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient],
                           [float(v) for v in source.ImagePositionPatient], atol=1e-3)


def check_seg_by_position(path: Path, sources: list[Path], result: StudyResult) -> None:
    """A de-identified SEG references pseudonymous UIDs (by design): its frames go onto slices by position."""
    seg = pydicom.dcmread(path)
    z_of_position = {round(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]), 3): z
                     for z, f in enumerate(sources)}
    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    rebuilt = np.zeros((len(seg.SegmentSequence),) + result.lesion_mask.shape, bool)
    for frame, group in zip(pixels, seg.PerFrameFunctionalGroupsSequence):
        z = z_of_position[round(float(group.PlanePositionSequence[0].ImagePositionPatient[2]), 3)]
        rebuilt[group.SegmentIdentificationSequence[0].ReferencedSegmentNumber - 1, z] = frame > 0
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Lesion", "Right lung", "Left lung"]
    np.testing.assert_array_equal(rebuilt[0], result.lesion_mask > 0)
    np.testing.assert_array_equal(rebuilt[1], result.lung_mask == 1)
    np.testing.assert_array_equal(rebuilt[2], result.lung_mask == 2)


def check_nifti_geometry(out: Path, sources: list[Path], result: StudyResult) -> None:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in sources])
    ct = reader.Execute()
    for name, expected in (("lesion_mask.nii.gz", result.lesion_mask), ("lung_mask.nii.gz", result.lung_mask)):
        image = sitk.ReadImage(str(out / name))
        assert image.GetSize() == ct.GetSize(), name
        assert np.allclose(image.GetSpacing(), ct.GetSpacing(), atol=1e-5), name
        assert np.allclose(image.GetOrigin(), ct.GetOrigin(), atol=1e-4), name
        assert np.allclose(image.GetDirection(), ct.GetDirection(), atol=1e-6), name
        assert np.array_equal(sitk.GetArrayFromImage(image), expected), name


def test_report_names_the_patient_and_states_decision_and_volumes(demo, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(demo), "--out", str(out), "--report", "--quiet"]) == 0
    result = StudyResult.load(out)
    text = re.sub(r"\s+", " ", pdf_text(out / "report.pdf"))
    assert f"AI decision: COVID-19 {result.decision.upper()}" in text
    assert f"{result.positive_slices} of {result.n_slices} slices flagged" in text
    q = result.quant
    assert f"Lesion volume (mL) {q.lesion_volume_ml['right']:.1f} {q.lesion_volume_ml['left']:.1f} " \
           f"{q.lesion_volume_ml['total']:.1f}" in text
    for ident in identifiers(demo):  # the control for the anonymised run
        assert ident in text, ident
    seg = pydicom.dcmread(out / "lesion_seg.dcm", stop_before_pixels=True)
    assert seg.PatientID == identifiers(demo)[-2]
    check_seg_reads_back(out / "lesion_seg.dcm", sources_in_slice_order(demo), result)  # highdicom, by source UID
    rows = list(csv.DictReader((out / "per_slice.csv").open()))
    assert len(rows) == result.n_slices


def test_anonymised_report_and_seg_hold_no_identifier_and_every_export_checks_out(demo, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(demo), "--out", str(out), "--report", "--anonymize", "--quiet"]) == 0
    for name in ("report.pdf", "lesion_seg.dcm", "lesion_mask.nii.gz", "lung_mask.nii.gz", "per_slice.csv",
                 "results.json"):
        assert (out / name).is_file(), name
    result = StudyResult.load(out)
    sources = sources_in_slice_order(demo)
    check_seg_by_position(out / "lesion_seg.dcm", sources, result)
    check_nifti_geometry(out, sources, result)

    seg = pydicom.dcmread(out / "lesion_seg.dcm")
    assert seg.Modality == "SEG" and seg.PatientID == "ANONYMOUS" and not seg.get("AccessionNumber")
    # Every file of the export, byte by byte, and the PDF with its streams decompressed.
    text = pdf_text(out / "report.pdf")
    qdf = tmp_path / "qdf.pdf"
    subprocess.run(["qpdf", "--qdf", "--object-streams=disable", str(out / "report.pdf"), str(qdf)], check=True)
    info = "".join(subprocess.run(["pdfinfo", *flag, str(out / "report.pdf")], capture_output=True, text=True,
                                  check=True).stdout for flag in ([], ["-meta"]))
    blobs = {p.name: p.read_bytes() for p in out.iterdir()} | {"report.pdf (qdf)": qdf.read_bytes()}
    for ident in identifiers(demo):
        assert ident not in text and ident not in info, ident
        for name, blob in blobs.items():
            assert ident.encode() not in blob, (ident, name)
    assert "anonymised report" in text and "COVID-19" in text
    assert f"{result.quant.lesion_volume_ml['total']:.1f}" in text
    # dciodvfy: no error and no warning (the anonymised name must be a valid PN, not the retired form).
    assert_dciodvfy_clean(out / "lesion_seg.dcm")


def _nifti_study(demo: Path, tmp_path: Path) -> Path:
    import SimpleITK as sitk

    from jcs_viewer.io import load_study

    volume = load_study(demo)
    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(volume.spacing[::-1])
    image.SetOrigin(volume.origin)
    image.SetDirection(volume.direction.ravel().tolist())
    nifti = tmp_path / "study.nii.gz"
    sitk.WriteImage(image, str(nifti))
    return nifti


def _png_study(demo: Path, tmp_path: Path) -> Path:
    from PIL import Image

    from jcs_viewer.io import load_study

    volume = load_study(demo)
    folder = tmp_path / "pngs"
    folder.mkdir()
    grey = np.clip((volume.array.astype(np.float32) + 1350) / 1500 * 255, 0, 255).astype(np.uint8)
    for z, image in enumerate(grey):
        Image.fromarray(image).save(folder / f"slice{z}.png")
    return folder


@pytest.mark.parametrize("make, loaded_from", [(_nifti_study, "a NIfTI file"), (_png_study, "image files")],
                         ids=["nifti", "png-stack"])
def test_report_on_a_non_dicom_study_explains_the_missing_seg(demo, tmp_path, capsys, make, loaded_from):
    study = make(demo, tmp_path)
    out = tmp_path / "out"
    assert main(["analyze", str(study), "--out", str(out), "--report", "--quiet"]) == 0
    assert (out / "report.pdf").is_file() and (out / "lesion_mask.nii.gz").is_file()
    assert not (out / "lesion_seg.dcm").exists()
    said = capsys.readouterr().out
    assert re.search(rf"note: {re.escape(study.name)}: No lesion_seg\.dcm: DICOM SEG needs a DICOM source, "
                     rf"and this study was loaded from {loaded_from}[^\n]*\.\n", said), said
    assumed_voxels_note = "no voxel size: the volumes are counted at the 1 mm voxels assumed"
    assert (assumed_voxels_note in re.sub(r"\s+", " ", pdf_text(out / "report.pdf"))) == (loaded_from == "image files")
    from jcs_viewer.pipeline.result import StudyResult

    doc = json.loads((out / "results.json").read_text())
    assert doc["geometry"]["voxel_size_known"] == (loaded_from != "image files")  # and it reads back
    assert StudyResult.load(out).has_voxel_size == (loaded_from != "image files")
