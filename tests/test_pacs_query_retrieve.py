"""`jcs-viewer pacs echo/find/get/send` against a live Orthanc, over the DICOM network and over DICOMweb.

The study goes into Orthanc through Orthanc's own REST API (not through the code under test), comes back with
``pacs get``, and ``analyze`` reads the retrieved folder like any other.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
import pytest

from jcs_viewer.cli import main
from jcs_viewer.io import write_demo_study
from orthanc_server import orthanc, require_dicomweb  # noqa: F401 - fixture

PROTOCOLS = ["dimse", "dicomweb"]


def address(server, protocol: str) -> str:
    if protocol == "dicomweb":
        require_dicomweb()
    return server.dimse if protocol == "dimse" else server.dicomweb


@pytest.fixture(scope="module")
def demo_in_orthanc(orthanc, tmp_path_factory):  # noqa: F811
    """The demo study (8 small slices) stored in Orthanc; returns (its files, its StudyInstanceUID)."""
    root = tmp_path_factory.mktemp("demo-qr")
    write_demo_study(root, n_slices=16, seed=3, size=64)
    files = sorted((root / "dicom").glob("*.dcm"))
    orthanc.upload(files)
    return files, str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_echo_answers(orthanc, protocol, capsys):  # noqa: F811
    assert main(["pacs", "echo", "--server", address(orthanc, protocol)]) == 0
    assert "answers" in capsys.readouterr().out


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_find_lists_the_study_with_its_keys(orthanc, demo_in_orthanc, protocol, capsys):  # noqa: F811
    files, study_uid = demo_in_orthanc
    source = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert main(["pacs", "find", "--server", address(orthanc, protocol), "--patient-id", source.PatientID,
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["StudyInstanceUID"] == study_uid)
    assert row["PatientID"] == source.PatientID
    assert row["PatientName"] == str(source.PatientName)
    assert row["StudyDate"] == source.StudyDate
    assert "CT" in row["ModalitiesInStudy"]
    assert row["NumberOfStudyRelatedInstances"] >= len(files)
    # Another patient's ID finds nothing.
    assert main(["pacs", "find", "--server", address(orthanc, protocol), "--patient-id", "NOBODY-HERE"]) == 0
    assert "No study found" in capsys.readouterr().out


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_get_retrieves_every_instance_and_analyze_reads_the_folder(orthanc, demo_in_orthanc, protocol, tmp_path,
                                                                    capsys):  # noqa: F811
    files, study_uid = demo_in_orthanc
    got = tmp_path / "got"
    assert main(["pacs", "get", "--server", address(orthanc, protocol), "--study-uid", study_uid,
                 "--out", str(got)]) == 0
    captured = capsys.readouterr()
    assert f"{len(files)} instances" in captured.out
    assert "retrieve" in captured.err  # the progress bar
    sources = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f) for f in files}
    retrieved = sorted(got.glob("*.dcm"))
    assert {p.stem for p in retrieved} == set(sources)
    for path in retrieved:
        ds = pydicom.dcmread(path)
        assert ds.pixel_array.tobytes() == sources[ds.SOPInstanceUID].pixel_array.tobytes()
    out = tmp_path / "results"
    assert main(["analyze", str(got), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["n_slices"] == len(files)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_send_stores_files_the_server_then_holds(orthanc, protocol, tmp_path, capsys):  # noqa: F811
    write_demo_study(tmp_path, n_slices=8, seed=11, size=48)
    files = sorted((tmp_path / "dicom").glob("*.dcm"))
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    assert main(["pacs", "send", "--server", address(orthanc, protocol), str(tmp_path / "dicom")]) == 0
    assert f"{len(files)} files stored" in capsys.readouterr().out
    series = orthanc.series_of_study(study_uid)
    assert sum(len(s["Instances"]) for s in series) == len(files)
    orthanc.rest(f"/studies/{orthanc.rest('/tools/lookup', 'POST', study_uid.encode())[0]['ID']}", "DELETE")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_send_stores_bare_data_sets_with_the_file_meta_they_lacked(orthanc, protocol, tmp_path, capsys):  # noqa: F811
    """Files written without the DICM preamble and file meta (which the viewer reads) were refused as "not a
    readable DICOM file"; they are sent with the meta their encoding shows, pixel for pixel."""
    from pydicom.dataset import FileMetaDataset

    write_demo_study(tmp_path, n_slices=4, seed=12, size=48)
    files = sorted((tmp_path / "dicom").glob("*.dcm"))
    originals = [pydicom.dcmread(f) for f in files]
    for path, ds in zip(files, originals, strict=True):
        bare = pydicom.dcmread(path)
        bare.file_meta, bare.preamble = FileMetaDataset(), None
        bare.save_as(path, implicit_vr=protocol == "dimse", little_endian=True, enforce_file_format=False)
    assert not files[0].read_bytes()[128:132] == b"DICM"
    assert main(["pacs", "send", "--server", address(orthanc, protocol), str(tmp_path / "dicom")]) == 0
    assert f"{len(files)} files stored" in capsys.readouterr().out
    study_uid = str(originals[0].StudyInstanceUID)
    stored = {}
    for series in orthanc.series_of_study(study_uid):
        for instance in series["Instances"]:
            ds = pydicom.dcmread(io.BytesIO(orthanc.instance_file(instance)))
            stored[str(ds.SOPInstanceUID)] = ds
    assert sorted(stored) == sorted(str(ds.SOPInstanceUID) for ds in originals)
    for original in originals:
        np.testing.assert_array_equal(stored[str(original.SOPInstanceUID)].pixel_array, original.pixel_array)
    orthanc.rest(f"/studies/{orthanc.rest('/tools/lookup', 'POST', study_uid.encode())[0]['ID']}", "DELETE")


def test_send_names_a_bare_file_without_sop_uids(orthanc, tmp_path, capsys):  # noqa: F811
    path = tmp_path / "x.dcm"
    ds = pydicom.Dataset()
    ds.PatientName = "Nobody"
    ds.Modality = "CT"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert main(["pacs", "send", "--server", orthanc.dimse, str(path)]) != 0
    err = capsys.readouterr().err
    assert "x.dcm" in err and "without a SOP Class or Instance UID" in err and "Traceback" not in err


def test_ae_title_and_server_come_from_the_settings_and_the_command_line(orthanc, tmp_path, monkeypatch,
                                                                       capsys):  # noqa: F811
    """Orthanc knows only JCSVIEWER: a stranger's title is refused, so the title used is the one we chose."""
    from jcs_viewer.settings import Settings

    assert Settings().pacs_ae_title == "JCSVIEWER"
    monkeypatch.setenv("JCS_VIEWER_CONFIG", str(tmp_path))
    Settings(pacs_ae_title="STRANGER", pacs_servers=(orthanc.dimse,)).save()
    assert main(["pacs", "echo"]) == 2  # the settings' server and AE title
    err = capsys.readouterr().err
    assert "rejected the association from STRANGER" in err and orthanc.dimse in err
    assert main(["pacs", "echo", "--ae-title", "JCSVIEWER"]) == 0  # the command line wins
    assert "answers (as JCSVIEWER)" in capsys.readouterr().out
