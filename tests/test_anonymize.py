"""``analyze --report --anonymize`` on a study full of planted identifiers: none survives in any output.

PS3.15 E.1 (basic application-level confidentiality profile): names, IDs, dates, institution, physicians
and every UID of the source are planted in the series; the test looks for each in every output file's
bytes (gzip and zip members inflated, the PDF's streams decompressed by qpdf), in its name and in the
PDF's metadata; then it checks that the de-identified SEG still reads back onto the right slices and
passes dciodvfy.
"""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from jcs_viewer.cli import main
from jcs_viewer.io import write_demo_study
from jcs_viewer.io.deidentify import Pseudonymizer
from jcs_viewer.pipeline.result import StudyResult
from test_analyze_report import check_seg_by_position, sources_in_slice_order
from test_export_support import assert_dciodvfy_clean, require_tools

PLANTED = {
    "PatientName": "Quixotic^Zebedee^Marmaduke",
    "PatientID": "PID-58213",
    "OtherPatientNames": "Quixote^Zeb",
    "OtherPatientIDs": "OTHER-77341",
    "PatientBirthDate": "19470317",
    "PatientAddress": "42 Wallaby Way, Sydney",
    "PatientTelephoneNumbers": "+61 2 5550 1234",
    "AccessionNumber": "ACC93821",
    "StudyID": "STUDY4242",
    "StudyDate": "20200411",
    "SeriesDate": "20200412",
    "AcquisitionDate": "20200413",
    "ContentDate": "20200414",
    "StudyTime": "101112",
    "ReferringPhysicianName": "Feelgood^Hannibal",
    "PerformingPhysicianName": "Strangelove^Merkwurdig",
    "NameOfPhysiciansReadingStudy": "Zhivago^Yuri",
    "OperatorsName": "Ratched^Mildred",
    "RequestingPhysician": "Quincy^Medicus",
    "InstitutionName": "Saint Elsewhere Hospital",
    "InstitutionAddress": "St Eligius, Boston",
    "InstitutionalDepartmentName": "Radiology Wing Q",
    "StationName": "CTSTATION7",
    "StudyDescription": "Chest CT for Mr Quixotic",
    "ProtocolName": "QuixoticProtocol",
}
UIDS = {
    "StudyInstanceUID": "1.2.826.0.1.3680043.2.1125.7777.1",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.2.1125.7777.2",
    "FrameOfReferenceUID": "1.2.826.0.1.3680043.2.1125.7777.3",
}
SOP_ROOT = "1.2.826.0.1.3680043.2.1125.7777.4."
#: The pseudonymous UIDs the anonymiser writes (``2.25.`` and a 128-bit hash as 39 decimal digits): random digits,
#: so one in a few hundred output sets holds a 6-digit planted value such as the study time inside one by chance.
HASHED_UID = re.compile(rb"2\.25\.\d{20,}")


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """The demo series (24 slices) with every identifier above, and SOP UIDs under our own root."""
    out = tmp_path_factory.mktemp("planted")
    write_demo_study(out, n_slices=24, seed=4, size=128)
    for k, path in enumerate(sorted((out / "dicom").glob("*.dcm"))):
        ds = pydicom.dcmread(path)
        for keyword, value in {**PLANTED, **UIDS}.items():
            setattr(ds, keyword, value)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{SOP_ROOT}{k + 1}"
        item = Dataset()
        item.Manufacturer, item.InstitutionName = "Acme", PLANTED["InstitutionName"]
        ds.ContributingEquipmentSequence = Sequence([item])
        ds.save_as(path)
    return out / "dicom"


def _needles() -> list[str]:
    """Every planted value in the spellings an output could use (name parts, ISO dates, UID roots)."""
    needles = set()
    for keyword, value in PLANTED.items():
        if keyword.endswith("Date"):
            needles |= {value, f"{value[:4]}-{value[4:6]}-{value[6:]}", f"{value[6:]}/{value[4:6]}/{value[:4]}"}
        elif keyword.endswith("Name") or keyword in ("OtherPatientNames", "NameOfPhysiciansReadingStudy"):
            needles |= {part for part in value.split("^") if len(part) >= 4} | {value}
        else:
            needles.add(value)
    needles |= set(UIDS.values()) | {SOP_ROOT.rstrip(".")}
    return sorted(needles)


