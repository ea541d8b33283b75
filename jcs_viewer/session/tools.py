"""Slice-level editing tools built on :class:`LabelLayer` (each call is one undo step)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from jcs_viewer.session.labels import LabelLayer


def brush_radius_px(radius_mm: float, pixel_spacing_yx: tuple[float, float]) -> tuple[float, float]:
    """A brush of ``radius_mm`` in pixels along rows and columns (circular in mm)."""
    return radius_mm / pixel_spacing_yx[0], radius_mm / pixel_spacing_yx[1]


def ball_sections(center_z: float, radius_mm: float,
                  spacing_zyx: tuple[float, float, float]) -> list[tuple[int, tuple[float, float]]]:
    """The slices a ball of ``radius_mm`` centred on slice ``center_z`` crosses, each with the in-plane radius
    (pixels along rows and columns) of its section: what the 3-D brush paints, one disc a slice."""
    sz = float(spacing_zyx[0])
    reach = radius_mm / sz
    sections = []
    for z in range(math.floor(center_z - reach), math.ceil(center_z + reach) + 1):
        r_mm = math.sqrt(max(radius_mm ** 2 - ((z - center_z) * sz) ** 2, 0.0))
        if r_mm > 0:
            sections.append((z, brush_radius_px(r_mm, spacing_zyx[1:])))
    return sections


def hu_allowed(hu_slice: np.ndarray, hu_range: tuple[float, float] | None) -> np.ndarray | None:
    """Pixels a range-limited brush may paint, or None for no limit."""
    if hu_range is None:
        return None
    lo, hi = hu_range
    return (hu_slice >= lo) & (hu_slice <= hi)


def _sitk_slice(mask: np.ndarray):
    import SimpleITK as sitk

    return sitk.GetImageFromArray(mask.astype(np.uint8))


def fill_holes(layer: LabelLayer, z: int, value: int = 1) -> bool:
    """Fill enclosed background holes of the label on slice ``z``."""
    import SimpleITK as sitk

    current = layer.data[z] > 0
    filled = sitk.GetArrayFromImage(sitk.BinaryFillhole(_sitk_slice(current), fullyConnected=False)) > 0
    new = layer.data[z].copy()
    new[filled & ~current] = value
    return layer.replace_region((slice(z, z + 1), slice(None), slice(None)), new[None], "fill holes")


def remove_islands(
    layer: LabelLayer, z: int, min_area_mm2: float, pixel_spacing_yx: tuple[float, float]
) -> bool:
    """Erase connected pieces of the label on slice ``z`` smaller than ``min_area_mm2``."""
    import SimpleITK as sitk

    pixel_area = float(pixel_spacing_yx[0] * pixel_spacing_yx[1])
    min_pixels = int(np.ceil(min_area_mm2 / pixel_area))
    components = sitk.ConnectedComponent(_sitk_slice(layer.data[z] > 0), True)
    kept = sitk.RelabelComponent(components, minimumObjectSize=max(min_pixels, 1))
    keep = sitk.GetArrayFromImage(kept) > 0
    new = np.where(keep, layer.data[z], 0).astype(np.uint8)
    return layer.replace_region((slice(z, z + 1), slice(None), slice(None)), new[None], "remove islands")


def clear_slice(layer: LabelLayer, z: int) -> bool:
    """Erase every label on slice ``z``."""
    empty = np.zeros((1, *layer.data.shape[1:]), np.uint8)
    return layer.replace_region((slice(z, z + 1), slice(None), slice(None)), empty, "clear slice")


def reset_slice(layer: LabelLayer, z: int, ai_mask: np.ndarray) -> bool:
    """Replace slice ``z`` by the AI's mask for that slice."""
    values = ai_mask[z : z + 1].astype(np.uint8, copy=True)
    return layer.replace_region((slice(z, z + 1), slice(None), slice(None)), values, "reset slice to AI")


