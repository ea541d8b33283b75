"""What the report says, computed without any drawing: numbers, key slices, review summary.

Kept apart from the layout so that the numbers can be tested (and reused by other exports)
without reportlab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.io.export import normalise_review, slice_positions_mm
from jcs_viewer.pipeline.quantify import lung_thirds, quantify, slice_tallies, zone_edges

if TYPE_CHECKING:
    from collections.abc import Sequence

    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.compare import Comparison
    from jcs_viewer.pipeline.quantify import Quantification
    from jcs_viewer.pipeline.result import StudyResult
    from jcs_viewer.session.measurements import Measurement

#: How many of the most involved slices the report shows, and how many reviewer-confirmed ones on top.
MAX_INVOLVED_KEY_SLICES = 4
MAX_CONFIRMED_KEY_SLICES = 4


@dataclass
class KeySlice:
    """One slice shown as images, and why it was chosen."""

    index: int
    position_mm: float
    reason: str  # "most involved", "reviewer-confirmed", "highest score"
    area_mm2: float
    probability: float
    review_state: str


@dataclass
class ReportContent:
    """Everything the PDF shows, already computed."""

    quant: Quantification
    lesion_mask: np.ndarray
    edited: bool
    edited_slices: list[int]
    review: dict[int, str]
    positions_mm: np.ndarray
    key_slices: list[KeySlice]
    zone_table: dict[str, dict[str, float]]  # zone -> {"right", "left", "total"} mL
    generated: datetime
    notes: str = ""
    reviewer: str = ""
    warnings: list[str] = field(default_factory=list)
    measurements: list[str] = field(default_factory=list)  # the reader's rulers and ROIs, one line each
    comparison: Comparison | None = None  # with a prior study, its "now" from ``quant``

    @property
    def confirmed(self) -> list[int]:
        return sorted(z for z, s in self.review.items() if s == "confirmed")

    @property
    def rejected(self) -> list[int]:
        return sorted(z for z, s in self.review.items() if s == "rejected")


def lesion_table_by_lung_and_zone(
    volume: Volume, lung_mask: np.ndarray, lesion_mask: np.ndarray
) -> dict[str, dict[str, float]]:
    """Lesion volume (mL) per lung and craniocaudal zone.

    Uses the pipeline's zone definition (:mod:`jcs_viewer.pipeline.quantify`): each lung's
    own slice range cut into thirds, ``upper`` the cranial one, so the table splits the
    quantification's combined ``zones`` by lung (a test holds the two together). Computed
    here from per-slice sums because re-running ``quantify`` per lung costs seconds.
    """
    dz, dy, dx = (float(s) for s in volume.spacing)
    voxel_ml = dz * dy * dx / 1000.0
    head_is_high_z = float(np.asarray(volume.direction, dtype=float).reshape(3, 3)[2, 2]) >= 0.0
    tally = slice_tallies(np.asarray(lung_mask), np.asarray(lesion_mask) > 0)
    table = {zone: {"right": 0.0, "left": 0.0, "total": 0.0} for zone in ("upper", "middle", "lower")}
    for side in ("right", "left"):
        thirds = lung_thirds(tally[f"lesion_{side}"], zone_edges(tally[side]), head_is_high_z)
        for zone, voxels in thirds.items():
            table[zone][side] = voxels * voxel_ml
    for row in table.values():
        row["total"] = row["right"] + row["left"]
    return table


def pick_key_slices(
    area_mm2: np.ndarray,
    probability: np.ndarray,
    review: dict[int, str],
    positions_mm: np.ndarray,
    *,
    max_involved: int = MAX_INVOLVED_KEY_SLICES,
    max_confirmed: int = MAX_CONFIRMED_KEY_SLICES,
) -> list[KeySlice]:
    """The most involved slices (spread out along z) plus reviewer-confirmed ones, in slice order.

    Neighbouring slices look alike, so involved slices closer than ~7 % of the study to an
    already chosen one (at least 2 slices) are skipped. Without any lesion the highest-scoring slices are shown
    so that the reader still sees what the classifier looked at.
    """
    n = len(area_mm2)
    gap = max(2, n // 15) if n >= 10 else 1
    chosen: dict[int, str] = {}

    def far_enough(z: int) -> bool:
        return all(abs(z - c) >= gap for c in chosen)

    if np.any(area_mm2 > 0):
        for z in np.argsort(-area_mm2, kind="stable"):
            if len(chosen) >= max_involved or area_mm2[z] <= 0:
                break
            if far_enough(int(z)):
                chosen[int(z)] = "most involved"
    else:
        for z in np.argsort(-probability, kind="stable")[: min(2, max_involved)]:
            chosen[int(z)] = "highest score"
    confirmed = sorted((z for z, s in review.items() if s == "confirmed" and 0 <= z < n), key=lambda z: -area_mm2[z])
    added = 0
    for z in confirmed:
        if added >= max_confirmed:
            break
        if z in chosen:
            chosen[z] += ", reviewer-confirmed"
        else:
            chosen[z] = "reviewer-confirmed"
            added += 1
    return [
        KeySlice(z, float(positions_mm[z]), why, float(area_mm2[z]), float(probability[z]), review.get(z, "unreviewed"))
        for z, why in sorted(chosen.items())
    ]


def edited_slice_indices(ai_mask: np.ndarray, edited_mask: np.ndarray) -> list[int]:
    """Slices where the reader's mask differs from the AI's (binary comparison)."""
    diff = (np.asarray(ai_mask) > 0) != (np.asarray(edited_mask) > 0)
    return np.flatnonzero(diff.reshape(diff.shape[0], -1).any(axis=1)).astype(int).tolist()


def build_content(
    result: StudyResult,
    volume: Volume,
    *,
    review: Any = None,
    edited_mask: np.ndarray | None = None,
    reviewer: str = "",
    notes: str = "",
    measurements: Sequence[Measurement] = (),
    comparison: Comparison | None = None,
    now: datetime | None = None,
) -> ReportContent:
    """Compute the report's content from a StudyResult, its Volume and the reader's work.

    When ``edited_mask`` is given and differs from the AI's mask, every lesion number is
    re-quantified from it (the AI's numbers are not shown as if they were the reader's), the
    ``comparison`` with a prior study included.
    """
    n = int(result.n_slices)
    if volume.n_slices != n:
        raise ValueError(f"the result has {n} slices, the study {volume.n_slices}")
    states = normalise_review(review)
    ai_mask = np.asarray(result.lesion_mask)
    edited_slices: list[int] = []
    mask = ai_mask
    quant = result.quant
    if edited_mask is not None:
        edited_mask = np.asarray(edited_mask)
        if edited_mask.shape != ai_mask.shape:
            raise ValueError(f"the edited mask has shape {edited_mask.shape}, the study {ai_mask.shape}")
        edited_slices = edited_slice_indices(ai_mask, edited_mask)
        if edited_slices:
            mask = edited_mask
            quant = quantify(volume, result.lung_mask, (edited_mask > 0).astype(np.uint8))
    positions = slice_positions_mm(volume, n)
    area = np.asarray(quant.per_slice_area_mm2, dtype=float)
    keys = pick_key_slices(area, np.asarray(result.slice_probability, dtype=float), states, positions)
    zones = lesion_table_by_lung_and_zone(volume, result.lung_mask, (mask > 0).astype(np.uint8))
    return ReportContent(
        quant=quant,
        lesion_mask=mask,
        edited=bool(edited_slices),
        edited_slices=edited_slices,
        review=states,
        positions_mm=positions,
        key_slices=keys,
        zone_table=zones,
        generated=(now or datetime.now().astimezone()),
        notes=notes,
        reviewer=reviewer,
        measurements=[m.describe(volume.array[m.z], tuple(volume.spacing[1:]), bool(volume.is_hu))
                      for m in measurements if 0 <= m.z < n],
        comparison=None if comparison is None else comparison.with_current(quant),
    )
