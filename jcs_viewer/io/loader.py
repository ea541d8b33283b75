"""``load_study``: one entry point for every study format the viewer opens."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.io.dicom_loader import choose_series, load_series
from jcs_viewer.io.dicom_scan import ScanResult, describe_files, read_header, scan
from jcs_viewer.io.image_stack import IMAGE_SUFFIXES, image_files, load_image_stack
from jcs_viewer.io.itk_loader import load_itk_volume, volume_format
from jcs_viewer.io.reorient import as_axial
from jcs_viewer.io.volume import Volume
from jcs_viewer.vocabulary import counted

log = logging.getLogger(__name__)


def load_study(path: str | os.PathLike[str], series_uid: str | None = None) -> Volume:
    """Load a study as an int16 ``(z, y, x)`` volume.

    Args:
        path: a folder of DICOM files (searched recursively), a folder of PNG/JPEG slices,
            a single DICOM file, or a NIfTI (``.nii``/``.nii.gz``), MetaImage (``.mha``/``.mhd``)
            or NRRD file.
        series_uid: which DICOM series to load; by default the CT series with the most slices.

    Returns:
        The volume; ``volume.warnings`` lists problems found (gaps, duplicates, tilt, other
        series present, ...), each naming the files concerned. They are also logged.

    Raises:
        StudyLoadError: one sentence naming the file or folder and the problem.

    A coronal or sagittal 3-D series comes back as axial slices (:func:`jcs_viewer.io.reorient.as_axial`).
    """
    source = check_study_path(path)
    if source.is_dir():
        volume = _load_folder(source, series_uid)
    elif volume_format(source):
        volume = load_itk_volume(source)
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        volume = load_image_stack([source])
    else:
        volume = _load_dicom_file(source, series_uid)
    volume = as_axial(volume)
    for warning in volume.warnings:
        log.warning("%s", warning)
    return volume


def check_study_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a study's folder or file, or one sentence on why it is neither.

    Raises:
        StudyLoadError: it does not exist, or it is a pipe, socket or device (a pipe would block the read).
    """
    source = Path(path)
    if not source.exists():
        raise StudyLoadError(f"Study path {source} does not exist.")
    if not source.is_dir() and not source.is_file():
        raise StudyLoadError(f"Study path {source} is not a regular file or folder (a pipe, socket or device).")
    return source


def _load_folder(folder: Path, series_uid: str | None) -> Volume:
    result = scan(folder)
    if not result.entries and series_uid is None:
        images = image_files(folder)
        if images:
            return load_image_stack(images)
        volumes = sorted(p for p in folder.iterdir() if p.is_file() and volume_format(p))
        if len(volumes) == 1:
            return load_itk_volume(volumes[0])
        if volumes and not result.problems:
            raise StudyLoadError(f"{folder} holds no DICOM series but {len(volumes)} volume files "
                                 f"({describe_files(volumes)}): open the CT file itself.")
    volume = _load_scanned(result, str(folder), series_uid)
    beside = sorted(p for p in folder.iterdir() if p.is_file() and volume_format(p))
    if beside:  # a study of its own, or a mask: either way not silently left out
        volume.warnings.append(f"Also there: {counted(len(beside), 'volume file')} ({describe_files(beside)}), "
                               "not opened with the DICOM series; open it by itself.")
    return volume


def _load_scanned(result: ScanResult, where: str, series_uid: str | None) -> Volume:
    entry, warnings = choose_series(result, where, series_uid)
    warnings += [f"Skipped: {problem}" for problem in result.problems]
    return load_series(entry, warnings)


def _load_dicom_file(path: Path, series_uid: str | None) -> Volume:
    found = read_header(path)  # raises StudyLoadError for a damaged DICOM file
    if found is None:
        raise StudyLoadError(
            f"{path} is not a file this viewer can open (DICOM, NIfTI, MHA/MHD, NRRD, PNG or JPEG)."
        )
    return _load_scanned(scan(path), str(path), series_uid)
