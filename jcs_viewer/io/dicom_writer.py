"""Write an int16 HU volume as a CT Image Storage series, and masks as NIfTI with the same geometry.

Pixel encoding: signed 16-bit (PixelRepresentation 1) holding HU directly, RescaleSlope 1,
RescaleIntercept 0, Explicit VR Little Endian. Every write goes to a temporary file first
and is moved into place with :func:`os.replace`.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jcs_viewer.atomic import atomic_path
from jcs_viewer.errors import ExportError
from jcs_viewer.io.volume import StudyInfo

# Name root of every UID we derive.
UID_ROOT = "jcs-viewer synthetic CT"
_UID_NAMESPACE = uuid.UUID("6f1c2b7e-3d4a-5b8c-9e0f-4a6b8c0d2e1f")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLEMENTATION_VERSION = "JCSVIEWER_01"
# Fixed dates/times: output must be byte-identical for the same seed.
DEFAULT_DATE = "20200315"
DEFAULT_TIME = "101500"


def derive_uid(*parts: object) -> str:
    """A deterministic DICOM UID from ``parts`` (same parts -> same UID).

    ``2.25.<UUID as integer>`` (ISO/IEC 9834-8) with a name-based (v5) UUID of the parts.
    pydicom's ``generate_uid(prefix=None, entropy_srcs=...)`` ignores the entropy and
    returns a random UUID, so it cannot be used for reproducible output.
    """
    name = "/".join([UID_ROOT, *map(str, parts)])
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def write_dicom_series(
    hu: np.ndarray,
    out_dir: str | os.PathLike,
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray | Sequence[float] | None = None,
    info: StudyInfo | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write ``hu`` as one CT Image Storage file per slice.

    Args:
        hu: ``int16`` array ``(z, y, x)`` in HU.
        out_dir: folder to write into (created if missing).
        spacing: ``(z, y, x)`` voxel size in mm.
        origin: LPS ``(x, y, z)`` of voxel ``[0, 0, 0]``.
        direction: 3x3 (or 9 values, row-major) whose columns are the LPS directions
            of the x, y and z index axes; identity when ``None``.
        info: patient/study/series fields; empty UIDs are derived from ``seed`` and the
            series description so that the output is deterministic.
        seed: makes the derived UIDs and file names differ between studies.

    Returns:
        The written files in slice order (index 0 first). Their names are random-looking
        hashes, so file-name order differs from position order.

    Raises:
        ExportError: when the array is not 3-D int16-compatible or the folder is not writable.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    out_dir = Path(out_dir)
    hu = np.asarray(hu)
    if hu.ndim != 3 or hu.shape[0] < 1:
        raise ExportError(
            f"Cannot write a DICOM series to {out_dir}: expected a (z, y, x) volume, got shape {hu.shape}."
        )
    if hu.dtype != np.int16:
        if hu.size and (hu.min() < -32768 or hu.max() > 32767):
            raise ExportError(f"Cannot write a DICOM series to {out_dir}: values do not fit in int16.")
        hu = hu.astype(np.int16)
    info = info or StudyInfo()
    sz, sy, sx = (float(s) for s in spacing)
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    origin_v = np.asarray(origin, dtype=float)
    row_dir, col_dir, normal = direction[:, 0], direction[:, 1], direction[:, 2]

    description = info.series_description or "Synthetic chest CT"
    study_uid = info.study_uid or derive_uid("study", seed, info.study_description)
    series_uid = info.series_uid or derive_uid("series", seed, description, study_uid)
    frame_uid = info.frame_of_reference_uid or derive_uid("frame", seed, study_uid)
    study_date = info.study_date or DEFAULT_DATE
    study_time = info.study_time or DEFAULT_TIME
    thickness = info.slice_thickness if info.slice_thickness is not None else sz

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot create the DICOM folder {out_dir}: {exc.strerror or exc}.") from exc

    files: list[Path] = []
    for k in range(hu.shape[0]):
        position = origin_v + normal * (k * sz)
        sop_uid = derive_uid("instance", series_uid, k)
        ds = pydicom.Dataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = derive_uid("implementation", IMPLEMENTATION_VERSION)
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        ds.file_meta = meta
        # SOP common
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.InstanceCreationDate = study_date
        ds.InstanceCreationTime = study_time
        # Patient
        ds.PatientName = info.patient_name or "DEMO^PHANTOM"
        ds.PatientID = info.patient_id or f"JCSDEMO{seed:05d}"
        ds.PatientBirthDate = info.birth_date
        ds.PatientSex = info.sex or "O"
        if info.age:
            ds.PatientAge = info.age
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "Synthetic phantom, no real patient"
        # General study
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = study_date
        ds.StudyTime = study_time
        ds.ReferringPhysicianName = ""
        ds.StudyID = f"{seed % 10000:04d}"
        ds.AccessionNumber = info.accession_number or f"A{seed:07d}"
        ds.StudyDescription = info.study_description or "CT CHEST (synthetic phantom)"
        # General series
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = int(info.series_number) if info.series_number.isdigit() else 1
        ds.SeriesDescription = description
        ds.SeriesDate = study_date
        ds.SeriesTime = study_time
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "HFS"
        # Frame of reference
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        # General equipment
        ds.Manufacturer = info.manufacturer or "JCS Viewer"
        ds.InstitutionName = info.institution or "Synthetic"
        ds.ManufacturerModelName = "Chest phantom generator"
        ds.SoftwareVersions = IMPLEMENTATION_VERSION
        # General image / acquisition
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.ContentDate = study_date
        ds.ContentTime = study_time
        ds.AcquisitionDate = study_date
        ds.AcquisitionTime = study_time
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.BurnedInAnnotation = "NO"
        # Image plane
        ds.PixelSpacing = [_ds(sy), _ds(sx)]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.SliceThickness = _ds(thickness)
        ds.SpacingBetweenSlices = _ds(sz)
        ds.SliceLocation = _ds(float(np.dot(position, normal)))
        # Image pixel / CT image
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.KVP = _ds(info.kvp if info.kvp is not None else 120.0)
        ds.ConvolutionKernel = info.convolution_kernel or "STANDARD"
        ds.XRayTubeCurrent = 200
        ds.ExposureTime = 500
        ds.Exposure = 100
        ds.DataCollectionDiameter = _ds(500.0)
        ds.ReconstructionDiameter = _ds(float(hu.shape[2]) * sx)
        ds.GantryDetectorTilt = "0"
        ds.TableHeight = _ds(150.0)
        ds.RotationDirection = "CW"
        ds.ScanOptions = "HELICAL"
        # VOI LUT: lung window first, mediastinum second.
        ds.WindowCenter = ["-600", "40"]
        ds.WindowWidth = ["1500", "400"]
        ds.WindowCenterWidthExplanation = ["LUNG", "MEDIASTINUM"]
        ds.PixelData = np.ascontiguousarray(hu[k], dtype="<i2").tobytes()

        name = hashlib.sha1(f"{series_uid}/{k}".encode()).hexdigest()[:16].upper()
        files.append(_save_atomic(ds, out_dir / f"IM_{name}.dcm"))
    return files


def _ds(value: float) -> str:
    """A DS string of at most 16 characters."""
    for digits in range(12, 5, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            break
    return "0" if text in ("-0", "0.0") else text


def _save_atomic(ds, path: Path) -> Path:
    try:
        with atomic_path(path, suffix=".dcm") as tmp:
            ds.save_as(tmp, enforce_file_format=True)
    except OSError as exc:
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    return path


def write_mask_nifti(
    mask: np.ndarray,
    path: str | os.PathLike,
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray | Sequence[float] | None = None,
) -> Path:
    """Write a label volume as ``uint8`` NIfTI with the series' geometry.

    Args:
        mask: ``(z, y, x)`` labels (0..255).
        path: ``.nii`` or ``.nii.gz`` destination.
        spacing: ``(z, y, x)`` in mm, origin LPS ``(x, y, z)``, direction as in :class:`Volume`.

    Returns:
        ``path``. SimpleITK reading it reports the same origin, spacing and direction as it
        reports for the DICOM series written with the same geometry.
    """
    import SimpleITK as sitk

    path = Path(path)
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ExportError(f"Cannot write {path}: expected a (z, y, x) mask, got shape {mask.shape}.")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ExportError(f"Cannot write {path}: mask values must lie in 0..255.")
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    image = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))
    sz, sy, sx = (float(s) for s in spacing)
    image.SetSpacing((sx, sy, sz))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetDirection(tuple(float(v) for v in direction.reshape(-1)))
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=suffix or ".nii.gz") as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=True)
    except (OSError, RuntimeError) as exc:
        raise ExportError(f"Cannot write {path}: {exc}.") from exc
    return path
