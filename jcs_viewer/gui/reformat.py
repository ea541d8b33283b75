"""Coronal and sagittal reformats as numpy VIEWS of the one ``(z, y, x)`` volume (numpy only, no Qt).

Nothing here copies a volume: a plane is ``array[:, y, :]`` (coronal, rows = z, columns = x) or
``array[:, :, x]`` (sagittal, rows = z, columns = y), i.e. a strided view. The only copies are
per-plane and small (an activation-map plane is ``(z, w)`` at the CAM's reduced width).

Display convention used by :mod:`jcs_viewer.gui.mpr`: row ``z`` is drawn at height ``z * dz`` mm in
a y-up view box, so the superior end (z ascending = towards the head) is at the top; columns keep the
axial view's left-right order (patient right on the image left for standard LPS studies), and the
sagittal columns run anterior (row 0 of the axial slice) to posterior, anterior on the left.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Plane = Literal["coronal", "sagittal"]


def plane_axis(plane: Plane) -> int:
    """The volume axis a plane is fixed on: 1 (y) for coronal, 2 (x) for sagittal."""
    if plane == "coronal":
        return 1
    if plane == "sagittal":
        return 2
    raise ValueError(f"unknown plane {plane!r}; use 'coronal' or 'sagittal'")


def plane_of(array: np.ndarray, plane: Plane, index: int) -> np.ndarray:
    """The ``(z, columns)`` plane at ``index`` as a view of ``array`` (never a copy)."""
    axis = plane_axis(plane)
    index = int(np.clip(index, 0, array.shape[axis] - 1))
    return array[:, index, :] if axis == 1 else array[:, :, index]


#: Slab projections: MIP shows vessels against nodules, MinIP airways and ground glass (lower-attenuating lung
#: stands out), the average a thicker, quieter slice.
SLAB_MODES = {"off": "Off", "mip": "MIP", "minip": "MinIP", "mean": "Average"}


def slab(array: np.ndarray, axis: int, index: int, thickness_mm: float, spacing_mm: float,
         mode: str) -> np.ndarray:
    """The slab ``thickness_mm`` thick centred on ``index`` along ``axis``, projected by ``mode``.

    Off, or a slab thinner than two slices: the slice itself (a view, no copy). The slab is cut at the volume's
    ends rather than padded.
    """
    index = int(np.clip(index, 0, array.shape[axis] - 1))
    half = int(round(thickness_mm / max(spacing_mm, 1e-6) / 2.0))
    if mode == "off" or half < 1:
        return array[(slice(None),) * axis + (index,)]  # basic indexing: a view
    if mode not in SLAB_MODES:
        raise ValueError(f"unknown slab mode {mode!r}; choose one of {', '.join(SLAB_MODES)}")
    lo, hi = max(0, index - half), min(array.shape[axis], index + half + 1)
    block = np.take(array, np.arange(lo, hi), axis=axis)
    if mode == "mip":
        return block.max(axis=axis)
    if mode == "minip":
        return block.min(axis=axis)
    return block.mean(axis=axis, dtype=np.float32)


def plane_size_mm(shape: tuple[int, int, int], spacing: tuple[float, float, float],
                  plane: Plane) -> tuple[float, float]:
    """``(width, height)`` of a plane in mm: columns times their spacing, slices times the z spacing.

    Drawing the plane into this rectangle in a view box with a locked 1:1 aspect gives the true
    anatomical proportions (e.g. 5 mm slices are 5x taller than 0.7 mm pixels).
    """
    nz, ny, nx = shape
    dz, dy, dx = spacing
    columns, col_spacing = (nx, dx) if plane_axis(plane) == 1 else (ny, dy)
    return columns * col_spacing, nz * dz


def cam_plane(cams: np.ndarray, plane: Plane, index: int, extent: int,
              keep_rows: np.ndarray | None = None) -> np.ndarray:
    """The activation values along one coronal row / sagittal column of every axial slice.

    Activation maps exist per axial slice at reduced resolution ``(z, h, w)``. For the coronal plane
    at volume row ``index`` (of ``extent`` rows) this takes, for each slice, the CAM row at the
    same relative position, interpolated linearly between the two nearest CAM rows (centre-aligned,
    like the axial display's bilinear stretch). The result is ``(z, w)`` (coronal) or ``(z, h)``
    (sagittal) uint8; the view stretches it over the plane.

    Args:
        cams: uint8 ``(z, h, w)`` activation maps.
        plane: "coronal" (fixed volume row) or "sagittal" (fixed volume column).
        index: the volume row/column of the plane.
        extent: number of volume rows (coronal) or columns (sagittal).
        keep_rows: optional bool ``(z,)``; slices where it is False are zeroed (e.g. show the
            activation only on flagged slices).
    """
    axis = plane_axis(plane)
    size = cams.shape[axis]
    pos = float(np.clip((index + 0.5) * size / max(1, extent) - 0.5, 0.0, size - 1.0))
    lo = int(np.floor(pos))
    hi = min(lo + 1, size - 1)
    frac = pos - lo
    a, b = plane_of(cams, plane, lo), plane_of(cams, plane, hi)
    if frac < 1e-6 or lo == hi:
        out = np.array(a, dtype=np.uint8)  # a (z, w) copy: small, and safe to zero rows in
    else:
        out = np.rint(a * (1.0 - frac) + b * frac).astype(np.uint8)
    if keep_rows is not None:
        out[~np.asarray(keep_rows, dtype=bool)] = 0
    return out


def cam_in_lungs(values: np.ndarray, lung: np.ndarray, spacing_mm: tuple[float, float],
                 margin_mm: float = 4.0, z_sigma_mm: float = 4.0) -> np.ndarray:
    """A reformatted plane of per-slice activation maps, drawn where it can be read: within the lungs.

    Each axial slice's map is normalised on its own, so side by side in a coronal or sagittal plane they stack
    into bands that run across the chest wall, mediastinum and spine. Here the plane's values are stretched to
    the plane's width, blended along z (a Gaussian of ``z_sigma_mm``: neighbouring slices' maps meet) and kept
    within the lungs of that plane grown by ``margin_mm`` (juxtapleural lesions stay visible).

    Args:
        values: uint8 ``(z, w)`` from :func:`cam_plane`.
        lung: the lung mask's plane, ``(z, n)`` at the volume's resolution.
        spacing_mm: the plane's (z, in-plane) spacing.
        margin_mm: how far outside the lungs the map still shows.
        z_sigma_mm: the blend along z.

    Returns:
        uint8 ``(z, n)``.
    """
    import cv2

    nz, n = lung.shape
    stretched = cv2.resize(np.ascontiguousarray(values, dtype=np.float32), (n, nz), interpolation=cv2.INTER_LINEAR)
    sigma = z_sigma_mm / max(float(spacing_mm[0]), 1e-3)
    if sigma >= 0.3 and nz > 1:
        stretched = cv2.GaussianBlur(stretched, (1, 2 * int(np.ceil(2.5 * sigma)) + 1), sigmaX=0.0, sigmaY=sigma,
                                     borderType=cv2.BORDER_REPLICATE)
    grow = int(round(margin_mm / max(float(spacing_mm[1]), 1e-3)))
    inside = (np.asarray(lung) > 0).astype(np.uint8)
    if grow > 0:
        inside = cv2.dilate(inside, np.ones((1, 2 * grow + 1), np.uint8))  # in plane only: no lung a slice away
    return np.rint(stretched * inside).clip(0, 255).astype(np.uint8)


def axis_letters(direction_column: np.ndarray) -> tuple[str, str]:
    """Patient-direction letters at the low and high end of an index axis.

    Args:
        direction_column: the LPS unit vector of the index axis (a column of ``Volume.direction``).

    Returns:
        ``(low_end, high_end)``, e.g. ``("R", "L")`` for an axis pointing to the patient's left
        (+X in LPS), ``("A", "P")`` for +Y, ``("I", "S")`` for +Z. The dominant component decides.
    """
    vec = np.asarray(direction_column, dtype=float).reshape(3)
    axis = int(np.argmax(np.abs(vec)))
    low, high = (("R", "L"), ("A", "P"), ("I", "S"))[axis]
    return (low, high) if vec[axis] >= 0 else (high, low)
