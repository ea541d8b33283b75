"""The test PACS itself: a real Orthanc with DICOMweb answers, takes files and shows them back."""

from __future__ import annotations

import urllib.request

from jcs_viewer.io import write_demo_study
from orthanc_server import orthanc, require_dicomweb  # noqa: F401 - fixture


def test_orthanc_answers_and_stores(orthanc, tmp_path):  # noqa: F811
    assert orthanc.rest("/system")["DicomAet"] == "ORTHANC"
    write_demo_study(tmp_path, n_slices=8, seed=1, size=48)
    files = sorted((tmp_path / "dicom").glob("*.dcm"))
    ids = orthanc.upload(files)
    assert len(set(ids)) == len(files)
    require_dicomweb()
    with urllib.request.urlopen(orthanc.dicomweb + "/studies", timeout=30) as response:
        assert response.status == 200
    for instance in ids:
        orthanc.rest(f"/instances/{instance}", "DELETE")


def test_the_test_pacs_takes_other_ports_when_its_first_is_taken(tmp_path, monkeypatch):
    """A port found free can be bound by a parallel test worker before Orthanc binds it; the server then starts
    again on new ports instead of failing every PACS test."""
    import shutil
    import socket

    import pytest

    import orthanc_server

    if shutil.which("Orthanc") is None:
        pytest.skip("Orthanc is not installed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real_free_port = orthanc_server.free_port
        monkeypatch.setattr(orthanc_server, "free_port", lambda: next(ports, None) or real_free_port())
        server = orthanc_server.Orthanc(tmp_path / "pacs")
        try:
            assert server.dicom_port != busy and server.rest("/system")["DicomPort"] == server.dicom_port
            assert "orthanc.log" in {p.name for p in (tmp_path / "pacs").iterdir()}
        finally:
            server.stop()
