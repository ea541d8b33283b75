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
