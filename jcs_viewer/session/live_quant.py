"""Live re-quantification of an edited lesion mask (no Qt).

:func:`jcs_viewer.pipeline.quantify.quantify` takes about 1.7 s on a 300x512x512 study, far
too slow to follow every brush stroke. :class:`LiveQuantifier` keeps per-slice sums (lesion
pixels in each lung and outside, HU sum, GGO/consolidation pixels, 2-D component counts) and
recomputes only the slices a step touched; totals, zones and extent follow from those sums
with the same arithmetic as ``quantify``, so the numbers are identical.

The one number that cannot be updated slice by slice is the 3-D lesion count (a component
may span the whole study). It is recomputed at once when the lesions' bounding box is small
and otherwise marked stale, to be refreshed off the GUI thread (:meth:`count_job`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from jcs_viewer.pipeline.morphology import count_components
from jcs_viewer.pipeline.quantify import (
    CONSOLIDATION_HU,
    DEFAULT_MIN_LESION_VOXELS,
    GGO_HU,
    LEFT,
    MIN_SLICE_PIXELS,
    RIGHT,
    Quantification,
    lung_thirds,
    slice_tallies,
    zone_edges,
)

# Voxels in the lesions' bounding box up to which the 3-D count runs inline (about 40 ms).
INLINE_COUNT_VOXELS = 4_000_000


def count_lesions(mask_box: np.ndarray, min_voxels: int = DEFAULT_MIN_LESION_VOXELS) -> int:
    """3-D lesion count (26-connected, components under ``min_voxels`` ignored), as ``quantify``."""
    if not mask_box.size or not mask_box.any():
        return 0
    return count_components(mask_box > 0, min_voxels)


class LiveQuantifier:
    """Per-slice lesion statistics of one study, updated slice by slice.

    Args:
        image: the study ``(z, y, x)`` (HU when ``is_hu``); read, never copied.
        lung_mask: ``uint8 (z, y, x)``, 0 none / 1 right / 2 left.
        spacing: voxel size (z, y, x) in mm.
        direction: 3x3 direction matrix (decides which third of each lung is "upper").
        is_hu: whether HU statistics (mean HU, GGO, consolidation) apply.
        min_lesion_voxels: as in ``quantify``.
    """

    def __init__(self, image: np.ndarray, lung_mask: np.ndarray, spacing, direction=None, is_hu: bool = True,
                 min_lesion_voxels: int = DEFAULT_MIN_LESION_VOXELS) -> None:
        if image.shape != lung_mask.shape:
            raise ValueError(f"image {image.shape} and lung mask {lung_mask.shape} differ in shape")
        self.image, self.lung = image, lung_mask
        self.dz, self.dy, self.dx = (float(s) for s in spacing)
        self.voxel_ml = self.dz * self.dy * self.dx / 1000.0
        self.is_hu = bool(is_hu)
        self.min_lesion_voxels = int(min_lesion_voxels)
        direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
        self.head_is_high_z = float(direction[2, 2]) >= 0.0
        n = image.shape[0]
        lungs = slice_tallies(lung_mask)
        self.lung_ml = {side: float(lungs[side].sum()) * self.voxel_ml for side in ("right", "left")}
        self.lung_ml["total"] = self.lung_ml["right"] + self.lung_ml["left"]
        # Each lung's slice range cut into thirds, as quantify's zones are.
        self.zone_edges = {RIGHT: zone_edges(lungs["right"]), LEFT: zone_edges(lungs["left"])}
        # Per-slice sums (int64: sums of integers stay exact).
        self.n_total = np.zeros(n, np.int64)
        self.n_lung = {RIGHT: np.zeros(n, np.int64), LEFT: np.zeros(n, np.int64)}
        self.hu_sum = np.zeros(n, np.int64)
        self.n_ggo = np.zeros(n, np.int64)
        self.n_cons = np.zeros(n, np.int64)
        self.count2d = np.zeros(n, np.int32)
        self.extent_yx = np.zeros((n, 4), np.int32)  # per-slice lesion box: row0, row1, col0, col1
        self.lesion_count = 0
        self.count_stale = False

    # ------------------------------------------------------------------ updates
    def update(self, mask: np.ndarray, zs: Iterable[int] | None = None) -> None:
        """Recompute the statistics of slices ``zs`` (all slices when None) from ``mask``."""
        zs = range(mask.shape[0]) if zs is None else zs
        for z in zs:
            self._update_slice(mask, int(z))

    def _update_slice(self, mask: np.ndarray, z: int) -> None:
        m = mask[z] > 0
        total = int(np.count_nonzero(m))
        self.n_total[z] = total
        if total == 0:
            for arr in (self.n_lung[RIGHT], self.n_lung[LEFT], self.hu_sum, self.n_ggo, self.n_cons, self.count2d):
                arr[z] = 0
            self.extent_yx[z] = 0
            return
        where = np.nonzero(m)
        by_label = np.bincount(self.lung[z][where], minlength=3)
        self.n_lung[RIGHT][z] = by_label[RIGHT]
        self.n_lung[LEFT][z] = by_label[LEFT]
        if self.is_hu:
            values = self.image[z][where]
            self.hu_sum[z] = int(values.sum(dtype=np.int64))
            self.n_ggo[z] = np.count_nonzero((values >= GGO_HU[0]) & (values < GGO_HU[1]))
            self.n_cons[z] = np.count_nonzero((values >= CONSOLIDATION_HU[0]) & (values < CONSOLIDATION_HU[1]))
        r0, r1 = int(where[0].min()), int(where[0].max()) + 1
        c0, c1 = int(where[1].min()), int(where[1].max()) + 1
        self.extent_yx[z] = (r0, r1, c0, c1)
        self.count2d[z] = count_components(m[r0:r1, c0:c1], MIN_SLICE_PIXELS)

    def lesion_box(self) -> tuple[slice, slice, slice] | None:
        """Bounding box of all lesion voxels (from the per-slice boxes), or None."""
        zs = np.flatnonzero(self.n_total)
        if zs.size == 0:
            return None
        e = self.extent_yx[zs]
        return (slice(int(zs[0]), int(zs[-1]) + 1), slice(int(e[:, 0].min()), int(e[:, 1].max())),
                slice(int(e[:, 2].min()), int(e[:, 3].max())))

    def recount(self, mask: np.ndarray, force: bool = False) -> bool:
        """Recompute the 3-D lesion count now when cheap (or ``force``); returns whether it did."""
        box = self.lesion_box()
        if box is None:
            self.lesion_count, self.count_stale = 0, False
            return True
        voxels = (box[0].stop - box[0].start) * (box[1].stop - box[1].start) * (box[2].stop - box[2].start)
        if not force and voxels > INLINE_COUNT_VOXELS:
            self.count_stale = True
            return False
        self.lesion_count, self.count_stale = count_lesions(mask[box], self.min_lesion_voxels), False
        return True

    def count_job(self, mask: np.ndarray) -> Callable[[], int]:
        """A callable that counts 3-D lesions on a private copy of the lesions' box (thread-safe)."""
        box = self.lesion_box()
        snapshot = np.ascontiguousarray(mask[box]) if box is not None else np.zeros((0, 0, 0), np.uint8)
        minimum = self.min_lesion_voxels
        return lambda: count_lesions(snapshot, minimum)

    # ------------------------------------------------------------------ result
    def quantification(self) -> Quantification:
        """The current numbers, with ``quantify``'s definitions and arithmetic."""
        vml = self.voxel_ml
        n_total = int(self.n_total.sum())
        n_right, n_left = int(self.n_lung[RIGHT].sum()), int(self.n_lung[LEFT].sum())
        les = {"right": float(n_right) * vml, "left": float(n_left) * vml}
        les["total"] = n_total * vml
        outside = les["total"] - les["right"] - les["left"]
        lung = self.lung_ml

        def pct(part: float, whole: float) -> float:
            return 100.0 * part / whole if whole > 0 else 0.0

        involvement = {"right": pct(les["right"], lung["right"]), "left": pct(les["left"], lung["left"]),
                       "total": pct(les["right"] + les["left"], lung["total"])}
        area = self.n_total.astype(np.float64) * self.dy * self.dx
        lesion_slices = np.flatnonzero(self.n_total)
        extent = float((lesion_slices[-1] - lesion_slices[0] + 1) * self.dz) if lesion_slices.size else 0.0
        zones = {"upper": 0.0, "middle": 0.0, "lower": 0.0}
        for lab, edges in self.zone_edges.items():
            for zone, voxels in lung_thirds(self.n_lung[lab], edges, self.head_is_high_z).items():
                zones[zone] += voxels * vml
        mean_hu = ggo = cons = None
        if self.is_hu and n_total:
            mean_hu = float(int(self.hu_sum.sum()) / n_total)
            ggo = float(int(self.n_ggo.sum())) * vml
            cons = float(int(self.n_cons.sum())) * vml
        elif self.is_hu:
            ggo = cons = 0.0
        return Quantification(
            lesion_volume_ml=les, lung_volume_ml=dict(lung), involvement_percent=involvement,
            lesion_count=int(self.lesion_count), per_slice_area_mm2=area,
            per_slice_count=self.count2d.copy(), extent_mm=extent, zones=zones, mean_hu=mean_hu,
            ggo_ml=ggo, consolidation_ml=cons, lesion_outside_lungs_ml=float(max(outside, 0.0)),
            min_lesion_voxels=self.min_lesion_voxels)
