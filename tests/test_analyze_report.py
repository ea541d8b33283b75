"""`jcs-viewer analyze --report [--anonymize]`: report, DICOM SEG, NIfTI and CSV from one command."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from jcs_viewer.cli import main
from jcs_viewer.io import write_demo_study


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    write_demo_study(out, n_slices=24, seed=4, size=128)
    return out / "dicom"


def test_report_writes_every_export_and_anonymises(demo, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(demo), "--out", str(out), "--report", "--anonymize", "--quiet"]) == 0
    for name in ("report.pdf", "lesion_seg.dcm", "lesion_mask.nii.gz", "lung_mask.nii.gz", "per_slice.csv",
                 "results.json"):
        assert (out / name).is_file(), name
    import pydicom

    seg = pydicom.dcmread(out / "lesion_seg.dcm")
    assert seg.Modality == "SEG" and "PHANTOM" not in str(seg.PatientName) and "JCSDEMO" not in seg.PatientID
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(out / "report.pdf"), "-"], capture_output=True, text=True).stdout
        assert "PHANTOM" not in text and "JCSDEMO" not in text
    if shutil.which("dciodvfy"):
        check = subprocess.run(["dciodvfy", str(out / "lesion_seg.dcm")], capture_output=True, text=True)
        assert not [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")]


def test_report_on_a_nifti_study_explains_the_missing_seg(demo, tmp_path, capsys):
    import SimpleITK as sitk

    from jcs_viewer.io import load_study

    volume = load_study(demo)
    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(volume.spacing[::-1])
    image.SetOrigin(volume.origin)
    image.SetDirection(volume.direction.ravel().tolist())
    nifti = tmp_path / "study.nii.gz"
    sitk.WriteImage(image, str(nifti))
    out = tmp_path / "out"
    assert main(["analyze", str(nifti), "--out", str(out), "--report", "--quiet"]) == 0
    assert (out / "report.pdf").is_file() and not (out / "lesion_seg.dcm").exists()
    assert "DICOM SEG needs a DICOM source" in capsys.readouterr().out
