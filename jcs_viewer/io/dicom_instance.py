"""A DICOM file read whole to be stored elsewhere (C-STORE, STOW-RS), bare data sets included."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from jcs_viewer.io.dicom_scan import starts_like_a_data_set


def read_instance(path: str | os.PathLike[str], stop_before_pixels: bool = False) -> pydicom.Dataset:
    """A DICOM file as a data set to store elsewhere (C-STORE, STOW-RS), with its file meta.

    A bare data set (:func:`starts_like_a_data_set`) gets the file meta it was written without: its SOP class and
    instance, and the transfer syntax its first element showed (little endian, implicit or explicit VR).

    Raises:
        OSError, InvalidDicomError: the file cannot be read, or a bare data set names no SOP class or instance.
    """
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        if not starts_like_a_data_set(Path(path)):
            raise
    ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        raise InvalidDicomError("a data set without the DICOM file header, and without a SOP Class or Instance UID")
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    implicit = getattr(ds, "original_encoding", (True, True))[0]
    meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian if implicit else pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta, ds.preamble = meta, b"\0" * 128  # written as a Part 10 file, as STOW-RS bodies must be
    return ds