def _blobs(out: Path, tmp_path: Path) -> dict[str, bytes]:
    """Each output's bytes, plus inflated gzip/zip members and the PDF with decompressed streams."""
    blobs = {}
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        blobs[str(path.relative_to(out))] = data
        if path.suffix == ".gz":
            blobs[f"{path.name} (inflated)"] = gzip.decompress(data)
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    blobs[f"{path.name}:{member}"] = archive.read(member)
        if path.suffix == ".pdf":
            require_tools("qpdf", "pdfinfo", "pdftotext")
            qdf = tmp_path / "qdf.pdf"
            subprocess.run(["qpdf", "--qdf", "--object-streams=disable", str(path), str(qdf)], check=True)
            blobs[f"{path.name} (qdf)"] = qdf.read_bytes()
            for command in (["pdfinfo", str(path)], ["pdfinfo", "-meta", str(path)],
                            ["pdftotext", "-layout", str(path), "-"]):
                blobs[f"{path.name} ({command[0]} {command[1]})"] = subprocess.run(
                    command, capture_output=True, check=True).stdout
    return blobs


def test_no_planted_identifier_survives_anonymize_in_any_output(planted, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(planted), "--out", str(out), "--report", "--anonymize", "--quiet"]) == 0
    names = {p.name for p in out.rglob("*")}
    assert {"report.pdf", "lesion_seg.dcm", "results.json", "per_slice.csv", "lesion_mask.nii.gz"} <= names
    blobs = {name: HASHED_UID.sub(b"2.25.(hash)", blob) for name, blob in _blobs(out, tmp_path).items()}
    assert all(b"2.25.(hash)" in blobs[name] for name in ("lesion_seg.dcm", "results_sr.dcm"))
    for needle in _needles():
        assert not any(needle in name for name in names), needle
        for name, blob in blobs.items():
            assert needle.encode() not in blob, (needle, name)
    # The control: the same run without --anonymize carries them (so the search above can find them).
    plain = tmp_path / "plain"
    assert main(["analyze", str(planted), "--out", str(plain), "--report", "--quiet"]) == 0
    found = b"".join(_blobs(plain, tmp_path).values())
    for needle in ("Quixotic", "PID-58213", "ACC93821", UIDS["StudyInstanceUID"], "1947-03-17"):
        assert needle.encode() in found, needle


def test_the_deidentified_seg_reads_back_onto_its_slices_and_passes_dciodvfy(planted, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(planted), "--out", str(out), "--report", "--anonymize", "--quiet"]) == 0
    result = StudyResult.load(out)
    seg = pydicom.dcmread(out / "lesion_seg.dcm")
    assert str(seg.PatientName) == "Anonymous^" and seg.PatientID == "ANONYMOUS"
    assert seg.StudyDate == "19000101" and seg.ReferringPhysicianName == "" and seg.StudyID == "ANON"
    for keyword in ("OtherPatientNames", "InstitutionName", "PatientAddress", "StudyDescription"):
        assert keyword not in seg, keyword
    # results.json and the SEG name the same pseudonymous study (one map per output set).
    assert result.study["study_uid"] == seg.StudyInstanceUID != UIDS["StudyInstanceUID"]
    assert result.study["series_uid"] == seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert "study_date" not in result.study and "study_description" not in result.study
    check_seg_by_position(out / "lesion_seg.dcm", sources_in_slice_order(planted), result)
    assert_dciodvfy_clean(out / "lesion_seg.dcm")


def test_pseudonyms_are_consistent_within_a_set_unlinkable_across_sets_and_keep_dicom_uids():
    a, b = Pseudonymizer(), Pseudonymizer()
    uid = UIDS["StudyInstanceUID"]
    assert a.uid(uid) == a.uid(uid) != b.uid(uid)
    assert a.uid(uid).startswith("2.25.") and len(a.uid(uid)) <= 64
    assert a.uid("1.2.840.10008.5.1.4.1.1.66.4") == "1.2.840.10008.5.1.4.1.1.66.4"  # the SEG storage class
    ds = Dataset()
    ds.PatientName, ds.StudyInstanceUID, ds.InstitutionName = "Doe^John", uid, "General"
    ds.add_new(0x00091010, "LO", "private tag")
    item = Dataset()
    item.ReferencedSOPInstanceUID, item.ReferencedSOPClassUID = f"{SOP_ROOT}1", "1.2.840.10008.5.1.4.1.1.2"
    ds.ReferencedImageSequence = Sequence([item])
    a.dataset(ds)
    assert str(ds.PatientName) == "Anonymous^" and "InstitutionName" not in ds and 0x00091010 not in ds
    assert ds.StudyInstanceUID == a.uid(uid)
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.uid(f"{SOP_ROOT}1")
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"


def test_an_item_shared_by_two_sequences_is_pseudonymised_once():
    """highdicom puts one source-reference item in several sequences: mapping it twice would break the link."""
    p = Pseudonymizer()
    shared = Dataset()
    shared.ReferencedSOPInstanceUID = f"{SOP_ROOT}2"
    ds = Dataset()
    ds.ReferencedImageSequence, ds.SourceImageSequence = Sequence([shared]), Sequence([shared])
    p.dataset(ds)
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == p.uid(f"{SOP_ROOT}2")
