"""Lesion quantification: a pure function of (image, geometry, lung mask, lesion mask).

Pure so that the session layer can recompute it live after the reader edits a mask.

Definitions (documented here because the report quotes them):
- Volumes count voxels times the voxel volume (mm^3 / 1000 = mL).
- ``lesion_volume_ml["total"]`` counts every lesion voxel; ``"left"``/``"right"`` only those
  inside that lung's label, so a hand-drawn stroke outside the lungs counts in the total
  (reported separately as ``lesion_outside_lungs_ml``).
- Involvement = lesion inside a lung / that lung's volume x 100; ``"total"`` uses both lungs.
- Lesion count: 3-D connected components with 26-connectivity, ignoring components smaller
  than ``min_lesion_voxels`` (default 10 voxels: noise specks, a few mm^3).
- Per-slice count: 2-D components with 8-connectivity, ignoring components smaller than
  ``MIN_SLICE_PIXELS`` (5 pixels) - a lesion's tip in a slice is legitimately small.
- Craniocaudal extent: from the first to the last slice holding lesion, inclusive, in mm.
- Zones: each lung's own slice range cut into thirds; ``upper`` is the cranial third (the
  patient direction of the z axis comes from the volume's direction matrix).
- HU bins (only for Hounsfield-unit images): ground-glass ``GGO_HU`` = [-750, -300) HU,
  consolidation ``CONSOLIDATION_HU`` = [-300, +100) HU, as common in the COVID CT
  literature; Lung CT Analyzer's "infiltrated" -750..-400 / "collapsed" -400..0 bins split
  the same range a little differently. Lesion voxels outside both bins count in neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jcs_viewer.pipeline.morphology import CHUNK_SLICES, count_components

GGO_HU = (-750, -300)
CONSOLIDATION_HU = (-300, 100)
DEFAULT_MIN_LESION_VOXELS = 10
MIN_SLICE_PIXELS = 5
RIGHT, LEFT = 1, 2


@dataclass
class Quantification:
    """Numbers derived from the lung and lesion masks (see module docstring for definitions)."""

    lesion_volume_ml: dict[str, float]
    lung_volume_ml: dict[str, float]
    involvement_percent: dict[str, float]
    lesion_count: int
    per_slice_area_mm2: np.ndarray
    per_slice_count: np.ndarray
    extent_mm: float
    zones: dict[str, float]
    mean_hu: float | None
    ggo_ml: float | None
    consolidation_ml: float | None
    lesion_outside_lungs_ml: float = 0.0
    min_lesion_voxels: int = DEFAULT_MIN_LESION_VOXELS
    hu_bins: dict[str, list[int]] = field(
        default_factory=lambda: {"ggo": list(GGO_HU), "consolidation": list(CONSOLIDATION_HU)}
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (per-slice arrays as lists)."""
        return {
            "lesion_volume_ml": dict(self.lesion_volume_ml),
            "lung_volume_ml": dict(self.lung_volume_ml),
            "involvement_percent": dict(self.involvement_percent),
            "lesion_count": int(self.lesion_count),
            "per_slice_area_mm2": [float(v) for v in self.per_slice_area_mm2],
            "per_slice_count": [int(v) for v in self.per_slice_count],
            "extent_mm": float(self.extent_mm),
            "zones": dict(self.zones),
            "mean_hu": self.mean_hu,
            "ggo_ml": self.ggo_ml,
            "consolidation_ml": self.consolidation_ml,
            "lesion_outside_lungs_ml": float(self.lesion_outside_lungs_ml),
            "min_lesion_voxels": int(self.min_lesion_voxels),
            "hu_bins": {k: list(v) for k, v in self.hu_bins.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Quantification":
        return cls(
            lesion_volume_ml=dict(data["lesion_volume_ml"]),
            lung_volume_ml=dict(data["lung_volume_ml"]),
            involvement_percent=dict(data["involvement_percent"]),
            lesion_count=int(data["lesion_count"]),
            per_slice_area_mm2=np.asarray(data["per_slice_area_mm2"], dtype=np.float64),
            per_slice_count=np.asarray(data["per_slice_count"], dtype=np.int32),
            extent_mm=float(data["extent_mm"]),
            zones=dict(data["zones"]),
            mean_hu=data["mean_hu"],
            ggo_ml=data["ggo_ml"],
            consolidation_ml=data["consolidation_ml"],
            lesion_outside_lungs_ml=float(data.get("lesion_outside_lungs_ml", 0.0)),
            min_lesion_voxels=int(data.get("min_lesion_voxels", DEFAULT_MIN_LESION_VOXELS)),
            hu_bins={k: list(v) for k, v in data.get("hu_bins", {}).items()}
            or {"ggo": list(GGO_HU), "consolidation": list(CONSOLIDATION_HU)},
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantification):
            return NotImplemented
        return self.to_dict() == other.to_dict()


def quantify(
    volume_or_image: Any,
    lung_mask: np.ndarray,
    lesion_mask: np.ndarray,
    *,
    spacing: tuple[float, float, float] | None = None,
    direction: np.ndarray | None = None,
    is_hu: bool | None = None,
    min_lesion_voxels: int = DEFAULT_MIN_LESION_VOXELS,
) -> Quantification:
    """Quantify lesions against lungs.

    Args:
        volume_or_image: a :class:`jcs_viewer.io.volume.Volume`, or the image array
            ``(z, y, x)`` together with ``spacing`` (and optionally ``direction``, ``is_hu``).
        lung_mask: ``uint8 (z, y, x)``, 0 none / 1 right / 2 left.
        lesion_mask: ``(z, y, x)``, nonzero = lesion (any label).
        spacing: voxel size (z, y, x) in mm when an array is given.
        direction: 3x3 direction matrix when an array is given (identity: z index ascends
            towards the head).
        is_hu: whether the image is in HU (default True for arrays).
        min_lesion_voxels: 3-D/2-D components smaller than this are not counted.

    Returns:
        A :class:`Quantification`.
    """
    if hasattr(volume_or_image, "array"):
        image = volume_or_image.array
        spacing = volume_or_image.spacing
        direction = volume_or_image.direction
        is_hu = volume_or_image.is_hu if is_hu is None else is_hu
    else:
        image = np.asarray(volume_or_image)
        if spacing is None:
            raise ValueError("spacing is required when quantifying a bare array")
    is_hu = True if is_hu is None else bool(is_hu)
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    if image.shape != lung_mask.shape or image.shape != lesion_mask.shape:
        raise ValueError(
            f"image {image.shape}, lung mask {lung_mask.shape} and lesion mask {lesion_mask.shape} differ in shape"
        )
    dz, dy, dx = (float(s) for s in spacing)
    voxel_ml = dz * dy * dx / 1000.0
    lesion = lesion_mask.astype(bool, copy=False)

    tally = slice_tallies(lung_mask, lesion)  # per slice: no whole-volume temporary
    lung_ml = {"right": float(tally["right"].sum()) * voxel_ml, "left": float(tally["left"].sum()) * voxel_ml}
    lung_ml["total"] = lung_ml["right"] + lung_ml["left"]
    les_ml = {
        "right": float(tally["lesion_right"].sum()) * voxel_ml,
        "left": float(tally["lesion_left"].sum()) * voxel_ml,
    }
    n_lesion = int(tally["lesion"].sum())
    les_ml["total"] = n_lesion * voxel_ml
    outside_ml = les_ml["total"] - les_ml["right"] - les_ml["left"]

    def pct(part: float, whole: float) -> float:
        return 100.0 * part / whole if whole > 0 else 0.0

    involvement = {
        "right": pct(les_ml["right"], lung_ml["right"]),
        "left": pct(les_ml["left"], lung_ml["left"]),
        "total": pct(les_ml["right"] + les_ml["left"], lung_ml["total"]),
    }

    per_slice_pixels = tally["lesion"]
    per_slice_area = per_slice_pixels.astype(np.float64) * dy * dx
    lesion_slices = np.flatnonzero(per_slice_pixels)
    extent = float((lesion_slices[-1] - lesion_slices[0] + 1) * dz) if lesion_slices.size else 0.0

    count, per_slice_count = _count_components(lesion, lesion_slices, min_lesion_voxels)
    # Direction column 2 is the z index axis in LPS; its S component > 0 means z ascends to the head.
    head_is_high_z = float(direction[2, 2]) >= 0.0
    zones = {"upper": 0.0, "middle": 0.0, "lower": 0.0}
    for side in ("right", "left"):
        for zone, voxels in lung_thirds(tally[f"lesion_{side}"], zone_edges(tally[side]), head_is_high_z).items():
            zones[zone] += voxels * voxel_ml

    mean_hu = ggo = consolidation = None
    if is_hu and n_lesion:
        values = image[lesion]
        mean_hu = float(values.mean(dtype=np.float64))
        ggo = float(np.count_nonzero((values >= GGO_HU[0]) & (values < GGO_HU[1]))) * voxel_ml
        consolidation = float(
            np.count_nonzero((values >= CONSOLIDATION_HU[0]) & (values < CONSOLIDATION_HU[1]))
        ) * voxel_ml
    elif is_hu:
        ggo = consolidation = 0.0

    return Quantification(
        lesion_volume_ml=les_ml,
        lung_volume_ml=lung_ml,
        involvement_percent=involvement,
        lesion_count=count,
        per_slice_area_mm2=per_slice_area,
        per_slice_count=per_slice_count,
        extent_mm=extent,
        zones=zones,
        mean_hu=mean_hu,
        ggo_ml=ggo,
        consolidation_ml=consolidation,
        lesion_outside_lungs_ml=float(max(outside_ml, 0.0)),
        min_lesion_voxels=min_lesion_voxels,
    )


def _count_components(
    lesion: np.ndarray, lesion_slices: np.ndarray, min_voxels: int
) -> tuple[int, np.ndarray]:
    """3-D component count (26-connected) and per-slice 2-D counts (8-connected)."""
    per_slice = np.zeros(lesion.shape[0], dtype=np.int32)
    if lesion_slices.size == 0:
        return 0, per_slice
    # Work on the lesions' bounding box only: cheap when the reader edits a small region.
    ys, xs = np.nonzero(lesion[lesion_slices].any(axis=0))
    z0, z1 = int(lesion_slices[0]), int(lesion_slices[-1]) + 1
    box = lesion[z0:z1, int(ys.min()) : int(ys.max()) + 1, int(xs.min()) : int(xs.max()) + 1]
    count = count_components(box, min_voxels)
    for z in lesion_slices:
        per_slice[z] = count_components(box[z - z0], MIN_SLICE_PIXELS)
    return count, per_slice


def slice_tallies(lung_mask: np.ndarray, lesion: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per slice, ``int64 (z,)``: the voxels of the right and the left lung (``"right"``, ``"left"``) and, given a
    lesion mask, of lesion in each (``"lesion_right"``, ``"lesion_left"``) and anywhere (``"lesion"``). Counted a
    few slices at a time: no whole-volume temporary."""
    n = lung_mask.shape[0]
    keys = ("right", "left") if lesion is None else ("right", "left", "lesion_right", "lesion_left", "lesion")
    tally = {key: np.zeros(n, dtype=np.int64) for key in keys}
    for z0 in range(0, n, CHUNK_SLICES):
        lung = lung_mask[z0 : z0 + CHUNK_SLICES].reshape(min(CHUNK_SLICES, n - z0), -1)
        span = slice(z0, z0 + lung.shape[0])
        found = None if lesion is None else np.asarray(lesion[span], dtype=bool).reshape(lung.shape)
        for side, label in (("right", RIGHT), ("left", LEFT)):
            own = lung == label
            tally[side][span] = np.count_nonzero(own, axis=1)
            if found is not None:
                tally[f"lesion_{side}"][span] = np.count_nonzero(own & found, axis=1)
        if found is not None:
            tally["lesion"][span] = np.count_nonzero(found, axis=1)
    return tally


def zone_edges(lung_per_slice: np.ndarray) -> list[int] | None:
    """The four slice indices that cut one lung's own slice range into thirds (None: the lung is absent)."""
    zs = np.flatnonzero(lung_per_slice)
    if zs.size == 0:
        return None
    return [int(round(e)) for e in np.linspace(int(zs[0]), int(zs[-1]) + 1, 4)]


def lung_thirds(lesion_per_slice: np.ndarray, edges: list[int] | None, head_is_high_z: bool) -> dict[str, int]:
    """One lung's lesion voxels in its upper, middle and lower third (``upper`` the cranial one)."""
    if edges is None:
        return {"upper": 0, "middle": 0, "lower": 0}
    low, mid, high = (int(lesion_per_slice[edges[i] : edges[i + 1]].sum()) for i in range(3))
    return {"upper": high if head_is_high_z else low, "middle": mid, "lower": low if head_is_high_z else high}
