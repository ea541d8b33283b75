"""Write small, real DICOM CT files for the io tests (pydicom only: no Qt, no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def hu_slice(size: int, z: int, seed: int = 0) -> np.ndarray:
    """A 2-D HU image: air corners, a soft-tissue disc with a slice-dependent bright dot."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    image = np.full((size, size), -1000, np.int16)
    image[r < size * 0.45] = 40
    image[r < size * 0.2] = -850  # "lung"
    image[(z * 3 + seed) % size, (z * 5 + seed) % size] = 700  # marks which slice this is
    return image


def write_slice(
    path: Path,
    hu: np.ndarray,
    *,
    position: tuple[float, float, float],
    orientation: tuple[float, ...] = AXIAL,
    series_uid: str,
    study_uid: str = "1.2.826.0.1.3680043.8.498.1",
    instance: int = 1,
    modality: str = "CT",
    pixel_spacing: tuple[float, float] = (0.7, 0.7),
    thickness: float = 1.0,
    intercept: float = -1024.0,
    slope: float = 1.0,
    padding: int | None = None,
    series_number: int = 1,
    description: str = "TEST",
    with_pixels: bool = True,
    compress: str | None = None,
    unsigned_bits: int | None = None,
) -> Path:
    """Write one CT slice holding ``hu`` (stored as ``(hu - intercept) / slope``, signed 16-bit).

    ``compress`` is a pydicom transfer syntax UID for ``Dataset.compress`` (RLE, JPEG-LS,
    JPEG 2000 lossless), or ``None`` for explicit VR little endian. ``unsigned_bits`` stores
    unsigned values with that BitsStored and sets the unused high bits (as some old
    scanners did with overlays), which a reader must ignore.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Phantom"
    ds.PatientID = "TEST001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = study_uid + ".9"
    ds.StudyDate = "20240101"
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.PixelSpacing = [pixel_spacing[0], pixel_spacing[1]]
    ds.SliceThickness = thickness
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    if padding is not None:
        ds.PixelPaddingValue = padding
    if with_pixels:
        stored = np.rint((hu.astype(np.float64) - intercept) / slope).astype(np.int16)
        if padding is not None:
            stored[hu <= -2000] = padding
        if unsigned_bits is not None:
            ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, unsigned_bits, unsigned_bits - 1
            stored = stored.astype(np.uint16) | np.uint16((0xFFFF << unsigned_bits) & 0xFFFF)
        ds.PixelData = stored.tobytes()
        if compress is not None:
            ds.compress(compress, stored)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(
    folder: Path,
    n: int = 5,
    *,
    size: int = 32,
    spacing: float = 1.25,
    z0: float = -100.0,
    orientation: tuple[float, ...] = AXIAL,
    series_uid: str | None = None,
    names: list[str] | None = None,
    step_offsets: dict[int, float] | None = None,
    **kwargs,
) -> tuple[list[Path], str]:
    """Write an ``n``-slice series along the orientation's normal; returns (files, series UID).

    Files are named in REVERSE anatomical order by default (slice 0 = highest name) so that
    tests catch sorting by file name. ``step_offsets`` shifts single slices along the normal.
    """
    uid = series_uid or generate_uid()
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    files = []
    for i in range(n):
        along = z0 + i * spacing + (step_offsets or {}).get(i, 0.0)
        position = tuple(float(v) for v in normal * along)
        name = names[i] if names else f"IM{n - i:04d}.dcm"
        files.append(
            write_slice(folder / name, hu_slice(size, i), position=position, orientation=orientation,
                        series_uid=uid, instance=i + 1, **kwargs)
        )
    return files, uid
