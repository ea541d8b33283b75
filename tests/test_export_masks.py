"""NIfTI, DICOM SEG and CSV exports: exact geometry, a valid SEG that reads back, atomic writes."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from jcs_viewer.errors import ExportError
from jcs_viewer.io.export import dicom_seg_unavailable, export_csv, export_dicom_seg, export_nifti
from jcs_viewer.io.volume import Volume
from jcs_viewer.report import export_all, write_report
from test_export_support import PATIENT, assert_dciodvfy_clean, dciodvfy, make_study, unwritable_folder  # noqa: F401


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study"), n_slices=10, size=48, classes=True)


def read_seg(path: Path, volume, pseudonyms=None) -> tuple[hd.seg.Segmentation, list[str], np.ndarray]:
    """highdicom's read-back by source instance; a de-identified SEG names its sources by ``pseudonyms``."""
    seg = hd.seg.segread(path)
    sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in volume.source_files]
    if pseudonyms is not None:
        sops = [pseudonyms.uid(sop) for sop in sops]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=sops, combine_segments=False)
    return seg, sops, pixels


# --------------------------------------------------------------------------- NIfTI
def test_nifti_keeps_the_exact_source_geometry(tmp_path):
    rng = np.random.default_rng(1)
    angle = np.deg2rad(12)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    direction = rot @ np.diag([1.0, -1.0, -1.0])  # oblique, with flipped y and z index axes
    volume = Volume(array=np.zeros((7, 9, 11), np.int16), spacing=(2.5, 0.7, 0.8), origin=(-120.25, 33.5, -301.75),
                    direction=direction, source_format="nifti")
    mask = (rng.random(volume.shape) > 0.7).astype(np.uint8) * 2
    path = export_nifti(mask, volume, tmp_path / "lung_mask.nii.gz")
    image = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(image), mask)
    assert np.allclose(image.GetSpacing(), (0.8, 0.7, 2.5), atol=1e-6)
    assert np.allclose(image.GetOrigin(), volume.origin, atol=1e-4)
    assert np.allclose(np.reshape(image.GetDirection(), (3, 3)), direction, atol=1e-6)
    # The same voxel lands on the same LPS point in both conventions.
    z, y, x = 6, 8, 10
    assert np.allclose(image.TransformIndexToPhysicalPoint((x, y, z)), volume.index_to_lps((z, y, x)), atol=1e-3)


def test_nifti_rejects_wrong_shape_and_name(study, tmp_path):
    volume, _ = study
    with pytest.raises(ExportError, match="shape"):
        export_nifti(np.zeros((1, 2, 3), np.uint8), volume, tmp_path / "m.nii.gz")
    with pytest.raises(ExportError, match=r"\.nii or \.nii\.gz"):
        export_nifti(np.zeros(volume.shape, np.uint8), volume, tmp_path / "m.png")


