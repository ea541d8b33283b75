"""Order the slices of a DICOM series in space and check their geometry.

Slices are sorted by ImagePositionPatient projected on the slice normal (the cross
product of the two ImageOrientationPatient directions), never by file name or
InstanceNumber. Problems a reader should know about become warnings naming the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.io.dicom_scan import SliceHeader, describe_files
from jcs_viewer.vocabulary import counted

DUPLICATE_TOLERANCE_MM = 0.01
GAP_FACTOR = 1.5  # a step this many times the median means slices are missing
UNEVEN_FRACTION = 0.1  # steps differing from the median by more than this are uneven
TILT_LIMIT_DEG = 0.5
_ORIENTATION_TOLERANCE = 1e-3


@dataclass
class SeriesGeometry:
    """Sorted slices of one series and the volume geometry they define."""

    headers: list[SliceHeader]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    warnings: list[str] = field(default_factory=list)
    #: a voxel side was not in the headers (no usable PixelSpacing, or no position and no thickness): 1 mm stands in
    size_assumed: bool = False


#: sanity bounds, far beyond any CT series (HRCT gaps are 10-20 mm; a whole body is about 2 m): positions past them
#: are wrong, not unusual.
MAX_SLICE_STEP_MM = 100.0
MAX_EXTENT_MM = 3000.0


def _same_orientation(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    if a is None or b is None:
        return a is b
    return max(abs(x - y) for x, y in zip(a, b)) < _ORIENTATION_TOLERANCE


def _majority_group(headers: list[SliceHeader], warnings: list[str]) -> list[SliceHeader]:
    """Keep the slices sharing the most common orientation and image size."""
    groups: list[list[SliceHeader]] = []
    for h in headers:
        for group in groups:
            ref = group[0]
            if (ref.rows, ref.columns) == (h.rows, h.columns) and _same_orientation(ref.orientation, h.orientation):
                group.append(h)
                break
        else:
            groups.append([h])
    if len(groups) == 1:
        return headers
    groups.sort(key=len, reverse=True)
    kept = groups[0]
    dropped = [h.path for g in groups[1:] for h in g]
    ref = kept[0]
    orient = "unknown" if ref.orientation is None else "[" + ", ".join(f"{v:g}" for v in ref.orientation) + "]"
    warnings.append(
        f"Mixed orientations or image sizes in the series: kept the {len(kept)} slices with orientation "
        f"{orient} and size {ref.rows}x{ref.columns}, ignored {len(dropped)} other files "
        f"({describe_files(dropped)})."
    )
    return kept


def _pixel_spacing(h: SliceHeader, warnings: list[str]) -> tuple[tuple[float, float], bool]:
    """The pixel size (row, column spacing) and whether it was assumed (1 mm: no usable PixelSpacing)."""
    if h.pixel_spacing and all(s > 0 for s in h.pixel_spacing):
        return h.pixel_spacing, False
    values = " / ".join(f"{v:g}" for v in h.pixel_spacing or ())
    given = f"PixelSpacing {values}" if values else "no PixelSpacing"
    warnings.append(f"{h.path.name} gives {given}; assuming 1 mm pixels (sizes in mm and mL are not the patient's).")
    return (1.0, 1.0), True


def _thickness(h: SliceHeader) -> float | None:
    for value in (h.spacing_between_slices, h.slice_thickness):
        if value is not None and value > 0:
            return value
    return None


def arrange_slices(headers: list[SliceHeader]) -> SeriesGeometry:
    """Sort, de-duplicate and check the image slices of one series.

    Args:
        headers: headers of the series' files that hold pixel data.

    Returns:
        The kept slices in ascending position along the slice normal, spacing ``(z, y, x)``
        in mm (z = median step between positions), origin (first slice's position) and
        direction (columns: row, column and normal directions).

    Raises:
        StudyLoadError: no header given.
    """
    if not headers:
        raise StudyLoadError("The series holds no image slices.")
    warnings: list[str] = []
    headers = _majority_group(list(headers), warnings)
    ref = headers[0]
    (dy, dx), pixel_assumed = _pixel_spacing(ref, warnings)

    if ref.orientation is None or any(h.position is None for h in headers):
        return _without_positions(headers, (dy, dx), pixel_assumed, warnings)

    row = np.array(ref.orientation[:3], float)
    col = np.array(ref.orientation[3:], float)
    normal = np.cross(row, col)
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise StudyLoadError(f"{ref.path} has an invalid ImageOrientationPatient (parallel directions).")
    normal /= norm
    positions = np.array([h.position for h in headers], float)
    along = positions @ normal
    order = sorted(range(len(headers)), key=lambda i: (along[i], headers[i].instance_number))
    headers = [headers[i] for i in order]
    positions = positions[order]
    along = along[order]

    headers, positions, along = _drop_duplicates(headers, positions, along, warnings)
    direction = np.column_stack([row / np.linalg.norm(row), col / np.linalg.norm(col), normal])
    origin = tuple(float(v) for v in positions[0])

    if len(headers) == 1:
        dz = _thickness(headers[0])
        note = f"{dz:g} mm from SliceThickness" if dz else "assumed 1 mm"
        warnings.append(f"Only one slice ({headers[0].path.name}): loaded as a 1-slice volume, slice spacing {note}.")
        return SeriesGeometry(headers, (dz or 1.0, dy, dx), origin, direction, warnings,
                              size_assumed=pixel_assumed or not dz)

    steps = np.diff(along)
    dz = round(float(np.median(steps)), 6)  # DICOM positions carry ~6 significant digits
    if dz > MAX_SLICE_STEP_MM or float(along[-1] - along[0]) > MAX_EXTENT_MM:
        raise StudyLoadError(
            f"The slices of {ref.path.parent} are {dz:.3g} mm apart over {float(along[-1] - along[0]):.3g} mm "
            "(ImagePositionPatient): no CT series spans that, so its positions are wrong.")
    _check_steps(headers, steps, dz, warnings)
    _check_tilt(headers, positions, normal, warnings)
    return SeriesGeometry(headers, (dz, dy, dx), origin, direction, warnings, size_assumed=pixel_assumed)


def _without_positions(
    headers: list[SliceHeader], pixel: tuple[float, float], pixel_assumed: bool, warnings: list[str]
) -> SeriesGeometry:
    """Fallback for files lacking ImagePositionPatient/ImageOrientationPatient."""
    missing = [h.path for h in headers if h.position is None or h.orientation is None]
    headers = sorted(headers, key=lambda h: h.instance_number)
    dz = _thickness(headers[0]) or 1.0
    if len(headers) > 1:
        warnings.append(
            f"Files lack ImagePositionPatient/ImageOrientationPatient ({describe_files(missing)}): slices are "
            f"ordered by InstanceNumber and {dz:g} mm apart, positions in the patient are unknown."
        )
    else:
        warnings.append(f"Only one slice ({headers[0].path.name}) and no position in the patient: loaded as a "
                        f"1-slice volume, slice spacing {dz:g} mm.")
    ref = headers[0]
    direction = np.eye(3)
    if ref.orientation is not None:
        row, col = np.array(ref.orientation[:3]), np.array(ref.orientation[3:])
        if np.linalg.norm(np.cross(row, col)) > 1e-6:
            direction = np.column_stack([row, col, np.cross(row, col)])
    origin = ref.position or (0.0, 0.0, 0.0)
    return SeriesGeometry(headers, (dz, *pixel), origin, direction, warnings,
                          size_assumed=pixel_assumed or _thickness(ref) is None)


def _drop_duplicates(
    headers: list[SliceHeader], positions: np.ndarray, along: np.ndarray, warnings: list[str]
) -> tuple[list[SliceHeader], np.ndarray, np.ndarray]:
    """Keep the first of slices at the same position along the normal."""
    keep = [0]
    dropped: list[tuple[str, str]] = []
    for i in range(1, len(headers)):
        if along[i] - along[keep[-1]] < DUPLICATE_TOLERANCE_MM:
            dropped.append((headers[i].path.name, headers[keep[-1]].path.name))
        else:
            keep.append(i)
    if dropped:
        pairs = ", ".join(f"{a} (same as {b})" for a, b in dropped[:4])
        more = f" and {len(dropped) - 4} more" if len(dropped) > 4 else ""
        warnings.append(f"Duplicate slice positions: ignored {len(dropped)} files: {pairs}{more}.")
    return [headers[i] for i in keep], positions[keep], along[keep]


def _check_steps(headers: list[SliceHeader], steps: np.ndarray, dz: float, warnings: list[str]) -> None:
    gaps = [i for i, s in enumerate(steps) if s > GAP_FACTOR * dz]
    for i in gaps[:5]:
        missing = max(1, round(steps[i] / dz) - 1)
        warnings.append(
            f"Gap of {steps[i]:.2f} mm between {headers[i].path.name} and {headers[i + 1].path.name} "
            f"(about {counted(missing, 'missing slice')}; usual spacing {dz:.2f} mm)."
        )
    if len(gaps) > 5:
        warnings.append(f"{len(gaps) - 5} more gaps between slices.")
    uneven = [i for i, s in enumerate(steps) if abs(s - dz) > UNEVEN_FRACTION * dz and s <= GAP_FACTOR * dz]
    if uneven:
        files = [headers[i + 1].path for i in uneven]
        lo, hi = float(steps.min()), float(steps.max())
        warnings.append(
            f"Uneven slice spacing ({lo:.2f} to {hi:.2f} mm, median {dz:.2f} mm used) at "
            f"{describe_files(files)}."
        )


def _check_tilt(headers: list[SliceHeader], positions: np.ndarray, normal: np.ndarray, warnings: list[str]) -> None:
    travel = positions[-1] - positions[0]
    length = float(np.linalg.norm(travel))
    if length < 1e-6:
        return
    cosine = min(1.0, abs(float(travel @ normal)) / length)
    angle = float(np.degrees(np.arccos(cosine)))
    if angle > TILT_LIMIT_DEG:
        warnings.append(
            f"Gantry tilt of {angle:.1f} degrees (slices from {headers[0].path.name} to {headers[-1].path.name} "
            "are shifted, not stacked straight): shown without tilt correction, 3-D geometry is approximate."
        )

