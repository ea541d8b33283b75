"""A folder of PNG/JPEG slices as a volume (8-bit intensities, not HU)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.io.dicom_scan import MAX_SIDE, describe_files
from jcs_viewer.io.grey_levels import to_grey_levels
from jcs_viewer.io.volume import StudyInfo, Volume
from jcs_viewer.vocabulary import counted

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def natural_key(path: Path) -> list[object]:
    """Sort key putting ``slice2.png`` before ``slice10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    """PNG/JPEG files directly in ``folder``, in natural name order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=natural_key)


def _read_grey(path: Path) -> tuple[np.ndarray, bool]:
    """The image as grey values, and whether it was in colour (its channels differ: marks, overlays)."""
    import SimpleITK as sitk  # imported only when images are actually opened

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()  # the header alone: a 30000-pixel image is refused before it is decoded
        if max(reader.GetSize()) > MAX_SIDE:
            width, height = reader.GetSize()[:2]
            raise StudyLoadError(f"Image {path} is {width}x{height} pixels: CT slices are at most {MAX_SIDE} "
                                 "pixels a side.")
        image = reader.Execute()
    except RuntimeError as exc:
        raise StudyLoadError(f"Cannot read image {path}: the file is damaged or not a PNG/JPEG image.") from exc
    array = sitk.GetArrayFromImage(image)
    coloured = False
    if image.GetNumberOfComponentsPerPixel() > 1:
        channels = array[..., :3].astype(np.float32)
        coloured = channels.shape[-1] == 3 and bool(np.any(channels.max(axis=-1) - channels.min(axis=-1) > 2))
        if channels.shape[-1] == 3:
            # Luminance (ITU-R BT.601); grey images saved as RGB keep their values.
            array = np.rint(channels @ np.array([0.299, 0.587, 0.114], np.float32))
        else:
            array = channels[..., 0]
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise StudyLoadError(f"{path} is not a 2-D image (shape {array.shape}).")
    return array, coloured


def load_image_stack(files: list[Path]) -> Volume:
    """Stack same-size grey-scale images, first file = slice 0.

    Raises:
        StudyLoadError: a file cannot be read or differs in size from the first.
    """
    if not files:
        raise StudyLoadError("No PNG or JPEG images to load.")
    first, first_coloured = _read_grey(files[0])
    coloured = [files[0]] if first_coloured else []
    # 16-bit images are gathered at full depth, then scaled to grey levels (to_grey_levels).
    volume = np.empty((len(files), *first.shape), np.int16 if first.dtype.itemsize == 1 else np.int32)
    for z, path in enumerate(files):
        if z == 0:
            pixels = first
        else:
            pixels, in_colour = _read_grey(path)
            if in_colour:
                coloured.append(path)
        if pixels.shape != first.shape:
            raise StudyLoadError(
                f"Image {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels but {files[0].name} is "
                f"{first.shape[1]}x{first.shape[0]}: all slices of a folder must have the same size."
            )
        volume[z] = pixels
    warnings: list[str] = []
    if coloured:  # coloured arrows or overlays would be read as tissue
        warnings.append(f"{counted(len(coloured), 'image')} in colour ({describe_files(coloured)}) were read as "
                        "grey (luminance): coloured marks on them count as image.")
    name = f"the images in {files[0].parent.name}"
    grey = to_grey_levels(volume, name, warnings)
    hu = _estimated_hu(grey, name, warnings)
    # First, the stack's note; what its values stand for only where no window's note follows to say it.
    warnings.insert(0, f"Loaded {len(files)} images from {files[0].parent} as slices in file-name order; they carry "
                       "no position or size, so 1 mm voxels are assumed"
                       + (" and values are image intensities, not HU." if hu is None else "."))
    return Volume(
        array=grey if hu is None else hu,
        spacing=(1.0, 1.0, 1.0),
        is_hu=hu is not None,
        hu_estimated=hu is not None,
        info=StudyInfo(series_description=files[0].parent.name),
        source_files=tuple(files),
        warnings=warnings,
        source_format="images",
    )


#: a stack of at least this many images is searched for a lung window: a CT-Seg CLAHE slice read alone shows one
#: in 25 of 145, and MedSeg's web slices (each a one-image stack in the figures) in 40 of 80; none of the eleven
#: CT-Seg volume stacks does
MIN_WINDOW_STACK = 3


def _estimated_hu(grey: np.ndarray, name: str, warnings: list[str]) -> np.ndarray | None:
    """A stack of slices in estimated HU where its grey levels show a linear lung window, else None (grey levels).

    A chest exported slice by slice through a lung window reads as the same chest exported as one volume file: in
    estimated HU, on the HU path, validated on real anatomy (the lesion-free chest crop as PNG slices through four
    lung windows: 5 to 27 of 112 slices positive and 11 to 33 mL of lesion read as grey levels, none and 0.1 to 0.2
    mL so). CLAHE stacks (CT-Seg) show no window and keep the 8-bit nets they were validated on; so do stacks of one or
    two images, whose few voxels make a window of noise more likely (MedSeg's test slices, 8 of 16 with a window:
    lesion Dice 0.696 in estimated HU against 0.749 as grey levels).
    """
    from jcs_viewer.io.hu_estimate import estimated_hu

    return estimated_hu(grey, name, warnings) if len(grey) >= MIN_WINDOW_STACK else None