# --------------------------------------------------------------------------- DICOM SEG
def test_dicom_seg_is_valid_and_reads_back_to_the_same_masks_and_positions(study, tmp_path):
    volume, result = study
    path = export_dicom_seg(volume, result.lesion_classes, result.lung_mask, tmp_path / "lesion_seg.dcm")
    seg, sops, pixels = read_seg(path, volume)
    labels = [seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()]
    assert labels == ["Ground-glass opacity", "Consolidation", "Right lung", "Left lung"]
    expected = [result.lesion_classes == 1, result.lesion_classes == 2, result.lung_mask == 1, result.lung_mask == 2]
    for i, mask in enumerate(expected):
        assert np.array_equal(pixels[..., i] > 0, mask), labels[i]
    ggo = seg.get_segment_description(1)
    assert ggo.segmented_property_type.value == "112120" and ggo.algorithm_type.value == "AUTOMATIC"
    right = seg.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0]
    assert right.CodeValue == "39607008" and right.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Right"
    # References the source series, and every frame sits at its source slice's position.
    source = pydicom.dcmread(volume.source_files[0], stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    z_of_sop = {sop: z for z, sop in enumerate(sops)}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        sop = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        ipp = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(ipp, volume.index_to_lps((z_of_sop[sop], 0, 0)), atol=1e-3)
    assert_dciodvfy_clean(path)  # no error and no warning


def test_dciodvfy_check_catches_a_broken_seg(study, tmp_path):
    """The control for every dciodvfy assertion here: a SEG missing required attributes fails it."""
    volume, result = study
    path = export_dicom_seg(volume, result.lesion_mask, result.lung_mask, tmp_path / "seg.dcm")
    broken = pydicom.dcmread(path)
    del broken.SegmentSequence[0].SegmentLabel
    del broken.ContentLabel
    broken.save_as(tmp_path / "broken.dcm")
    errors, _ = dciodvfy(tmp_path / "broken.dcm")
    assert any("SegmentLabel" in e for e in errors) and any("ContentLabel" in e for e in errors), errors


def test_binary_lesion_mask_gives_one_lesion_segment_and_edits_are_semiautomatic(study, tmp_path):
    volume, result = study
    from jcs_viewer.io.deidentify import Pseudonymizer

    pseudonyms = Pseudonymizer()
    path = export_dicom_seg(volume, result.lesion_mask, result.lung_mask, tmp_path / "seg.dcm", edited=True,
                            anonymize=True, pseudonyms=pseudonyms)
    seg, _, pixels = read_seg(path, volume, pseudonyms)
    first = seg.get_segment_description(1)
    assert first.segment_label == "Lesion" and first.segmented_property_type.value == "52988006"
    assert first.algorithm_type.value == "SEMIAUTOMATIC"
    assert first.algorithm_identification[0].AlgorithmName == "JCS Viewer"
    assert np.array_equal(pixels[..., 0] > 0, result.lesion_mask > 0)
    raw = path.read_bytes()
    for ident in (*PATIENT["name"].split("^"), PATIENT["id"], PATIENT["birth"], PATIENT["accession"]):
        assert ident.encode() not in raw
    assert seg.PatientName.family_name == "Anonymous" and seg.PatientID == "ANONYMOUS"
    # The replacement name is a valid PN: a bare "Anonymous" makes dciodvfy warn (retired form).
    assert_dciodvfy_clean(path)


def test_empty_lesion_mask_still_exports(study, tmp_path):
    volume, result = study
    path = export_dicom_seg(volume, np.zeros(volume.shape, np.uint8), result.lung_mask, tmp_path / "seg.dcm")
    _, _, pixels = read_seg(path, volume)
    assert not pixels[..., 0].any() and np.array_equal(pixels[..., 1] > 0, result.lung_mask == 1)
    assert_dciodvfy_clean(path)


@pytest.mark.parametrize("fmt, files, says", [
    ("nifti", ("ct.nii.gz",), "loaded from a NIfTI file"),
    ("images", ("001.png", "002.png"), "loaded from image files"),
    ("mha", ("ct.mha",), "loaded from a MetaImage file"),
    ("synthetic", (), "is a synthetic image"),
    ("dicom", (), "has no DICOM files behind it"),  # e.g. the in-memory phantom
])
def test_dicom_seg_needs_a_dicom_source(study, tmp_path, fmt, files, says):
    volume, result = study
    other = Volume(array=volume.array, spacing=volume.spacing, source_files=tuple(tmp_path / f for f in files),
                   source_format=fmt)
    target = tmp_path / "seg.dcm"
    with pytest.raises(ExportError) as info:
        export_dicom_seg(other, result.lesion_mask, result.lung_mask, target)
    assert re.fullmatch(rf"Cannot write {re.escape(str(target))}: DICOM SEG needs a DICOM source, and this study "
                        rf"[^\n]*{says}[^\n]*\.", str(info.value)), str(info.value)
    assert dicom_seg_unavailable(other) is not None and dicom_seg_unavailable(volume) is None
    assert not target.exists()


@pytest.mark.shared_data
def test_dicom_seg_of_real_ct_slices(tmp_path, shared_data):
    folder = shared_data("ct_3slice_dcmqi")
    files = sorted(folder.glob("*.dcm"))
    headers = sorted(((pydicom.dcmread(f), f) for f in files), key=lambda d: float(d[0].ImagePositionPatient[2]))
    first = headers[0][0]
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d, _ in headers])
    dz = float(headers[1][0].ImagePositionPatient[2]) - float(first.ImagePositionPatient[2])
    row, col = (float(v) for v in first.PixelSpacing)
    volume = Volume(array=hu.astype(np.int16), spacing=(dz, row, col),
                    origin=tuple(float(v) for v in first.ImagePositionPatient),
                    source_files=tuple(f for _, f in headers))
    lung = ((hu > -950) & (hu < -500)).astype(np.uint8)
    lesion = np.zeros_like(lung)
    lesion[1, 200:240, 120:170] = 1
    path = export_dicom_seg(volume, lesion, lung, tmp_path / "seg.dcm")
    seg, _, pixels = read_seg(path, volume)
    assert seg.PatientID == first.PatientID
    assert np.array_equal(pixels[..., 0] > 0, lesion > 0) and np.array_equal(pixels[..., 1] > 0, lung > 0)
    # Values copied from a real source may draw warnings; errors would be ours.
    assert_dciodvfy_clean(path, warnings_allowed=True)


