"""Trachea and main bronchi: found in the lungs' air component so that they are not counted as lung.

The air threshold that finds the lungs (-320 HU) also takes the airways, which join both lungs
through the main bronchi: without this step the trachea ends up in one lung's mask (and in its
volume, and in the 3-D view as a tube). Steps (HU volumes only):

1. Seed: in the cranial quarter of the lung air, the first slice (from the top) holding a 2-D
   component the size of a tracheal lumen (``TRACHEA_AREA_MM2``), nearly pure air
   (median below ``LUMEN_HU``) and near the middle of the lungs' left-right extent.
2. Grow: the 3-D component of lumen-dark air (below ``LUMEN_HU``) inside the lung air that holds the
   seed. Lung parenchyma (about -850 HU) stays above that level; where it does not (emphysema,
   noise), the airway tree leaks into the lung, and a result above ``MAX_AIRWAY_ML`` is retried at
   a stricter level and otherwise dropped (then nothing is removed).
3. The caller removes the airways, grown by one voxel in-plane for the partial-volume rim, from the
   lungs; intrapulmonary bronchi come back when the lungs' holes are filled slice by slice, the
   hilar part of the main bronchi and the trachea stay out.
"""

from __future__ import annotations

import numpy as np

TRACHEA_AREA_MM2 = (50.0, 800.0)
LUMEN_HU = (-950, -980)  # tried in this order
MAX_AIRWAY_ML = 250.0
SEED_SEARCH_FRACTION = 0.25
MIDLINE_FRACTION = 0.2  # trachea centroid within this fraction of the lungs' x-extent from its middle


def find_airways(image: np.ndarray, lung_air: np.ndarray, spacing, direction: np.ndarray) -> np.ndarray | None:
    """Boolean mask of the trachea and bronchi inside ``lung_air``, or None when none is found.

    Args:
        image: ``(z, y, x)`` HU volume.
        lung_air: the lungs' air component(s) (boolean, same shape).
        spacing: voxel size ``(z, y, x)`` in mm.
        direction: 3x3 direction matrix (which end of z is cranial).
    """
    from jcs_viewer.pipeline.morphology import bounding_box

    box = bounding_box(lung_air, margin=1)
    if box is None:
        return None
    air = lung_air[box]
    hu = image[box]
    seed = _trachea_seed(hu, air, spacing, direction)
    if seed is None:
        return None
    voxel_ml = float(np.prod(spacing)) / 1000.0
    for level in LUMEN_HU:
        tree = _component_holding(air & (hu < level), seed)
        if tree is not None and tree.sum() * voxel_ml <= MAX_AIRWAY_ML:
            out = np.zeros(lung_air.shape, dtype=bool)
            out[box] = tree
            return out
    return None


def _trachea_seed(hu: np.ndarray, air: np.ndarray, spacing, direction: np.ndarray) -> np.ndarray | None:
    """Boolean mask of the tracheal lumen in one cranial slice (same shape as ``air``), or None."""
    import SimpleITK as sitk

    zs = np.flatnonzero(air.any(axis=(1, 2)))
    if zs.size < 3:
        return None
    cranial_first = zs[::-1] if float(direction[2, 2]) >= 0 else zs
    n_search = max(3, int(round(SEED_SEARCH_FRACTION * zs.size)))
    cols = np.flatnonzero(air.any(axis=(0, 1)))
    middle, half_band = (cols[0] + cols[-1]) / 2.0, MIDLINE_FRACTION * (cols[-1] - cols[0] + 1)
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    lo, hi = (a / pixel_mm2 for a in TRACHEA_AREA_MM2)
    for z in cranial_first[:n_search]:
        labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(air[z].astype(np.uint8))))
        for lab in range(1, int(labels.max()) + 1):
            component = labels == lab
            area = int(component.sum())
            if not lo <= area <= hi:
                continue
            _, xs = np.nonzero(component)
            if abs(xs.mean() - middle) > half_band or np.median(hu[z][component]) >= LUMEN_HU[0]:
                continue
            seed = np.zeros(air.shape, dtype=bool)
            seed[z] = component
            return seed
    return None


def _component_holding(mask: np.ndarray, seed: np.ndarray) -> np.ndarray | None:
    """The 3-D connected component(s) of ``mask`` that touch ``seed``."""
    import SimpleITK as sitk

    image = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.view(np.uint8)))
    labels = sitk.GetArrayViewFromImage(image)  # read in place (``image`` alive): no copy of 32-bit labels
    hit = np.unique(labels[seed & mask])
    hit = hit[hit != 0]
    return np.isin(labels, hit) if hit.size else None
