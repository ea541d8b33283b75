"""Split a multi-frame (enhanced) DICOM image into one slice header per frame.

Enhanced CT/MR objects keep each frame's position, orientation, pixel spacing and
rescale in functional groups: per-frame groups first, then the shared ones.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pydicom

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.io.dicom_scan import SliceHeader, read_failure


def _item(groups: list, shared, index: int, sequence: str):
    """First item of ``sequence`` for frame ``index`` (per-frame group, else shared group)."""
    for source in (groups[index] if index < len(groups) else None, shared):
        items = None if source is None else source.get(sequence)
        if items:
            return items[0]
    return None


def _floats(item, keyword: str, count: int) -> tuple[float, ...] | None:
    try:
        value = None if item is None else item.get(keyword)
        if value is None or len(value) != count:
            return None
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None


def _float(item, keyword: str) -> float | None:
    try:
        value = None if item is None else item.get(keyword)
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def frame_headers(h: SliceHeader) -> list[SliceHeader]:
    """One header per frame of the multi-frame file ``h``.

    Raises:
        StudyLoadError: the file's header cannot be read again.
    """
    try:
        ds = pydicom.dcmread(h.path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise StudyLoadError(f"DICOM file {h.path} is damaged or truncated ({read_failure(exc)}).") from exc
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    groups = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    frames = []
    for i in range(h.n_frames):
        plane = _item(groups, shared, i, "PlanePositionSequence")
        orient = _item(groups, shared, i, "PlaneOrientationSequence")
        measures = _item(groups, shared, i, "PixelMeasuresSequence")
        rescale = _item(groups, shared, i, "PixelValueTransformationSequence")
        orientation = _floats(orient, "ImageOrientationPatient", 6) or h.orientation
        position = _floats(plane, "ImagePositionPatient", 3)
        if position is None and h.position is not None and orientation is not None and h.spacing_between_slices:
            # Classic multi-frame: frames stacked along the normal from the file's position.
            normal = np.cross(orientation[:3], orientation[3:])
            position = tuple(float(v) for v in np.add(h.position, normal * i * h.spacing_between_slices))
        slope = _float(rescale, "RescaleSlope")
        frames.append(
            replace(
                h,
                n_frames=1,
                frame=i,
                pixel_offset=None,  # frames are decoded through pydicom
                position=position,  # type: ignore[arg-type]
                orientation=orientation,
                pixel_spacing=_floats(measures, "PixelSpacing", 2) or h.pixel_spacing,  # type: ignore[arg-type]
                slice_thickness=_float(measures, "SliceThickness") or h.slice_thickness,
                slope=slope if slope else h.slope,
                intercept=_float(rescale, "RescaleIntercept") if rescale is not None else h.intercept,
                instance_number=i,
            )
        )
    return frames