def paint_ball(
    layer: LabelLayer,
    center_zyx: tuple[float, float, float],
    radius_mm: float,
    spacing_zyx: tuple[float, float, float],
    value: int,
    allowed: Callable[[int], np.ndarray | None] | None = None,
) -> None:
    """One dab of the 3-D brush, inside the caller's stroke: a ball of ``radius_mm``, one disc on each slice it
    crosses; ``allowed(z)`` gives the pixels a range-limited brush may paint on slice ``z`` (None: any)."""
    cz, cy, cx = center_zyx
    for z, radius_px in ball_sections(cz, radius_mm, spacing_zyx):
        if 0 <= z < layer.data.shape[0]:
            layer.paint_disk(z, (cy, cx), radius_px, value, None if allowed is None else allowed(z))


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Distance to the mask's edge in pixels, negative inside (0 everywhere for an empty mask)."""
    import cv2

    inside = mask.astype(np.uint8)
    if not inside.any():
        return np.full(mask.shape, np.inf, np.float32)
    outside = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return outside - depth


def _interpolated(data: np.ndarray, z0: int, z1: int, value: int) -> np.ndarray | None:
    """The slices strictly between ``z0 < z1`` from their ends' shapes (signed distances blended linearly), or
    None when both ends are empty."""
    a, b = _signed_distance(data[z0] > 0), _signed_distance(data[z1] > 0)
    if np.isinf(a).all() and np.isinf(b).all():
        return None
    # An empty end: the other end's shape shrinks steadily to nothing towards it (a lesion that stops there):
    # a flat distance as deep outside as the shape is deep inside.
    if np.isinf(a).all():
        a = np.full_like(b, max(-float(b.min()), 1.0))
    if np.isinf(b).all():
        b = np.full_like(a, max(-float(a.min()), 1.0))
    steps = np.arange(1, z1 - z0, dtype=np.float32)[:, None, None] / (z1 - z0)
    return np.where((1 - steps) * a + steps * b < 0, value, 0).astype(np.uint8)


def interpolate_between(layer: LabelLayer, slices: list[int], max_gap: int = 20,
                        value: int = 1) -> list[tuple[int, int]]:
    """Interpolate, as one undo step, across every gap of at most ``max_gap`` slices between consecutive
    ``slices`` (the reader's edited slices) with lesion on at least one side; returns the (first, last) pairs
    whose slices between changed."""
    ordered = sorted(set(int(z) for z in slices))
    filled: dict[int, np.ndarray] = {}
    pairs = []
    for z0, z1 in zip(ordered, ordered[1:]):
        if not 2 <= z1 - z0 <= max_gap + 1:
            continue
        between = _interpolated(layer.data, z0, z1, value)
        if between is not None and not np.array_equal(between, layer.data[z0 + 1:z1]):
            filled.update({z0 + 1 + k: between[k] for k in range(len(between))})
            pairs.append((z0, z1))
    if not filled:
        return []
    lo, hi = min(filled), max(filled) + 1
    block = layer.data[lo:hi].copy()
    for z, values in filled.items():
        block[z - lo] = values
    layer.replace_region((slice(lo, hi), slice(None), slice(None)), block, "interpolate")
    return pairs


def grow_region(layer: LabelLayer, z: int, seed_yx: tuple[int, int], hu_slice: np.ndarray,
                hu_range: tuple[float, float], within: np.ndarray | None = None, value: int = 1) -> int:
    """Paint the connected region around ``seed_yx`` on slice ``z`` whose HU lie in ``hu_range`` (and inside
    ``within``, e.g. the lungs, so ground glass does not leak into the chest wall), as one undo step.

    Returns the pixels painted (0: the seed is outside the range or the region).
    """
    import cv2

    y, x = int(seed_yx[0]), int(seed_yx[1])
    lo, hi = sorted(hu_range)
    candidate = (hu_slice >= lo) & (hu_slice <= hi)
    if within is not None:
        candidate &= within
    if not (0 <= y < candidate.shape[0] and 0 <= x < candidate.shape[1]) or not candidate[y, x]:
        return 0
    _, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=8)
    region = labels == labels[y, x]
    new = layer.data[z].copy()
    added = int(np.count_nonzero(region & (new != value)))
    new[region] = value
    layer.replace_region((slice(z, z + 1), slice(None), slice(None)), new[None], "grow region")
    return added
