"""NIfTI, MetaImage (MHA/MHD) and NRRD volumes through SimpleITK."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.io.grey_levels import looks_like_hu, to_grey_levels
from jcs_viewer.io.hu_estimate import estimated_hu, no_window_reason
from jcs_viewer.io.volume import StudyInfo, Volume

VOLUME_SUFFIXES = {".nii": "nifti", ".nii.gz": "nifti", ".mha": "mha", ".mhd": "mha", ".nrrd": "nrrd", ".nhdr": "nrrd"}


def volume_format(path: Path) -> str | None:
    """``"nifti"``, ``"mha"`` or ``"nrrd"`` from the file name, else ``None``."""
    name = path.name.lower()
    for suffix, fmt in VOLUME_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


#: a float volume whose values span this little holds normalised intensities, scaled to 0..FRACTIONAL_LEVELS
FRACTIONAL_SPAN = 16.0
FRACTIONAL_LEVELS = 4095


def _to_int16(array: np.ndarray, path: Path, warnings: list[str]) -> np.ndarray:
    if array.dtype == np.int16:
        return array
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        n_bad = int(array.size - np.count_nonzero(finite))
        if n_bad == array.size:
            raise StudyLoadError(f"{path} contains no usable values: every voxel is NaN or infinite.")
        if n_bad:
            fill = float(array[finite].min())
            array = np.where(finite, array, fill)
            warnings.append(f"{path.name} has {n_bad} NaN or infinite voxels; they were set to {fill:g}.")
        low, high = float(array.min()), float(array.max())
        if high - low <= FRACTIONAL_SPAN:  # normalised intensities (0..1, -1..1): whole numbers would erase them
            warnings.append(f"{path.name} holds fractional values {low:g}..{high:g}, a span too narrow for Hounsfield "
                            "units (air and soft tissue alone lie 1040 HU apart): they were read as normalised "
                            f"intensities and scaled linearly to 0..{FRACTIONAL_LEVELS}.")
            return np.rint((array - low) * (FRACTIONAL_LEVELS / max(high - low, 1e-12))).astype(np.int16)
        array = np.rint(array)
    low, high = float(array.min()), float(array.max())
    if low >= 0 and high > 32767:  # unsigned values past int16 (a 16-bit image scaled by 257): not HU either way
        warnings.append(f"{path.name} values {low:g}..{high:g} exceed the int16 range and were scaled linearly to "
                        "0..32767.")
        return np.rint(array * (32767.0 / high)).astype(np.int16)
    if low < -32768 or high > 32767:
        warnings.append(f"{path.name} values {low:g}..{high:g} exceed the int16 range and were clipped.")
        array = np.clip(array, -32768, 32767)
    return array.astype(np.int16)


def _nifti_nan_mask(path: Path) -> np.ndarray | None:
    """Which voxels of a float NIfTI-1 file are NaN or infinite, flat in the file's order, read from the file.

    ITK's NIfTI reader silently turns NaN into 0 (a wall of water through a CT), so they are found before it.
    ``None`` when the file is not a float NIfTI-1 image.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fp:
        header = fp.read(348)
        if len(header) < 348:
            return None
        order = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
        if struct.unpack(order + "i", header[:4])[0] != 348:
            return None  # NIfTI-2: not checked
        dims = struct.unpack(order + "8h", header[40:56])
        datatype = struct.unpack(order + "h", header[70:72])[0]
        vox_offset = int(struct.unpack(order + "f", header[108:112])[0])
        dtype = {16: "f4", 64: "f8"}.get(datatype)
        if dtype is None:
            return None
        total = int(np.prod([max(1, d) for d in dims[1 : 1 + max(1, min(dims[0], 7))]]))
        fp.read(max(0, vox_offset - 348))
        item = np.dtype(order + dtype)
        bad = np.zeros(total, bool)
        seen = 0
        while seen < total:
            chunk = fp.read(min(total - seen, 1 << 22) * item.itemsize)
            if not chunk:
                break
            values = np.frombuffer(chunk[: len(chunk) // item.itemsize * item.itemsize], item)
            bad[seen : seen + values.size] = ~np.isfinite(values)
            seen += values.size
    return bad


def _nifti_nan_voxels(path: Path, image, warnings: list[str]):
    """The NaN voxels of a float NIfTI as an image on ``image``'s grid (to be reoriented with it), or None."""
    import SimpleITK as sitk

    try:
        bad = _nifti_nan_mask(path)
    except (OSError, EOFError, struct.error, ValueError):
        return None  # ITK read it; this check is best effort
    if bad is None or not bad.any():
        return None
    nans, total = int(np.count_nonzero(bad)), bad.size
    if nans == total:
        raise StudyLoadError(f"{path} contains no usable values: every voxel is NaN or infinite.")
    shape = tuple(reversed(image.GetSize()))
    if int(np.prod(shape)) != total:  # a 4-D file of one volume, or the like: counted, not placed
        warnings.append(f"{path.name} has {nans} NaN or infinite voxels; they were read as 0.")
        return None
    mask = sitk.GetImageFromArray(bad.reshape(shape).view(np.uint8))
    mask.CopyInformation(image)
    return mask


def _fill_nan_voxels(array: np.ndarray, mask: np.ndarray, path: Path, warnings: list[str]) -> None:
    """Set the (reoriented) NaN voxels to the lowest real value, as a float MHA's are (:func:`_to_int16`)."""
    fill = int(array[~mask].min())
    array[mask] = fill
    warnings.append(f"{path.name} has {int(np.count_nonzero(mask))} NaN or infinite voxels; they were set to "
                    f"{fill}, its lowest value.")


def _nifti_bytes(path: Path) -> tuple[bytes, int]:
    """The first 352 bytes of a NIfTI file and the length of its (uncompressed) content."""
    import zlib

    if path.name.lower().endswith(".gz"):
        total, head = 0, b""
        try:
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(1 << 22):
                    head = head or chunk[:352]
                    total += len(chunk)
        except (EOFError, OSError, zlib.error) as exc:
            raise StudyLoadError(f"{path} is truncated or damaged (its compressed data stops early: {exc}).") from None
        return head, total
    with open(path, "rb") as fp:
        return fp.read(352), path.stat().st_size


def _check_nifti_complete(path: Path) -> tuple[float, float, float] | None:
    """Refuse a NIfTI file that holds less voxel data than its header declares (readers zero-fill the rest).

    Returns:
        The header's voxel sides ``pixdim[1:4]`` (x, y, z of its own grid) for a NIfTI-1 file, else None.
    """
    head, total = _nifti_bytes(path)
    if len(head) < 348:
        raise StudyLoadError(f"{path} is truncated: it ends inside its NIfTI header.")
    for order in ("<", ">"):
        if struct.unpack(order + "i", head[:4])[0] == 348:
            break
    else:
        return None  # NIfTI-2 or not NIfTI at all: SimpleITK decides
    pixdim = struct.unpack(order + "3f", head[80:92])
    dims = struct.unpack(order + "8h", head[40:56])
    bitpix = struct.unpack(order + "h", head[72:74])[0]
    offset = struct.unpack(order + "f", head[108:112])[0]
    if not 1 <= dims[0] <= 7 or bitpix <= 0 or not np.isfinite(offset):
        return pixdim
    expected = int(offset) + int(np.prod([max(1, d) for d in dims[1 : dims[0] + 1]], dtype=np.int64)) * bitpix // 8
    if total < expected:
        raise StudyLoadError(f"{path} is truncated: {total:,} bytes of {expected:,} that its header declares "
                             f"({100 * total / expected:.0f} %); readers would fill the rest with zeros.")
    return pixdim


def _assumed_sides(pixdim: tuple[float, float, float] | None, image, path: Path, warnings: list[str]) -> bool:
    """Whether ITK put 1 mm in place of a voxel side the NIfTI header gives as 0 (or not a number); says so."""
    if pixdim is None:
        return False
    axes = [axis for axis, (given, read) in enumerate(zip(pixdim, image.GetSpacing()))
            if not (np.isfinite(given) and given > 0) and abs(read - 1.0) < 1e-6]
    if not axes:
        return False
    names = " and ".join("xyz"[a] for a in axes)
    warnings.append(f"{path.name} gives no voxel size along {names} (pixdim {' / '.join(f'{v:g}' for v in pixdim)}); "
                    "1 mm is assumed, so sizes in mm and mL are not the patient's.")
    return True


def load_itk_volume(path: Path) -> Volume:
    """Read a 3-D volume file, reoriented so that the array is ``(z, y, x)`` in LPS.

    The image is permuted/flipped (never resampled) to the orientation closest to
    LPS, so that an axial scan shows like an axial DICOM series; origin and direction
    are copied from the reoriented image.

    Raises:
        StudyLoadError: unreadable file, not 3-D grey-scale, or only NaN values.
    """
    import SimpleITK as sitk  # heavy: imported when a volume file is actually opened

    fmt = volume_format(path) or "nifti"
    pixdim = _check_nifti_complete(path) if fmt == "nifti" else None
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise StudyLoadError(
            f"Cannot read volume file {path}: it is damaged, truncated or not a valid {fmt.upper()} file."
        ) from exc
    if image.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise StudyLoadError(f"{path} holds complex numbers (k-space or phase data, not an image of the body); "
                             "a CT volume of real values is needed.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise StudyLoadError(f"{path} is a multi-channel (colour or vector) image; a grey-scale volume is needed.")
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise StudyLoadError(f"{path} is a {image.GetDimension()}-D image; a 3-D volume is needed.")
    warnings: list[str] = []
    assumed = _assumed_sides(pixdim, image, path, warnings)  # on the file's own grid, before reorienting
    nan_voxels = None
    if fmt == "nifti" and image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        nan_voxels = _nifti_nan_voxels(path, image, warnings)
    # Internally every volume is (z, y, x) in LPS; the source's own orientation is remembered so that
    # exported masks go back onto the file's voxel grid (jcs_viewer.io.export.export_nifti).
    source = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    image = sitk.DICOMOrient(image, "LPS")
    array = _to_int16(sitk.GetArrayFromImage(image), path, warnings)
    if nan_voxels is not None:
        _fill_nan_voxels(array, sitk.GetArrayFromImage(sitk.DICOMOrient(nan_voxels, "LPS")).astype(bool), path,
                         warnings)
    volume = _volume(array, image, path, fmt, warnings)
    volume.voxel_size_assumed = assumed
    if source != "LPS":
        volume.source_orientation = source
    return volume


def _volume(array: np.ndarray, image, path: Path, fmt: str, warnings: list[str]) -> Volume:
    is_hu = looks_like_hu(array)
    hu = None if is_hu else estimated_hu(array, path.name, warnings)
    if hu is not None:
        array = hu
    elif not is_hu:
        warnings.append(
            f"{path.name} does not look like Hounsfield units (values {int(array.min())}..{int(array.max())}, "
            "no air near -1000): loaded as plain intensities."
        )
        array = to_grey_levels(np.ascontiguousarray(array), path.name, warnings)
    return Volume(
        array=np.ascontiguousarray(array),
        spacing=tuple(reversed(image.GetSpacing())),
        origin=image.GetOrigin(),
        direction=np.array(image.GetDirection()).reshape(3, 3),
        is_hu=is_hu or hu is not None,
        hu_estimated=hu is not None,
        intensity_reason="" if is_hu or hu is not None else no_window_reason(path.name),
        info=StudyInfo(series_description=path.name),
        source_files=(path,),
        warnings=warnings,
        source_format=fmt,
    )