# --------------------------------------------------------------------------- CSV
def test_csv_has_one_row_per_slice_with_the_metrics(study, tmp_path):
    volume, result = study
    review = {1: "confirmed", 4: "rejected"}
    path = export_csv(result, tmp_path / "per_slice.csv", review=review)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == result.n_slices
    for z, row in enumerate(rows):
        assert int(row["slice"]) == z + 1  # numbered from 1, as the viewer and the report number slices
        assert float(row["position_mm"]) == pytest.approx(volume.slice_position_mm(z), abs=0.01)
        assert float(row["probability"]) == pytest.approx(float(result.slice_probability[z]), abs=1e-4)
        assert row["positive"] == str(int(result.slice_positive[z]))
        assert float(row["lesion_area_mm2"]) == pytest.approx(result.lesion_mask[z].sum() * 25.0, abs=0.1)
        assert row["review_state"] == review.get(z, "unreviewed")
        assert float(row["classifier_probability"]) == pytest.approx(float(result.classifier_probability[z]), abs=1e-4)
        if result.lesion_evidence is None:
            assert row["lesion_evidence"] == ""
        else:
            assert float(row["lesion_evidence"]) == pytest.approx(float(result.lesion_evidence[z]), abs=1e-4)


def test_csv_of_a_joint_score_carries_both_parts(study, tmp_path):
    from types import SimpleNamespace

    _, result = study
    n = result.n_slices
    classifier = np.linspace(0.0, 1.0, n, dtype=np.float32)
    evidence = np.linspace(1.0, 0.0, n, dtype=np.float32)
    joint = SimpleNamespace(**{**vars(result), "slice_score": "joint", "classifier_probability": classifier,
                               "lesion_evidence": evidence, "slice_probability": (classifier + evidence) / 2})
    rows = list(csv.DictReader(export_csv(joint, tmp_path / "joint.csv").open()))
    assert [float(r["classifier_probability"]) for r in rows] == pytest.approx(classifier.tolist(), abs=1e-4)
    assert [float(r["lesion_evidence"]) for r in rows] == pytest.approx(evidence.tolist(), abs=1e-4)
    assert [float(r["probability"]) for r in rows] == pytest.approx([0.5] * n, abs=1e-4)


# --------------------------------------------------------------------------- bundle and errors
def test_export_all_writes_every_file_with_edits(study, tmp_path):
    volume, result = study
    edited = result.lesion_mask.copy()
    edited[0, 10:14, 10:14] = 1
    written = export_all(result, volume, tmp_path / "out", edited_mask=edited, review={2: "confirmed"})
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["lesion_mask.nii.gz", "lesion_mask_ai.nii.gz", "lesion_seg.dcm", "lung_mask.nii.gz",
                     "per_slice.csv", "report.pdf"]
    assert set(written) == {"report", "lesion_seg", "lesion_nifti", "lesion_nifti_ai", "lung_nifti", "csv"}
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(written["lesion_nifti"]))), edited)
    # The AI's own mask stays beside the reader's (as analyze --session writes it: one writer for both).
    ai = sitk.GetArrayFromImage(sitk.ReadImage(str(written["lesion_nifti_ai"])))
    assert np.array_equal(ai > 0, np.asarray(result.lesion_mask) > 0)
    seg = hd.seg.segread(written["lesion_seg"])
    assert seg.get_segment_description(1).algorithm_type.value == "SEMIAUTOMATIC"
    rows = list(csv.DictReader(written["csv"].open()))
    assert float(rows[0]["lesion_area_mm2"]) == pytest.approx(edited[0].sum() * 25.0)


