"""Coronal and sagittal series as axial slices: the array axes permuted, no resampling.

The models read axial chest slices. A 3-D series acquired coronal or sagittal (an isotropic
reconstruction, a NIfTI stored in another orientation) holds the same voxels an axial series would:
permuting the array's index axes so that the slice axis runs head-feet makes its slices axial
without interpolation. A few non-axial slices do not make a volume; they stay as they are and the
analysis calls them not assessable.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from jcs_viewer.io.volume import Volume

#: a non-axial series needs this many slices to be read as axial slices (fewer: a few slices, not a volume).
MIN_REFORMAT_SLICES = 24


def patient_axes(direction: np.ndarray) -> list[int]:
    """For each array index axis (x, y, z columns of ``direction``), the patient axis (0 x, 1 y, 2 z) it runs along."""
    d = np.abs(np.asarray(direction, dtype=float).reshape(3, 3))
    return [int(np.argmax(d[:, k])) for k in range(3)]


def as_axial(volume: Volume) -> Volume:
    """``volume`` with its slices axial (the same object when already axial or too few slices)."""
    axes = patient_axes(volume.direction)
    if axes[2] == 2 or len(set(axes)) < 3 or volume.array.shape[0] < MIN_REFORMAT_SLICES:
        return volume
    plane = {0: "sagittal", 1: "coronal"}[axes[2]]
    # New index axes (x, y, z) = the old ones that run along patient x, y, z.
    order = [axes.index(p) for p in range(3)]
    # Array axes are (z, y, x) = index axes (2, 1, 0): the new array axis for index axis k is 2 - k.
    array = np.ascontiguousarray(np.transpose(volume.array, [2 - order[2], 2 - order[1], 2 - order[0]]))
    spacing_xyz = np.array(volume.spacing[::-1])[order]
    direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)[:, order]
    origin = np.asarray(volume.origin, dtype=float)
    if direction[2, 2] < 0:  # slices ascend feet -> head, as in every axial series
        origin = origin + direction[:, 2] * spacing_xyz[2] * (array.shape[0] - 1)
        direction[:, 2] *= -1.0
        array = np.ascontiguousarray(array[::-1])
    warning = (f"The series is {plane}; it is shown and analysed as {array.shape[0]} axial slices taken from it "
               f"(no interpolation; in-plane spacing {spacing_xyz[0]:.2f} x {spacing_xyz[1]:.2f} mm).")
    import SimpleITK as sitk

    source = volume.source_orientation or sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        tuple(float(v) for v in np.asarray(volume.direction, dtype=float).reshape(9)))
    return replace(volume, source_orientation=source, array=array, spacing=tuple(float(s) for s in spacing_xyz[::-1]),
                   direction=direction, origin=tuple(float(o) for o in origin),
                   warnings=list(volume.warnings) + [warning])
