"""Small real studies for the report and export tests, plus checks of the fixture itself.

``make_study`` writes a genuine single-frame CT Image Storage series with pydicom (so
highdicom and dciodvfy see real source images), builds the matching ``Volume`` and a
``StudyResult`` stand-in with the contract's attribute names, from synthetic masks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from jcs_viewer.io.volume import StudyInfo, Volume
from jcs_viewer.pipeline.quantify import quantify

PATIENT = {
    "name": "Qwertyson^Zelda",
    "id": "PID-7741-XQ",
    "birth": "19470312",
    "accession": "ACC99173311",
}


# --------------------------------------------------------------------------- independent checkers
#: Debian packages of the command-line checkers (CI installs them; see .ci/run).
TOOL_PACKAGES = {"dciodvfy": "dicom3tools", "qpdf": "qpdf", "pdftotext": "poppler-utils",
                 "pdfinfo": "poppler-utils", "pdfimages": "poppler-utils", "pdftoppm": "poppler-utils"}


def require_tools(*names: str) -> None:
    """Skip the calling test, with the package to install, when a checker is missing.

    Call it where the check happens (after the test's own assertions), so a machine without
    the tool still runs the rest and the skip shows up in ``-ra``; never an ``if`` that passes.
    """
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        packages = sorted({TOOL_PACKAGES.get(n, n) for n in missing})
        pytest.skip(f"{', '.join(missing)} not installed (Debian/Ubuntu: apt-get install {' '.join(packages)})")


def needs_tools(*names: str) -> pytest.MarkDecorator:
    """The same as a marker, for tests that are nothing but the tool's check."""
    missing = [n for n in names if shutil.which(n) is None]
    packages = sorted({TOOL_PACKAGES.get(n, n) for n in missing})
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed "
                              f"(Debian/Ubuntu: apt-get install {' '.join(packages)})")


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` that dicom3tools' dciodvfy reports for a DICOM file."""
    require_tools("dciodvfy")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=300)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")], [line for line in lines if line.startswith("Warning")]


def assert_dciodvfy_clean(path: Path, *, warnings_allowed: bool = False) -> None:
    """dciodvfy finds no error (and, unless allowed, no warning) in ``path``."""
    errors, warnings = dciodvfy(path)
    assert errors == [], errors
    if not warnings_allowed:
        assert warnings == [], warnings


def _cannot_create_in(folder: Path) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(name)
    return False


@pytest.fixture
def unwritable_folder(tmp_path) -> Iterator[Path]:
    """An existing folder in which this process cannot create files, root included.

    A read-only (0555) temporary folder for ordinary users; for root, which ignores
    permission bits, /proc (a folder nobody can create files in). Skips only when neither
    refuses a write here, and says so.
    """
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for folder in (locked, Path("/proc")):
            if folder.is_dir() and _cannot_create_in(folder):
                yield folder
                return
        pytest.skip("no folder refuses writes to this process (not Linux, and read-only folders are writable)")
    finally:
        locked.chmod(0o755)


def write_ct_series(
    out_dir: Path,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
) -> list[Path]:
    """Write ``hu`` (z, y, x) as an axial CT series, slice z at origin + z * spacing_z (feet -> head)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    files = []
    for z in range(hu.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = out_dir / f"slice_{z:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = PATIENT["name"]
        ds.PatientID = PATIENT["id"]
        ds.PatientBirthDate = PATIENT["birth"]
        ds.PatientSex = "F"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = "20200405"
        ds.StudyTime = "101500"
        ds.StudyID = "1"
        ds.AccessionNumber = PATIENT["accession"]
        ds.ReferringPhysicianName = ""
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 3
        ds.SeriesDescription = "Chest"
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.Manufacturer = "Test"
        ds.InstanceNumber = z + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[2]:g}"]
        ds.SliceThickness = f"{spacing[0]:g}"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [f"{origin[0]:g}", f"{origin[1]:g}", f"{origin[2] + z * spacing[0]:g}"]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.KVP = 120
        ds.AcquisitionNumber = 1
        ds.PixelData = np.ascontiguousarray(hu[z], dtype="<i2").tobytes()
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def _ellipsoid(shape: tuple[int, int, int], centre: tuple[float, float, float],
               radii: tuple[float, float, float]) -> np.ndarray:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (
        ((zz - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2 + ((xx - centre[2]) / radii[2]) ** 2
    ) <= 1.0


def make_study(tmp_path: Path, *, n_slices: int = 12, size: int = 64, classes: bool = False):
    """A small CT series on disk, its Volume and a StudyResult stand-in.

    Returns:
        ``(volume, result)``. The lesion mask holds classes 1 (GGO) / 2 (consolidation)
        when ``classes`` else 0/1; ``result.lesion_mask`` is always binary.
    """
    shape = (n_slices, size, size)
    spacing = (2.5, 5.0, 5.0)  # a 64-px slice spans 320 mm: an adult chest
    origin = (-160.0, -150.0, -300.0)
    body = _ellipsoid(shape, (n_slices / 2, size / 2, size / 2), (n_slices * 4, size * 0.42, size * 0.47))
    right = _ellipsoid(shape, (n_slices / 2, size / 2, size * 0.3), (n_slices * 0.55, size * 0.3, size * 0.15))
    left = _ellipsoid(shape, (n_slices / 2, size / 2, size * 0.7), (n_slices * 0.55, size * 0.3, size * 0.15))
    lung = np.zeros(shape, np.uint8)
    lung[right] = 1  # image x increases towards patient left: the low-x lung is the right one
    lung[left] = 2
    ggo = _ellipsoid(shape, (n_slices * 0.6, size * 0.55, size * 0.28),
                     (n_slices * 0.25, size * 0.1, size * 0.07)) & (lung == 1)
    cons = _ellipsoid(shape, (n_slices * 0.4, size * 0.45, size * 0.72),
                      (n_slices * 0.2, size * 0.07, size * 0.06)) & (lung == 2)
    hu = np.full(shape, -1000, np.int16)
    hu[body] = 40
    hu[lung > 0] = -850
    hu[ggo] = -550
    hu[cons] = -50
    files = write_ct_series(tmp_path / "dicom", hu, spacing, origin)
    info = StudyInfo(
        patient_name=PATIENT["name"],
        patient_id=PATIENT["id"],
        birth_date=PATIENT["birth"],
        sex="F",
        study_date="20200405",
        accession_number=PATIENT["accession"],
        study_description="CT chest",
        modality="CT",
        series_description="Chest",
    )
    volume = Volume(array=hu, spacing=spacing, origin=(origin[0], origin[1], origin[2]), info=info,
                    source_files=tuple(files), source_format="dicom")
    lesion_classes = np.zeros(shape, np.uint8)
    lesion_classes[ggo] = 1
    lesion_classes[cons] = 2
    lesion = (lesion_classes > 0).astype(np.uint8)
    area = lesion.reshape(n_slices, -1).sum(1)
    prob = np.clip(0.1 + area / max(area.max(), 1) * 0.85, 0, 1).astype(np.float32)
    positive = prob >= 0.5
    rng = np.random.default_rng(0)
    cams = np.clip(rng.normal(40, 10, (n_slices, 16, 16)), 0, 255)
    cams[:, 6:11, 3:8] += 180 * positive[:, None, None]
    result = SimpleNamespace(
        n_slices=n_slices,
        spacing=spacing,
        origin=volume.origin,
        direction=volume.direction,
        slice_probability=prob,
        classifier_probability=prob,
        lesion_evidence=None,
        slice_score="classifier",
        slice_rule="A slice is positive when the classifier's COVID probability is at least 0.50.",
        slice_cutoff=0.5,
        slice_positive=positive,
        positive_slices=int(positive.sum()),
        threshold=3,
        threshold_rule="Paper threshold of 25 positive slices for 250-400 slices, scaled to this study's 12 slices.",
        decision="positive" if int(positive.sum()) > 3 else "negative",
        cams=np.clip(cams, 0, 255).astype(np.uint8),
        lesion_probability=lesion * 230,
        lesion_mask=lesion,
        segmented_slices=np.ones(n_slices, bool),
        lung_mask=lung,
        attributes=np.tile(np.array([0.9, 0.6, 0.2, 0.1, 0.05], np.float32), (n_slices, 1)),
        quant=quantify(volume, lung, lesion),
        models={
            "classifier": {"name": "jcs-cls-lite", "arch": "Res2Net-50 lite", "sha256": "ab" * 32},
            "segmentation": {"name": "jcs-seg-lite", "arch": "VGG-16-BN lite", "sha256": "cd" * 32},
        },
        timings={"classify": 1.0},
        messages=[],
    )
    if classes:
        result.lesion_classes = lesion_classes
    return volume, result


def test_fixture_series_reads_back_with_its_geometry(tmp_path):
    volume, result = make_study(tmp_path, n_slices=4, size=32)
    for z, name in enumerate(volume.source_files):
        ds = pydicom.dcmread(name)
        assert np.array_equal(ds.pixel_array, volume.array[z])
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], volume.index_to_lps((z, 0, 0)))
    assert result.quant.lesion_volume_ml["total"] > 0
    assert result.quant.lung_volume_ml["left"] > 0 and result.quant.lung_volume_ml["right"] > 0