def test_export_all_skips_seg_for_non_dicom_and_says_why(study, tmp_path):
    volume, result = study
    images = Volume(array=volume.array, spacing=volume.spacing, source_format="images")
    written = export_all(result, images, tmp_path / "out", report=False)
    assert "lesion_seg" not in written and written["csv"].exists()
    assert len(written.notes) == 1 and written.notes[0].startswith("No lesion_seg.dcm: DICOM SEG needs a DICOM source")
    assert not (tmp_path / "out" / "lesion_seg.dcm").exists()
    assert export_all(result, volume, tmp_path / "dicom", report=False).notes == []


def test_unwritable_targets_raise_export_error(study, tmp_path):
    volume, result = study
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_nifti(result.lung_mask, volume, blocker / "lung.nii.gz")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_all(result, volume, blocker)
    with pytest.raises(ExportError, match="a folder with that name exists"):
        export_csv(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


ONE_SENTENCE = r"Cannot write {target}: [^\n]+\."


@pytest.mark.parametrize("writer", ["seg", "nifti", "csv", "report", "bundle"])
def test_unwritable_folder_gives_one_sentence_even_for_root(study, unwritable_folder, writer):
    """Runs as root too (CI does): for root the folder is one nobody may create files in."""
    volume, result = study
    def listing() -> list[str]:  # /proc (root's unwritable folder) also lists processes, which come and go
        return sorted(p.name for p in unwritable_folder.iterdir() if not p.name.isdigit())

    before = listing()
    name = {"seg": "seg.dcm", "nifti": "lung.nii.gz", "csv": "per_slice.csv", "report": "report.pdf",
            "bundle": "report.pdf"}[writer]
    target = unwritable_folder / name
    with pytest.raises(ExportError) as info:
        if writer == "seg":
            export_dicom_seg(volume, result.lesion_mask, result.lung_mask, target)
        elif writer == "nifti":
            export_nifti(result.lung_mask, volume, target)
        elif writer == "csv":
            export_csv(result, target)
        elif writer == "report":
            write_report(result, volume, target)
        else:
            export_all(result, volume, unwritable_folder)
    message = str(info.value)
    assert re.fullmatch(ONE_SENTENCE.format(target=re.escape(str(target))), message), message
    assert "Traceback" not in message and "No such file" not in message
    assert listing() == before  # no temporary file left behind


def test_failed_writer_leaves_no_partial_file(study, tmp_path, monkeypatch):
    volume, result = study
    target = tmp_path / "lesion_mask.nii.gz"

    def broken(image, name, useCompression=False):
        Path(name).write_bytes(b"partial")
        raise RuntimeError("disk full\nITK details that the user does not need")

    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(ExportError) as info:
        export_nifti(result.lesion_mask, volume, target)
    assert str(info.value) == f"Cannot write {target}: disk full."
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- with the project's loader
def test_demo_study_round_trip_through_the_loader(tmp_path):
    """The demo phantom's DICOM series, loaded by load_study, exports to NIfTI with the
    geometry SimpleITK reads from the DICOM files themselves, and to a valid SEG."""
    phantom = pytest.importorskip("jcs_viewer.io.phantom")
    loader = pytest.importorskip("jcs_viewer.io.loader")
    root = phantom.write_demo_study(tmp_path / "demo", n_slices=12, seed=2, size=96)
    volume = loader.load_study(root / "dicom")
    lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "ground_truth" / "lesion_mask.nii.gz")))
    lung = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "ground_truth" / "lung_mask.nii.gz")))

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in volume.source_files])
    source = reader.Execute()
    exported = sitk.ReadImage(str(export_nifti(lung, volume, tmp_path / "lung_mask.nii.gz")))
    assert exported.GetSize() == source.GetSize()
    assert np.allclose(exported.GetSpacing(), source.GetSpacing(), atol=1e-5)
    assert np.allclose(exported.GetOrigin(), source.GetOrigin(), atol=1e-4)
    assert np.allclose(exported.GetDirection(), source.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(exported), lung)

    path = export_dicom_seg(volume, lesion, lung, tmp_path / "lesion_seg.dcm")
    seg, _, pixels = read_seg(path, volume)
    expected = [lesion == 1, lesion == 2] if (lesion == 2).any() else [lesion > 0]  # GGO / consolidation classes
    for i, mask in enumerate(expected):
        assert np.array_equal(pixels[..., i] > 0, mask)
    assert np.array_equal(pixels[..., len(expected)] > 0, lung == 1)
    assert_dciodvfy_clean(path)


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs, a folder even root cannot write")
def test_folder_nobody_may_write_raises_export_error(study):
    volume, result = study
    with pytest.raises(ExportError, match=r"^Cannot write /sys/jcs_per_slice\.csv: .+\.$"):
        export_csv(result, "/sys/jcs_per_slice.csv")
    with pytest.raises(ExportError, match=r"^Cannot write /sys/jcs_seg\.dcm: "):
        export_dicom_seg(volume, result.lesion_mask, result.lung_mask, "/sys/jcs_seg.dcm")


