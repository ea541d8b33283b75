"""Slice-level editing tools built on :class:`LabelLayer` (each call is one undo step)."""

from __future__ import annotations

import math

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


def paint_sphere(
    layer: LabelLayer,
    center_zyx: tuple[float, float, float],
    radius_mm: float,
    spacing_zyx: tuple[float, float, float],
    value: int,
    hu: np.ndarray | None = None,
    hu_range: tuple[float, float] | None = None,
) -> None:
    """3-D brush: paint a ball of ``radius_mm`` (one stroke across the slices it covers)."""
    cz, cy, cx = center_zyx
    with layer.stroke("3-D brush" if value else "3-D eraser"):
        for z, radius_px in ball_sections(cz, radius_mm, spacing_zyx):
            allowed = hu_allowed(hu[z], hu_range) if hu is not None and 0 <= z < hu.shape[0] else None
            layer.paint_disk(z, (cy, cx), radius_px, value, allowed)