@pytest.mark.parametrize("meta_knows", [True, False])
def test_sources_with_an_empty_sop_class_uid_still_export(tmp_path, meta_knows):
    """Issue 15, item 12: a real series with an empty SOPClassUID made highdicom fail with KeyError ''."""
    from jcs_viewer.io import load_study, write_demo_study

    write_demo_study(tmp_path, n_slices=6, seed=1, size=64)
    for f in (tmp_path / "dicom").glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.SOPClassUID = ""
        if not meta_knows:
            ds.file_meta.MediaStorageSOPClassUID = ""
        ds.save_as(f)
    volume = load_study(tmp_path / "dicom")
    mask = np.zeros(volume.shape, np.uint8)
    mask[2, 20:30, 20:30] = 1
    path = export_dicom_seg(volume, mask, None, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(path)
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPClassUID == \
        "1.2.840.10008.5.1.4.1.1.2"
    _, _, pixels = read_seg(path, volume)
    assert np.array_equal(pixels[..., 0] > 0, mask > 0)


def test_a_seg_that_cannot_be_built_does_not_stop_the_other_exports(tmp_path):
    """Issue 15, item 12: a failing SEG skipped the NIfTI and CSV exports while the message blamed the report."""
    from jcs_viewer.gui.synthetic import synthetic_result
    from jcs_viewer.io import load_study, write_demo_study
    from jcs_viewer.report import export_all

    write_demo_study(tmp_path, n_slices=6, seed=1, size=64)
    volume = load_study(tmp_path / "dicom")
    lung = np.zeros(volume.shape, np.uint8)
    lung[:, 10:50, 8:30], lung[:, 10:50, 34:56] = 1, 2
    lesion = np.zeros(volume.shape, np.uint8)
    lesion[2, 20:26, 12:20] = 1
    result = synthetic_result(volume, lung, lesion, cam_size=8)
    Path(volume.source_files[3]).write_bytes(b"not dicom any more")
    written = export_all(result, volume, tmp_path / "out", report=False)
    assert "lesion_seg" not in written and {"lesion_nifti", "lung_nifti", "csv"} <= set(written)
    assert len(written.notes) == 1 and written.notes[0].startswith("No lesion_seg.dcm: the source file ")
    assert volume.source_files[3].name in written.notes[0] and ".incomplete" not in written.notes[0]


def test_sources_without_patient_id_or_birth_date_still_get_a_seg(tmp_path):
    """Type 2 attributes may be empty, and anonymisers drop them (the LIDC slices have no PatientID): the SEG and SR
    failed with "'FileDataset' object has no attribute 'PatientID'"."""
    from jcs_viewer.io import load_study

    volume, result = make_study(tmp_path, n_slices=4, size=32)
    for path in volume.source_files:
        ds = pydicom.dcmread(path)
        del ds.PatientID, ds.PatientBirthDate
        ds.save_as(path)
    volume = load_study(volume.source_files[0].parent)
    path = export_dicom_seg(volume, result.lesion_mask, result.lung_mask, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(path)
    assert seg.PatientID == "" and seg.PatientBirthDate == ""
    assert_dciodvfy_clean(path, warnings_allowed=True)
