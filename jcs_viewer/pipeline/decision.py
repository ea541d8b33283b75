"""Patient-level decision from per-slice probabilities.

The paper calls a patient positive when more than 25 slices are positive, on studies of
250-400 slices of about 1 mm (a ~300 mm chest). A fixed 25 would make thick-slice studies
(60 slices of 5 mm) almost always negative, so the count is scaled to the study.

Rule: ``threshold = round(25 * min(1 mm / slice_spacing, n_slices / 300))`` clamped to
``1 .. n_slices - 1`` (0 for a single slice). The first factor keeps the *physical*
craniocaudal extent of disease the paper required (25 mm of positive slices); the second
keeps the *fraction* of slices (25/300) when the study covers less than a full chest (a
crop, a few slices). On a full chest the two agree: 300 x 1 mm -> 25, 60 x 5 mm -> 5,
600 x 0.5 mm -> 50.
"""

from __future__ import annotations

import numpy as np

PAPER_THRESHOLD = 25
PAPER_SLICES = 300
PAPER_SPACING_MM = 1.0


def slice_threshold(n_slices: int, slice_spacing_mm: float) -> tuple[int, str]:
    """Derive the patient threshold (in slices) for a study.

    Args:
        n_slices: slices in the study.
        slice_spacing_mm: distance between slice centres in mm.

    Returns:
        ``(threshold, rule)`` where ``rule`` is one sentence explaining the number.
    """
    if n_slices <= 1:
        # the decision is "not assessable" (assess.py); the count still runs so the slice's own result is kept
        return 0, "A single slice has no patient threshold: one slice cannot speak for the lungs."
    spacing = float(slice_spacing_mm) if slice_spacing_mm and slice_spacing_mm > 0 else PAPER_SPACING_MM
    by_extent = PAPER_SPACING_MM / spacing
    by_fraction = n_slices / PAPER_SLICES
    raw = PAPER_THRESHOLD * min(by_extent, by_fraction)
    threshold = int(min(max(1, round(raw)), n_slices - 1))
    basis = "25 mm of positive slices" if by_extent <= by_fraction else "25 of every 300 slices"
    rule = (
        f"Threshold {threshold} = round(25 x min(1 mm / {spacing:.2f} mm, {n_slices} / 300)) clamped to "
        f"1..{n_slices - 1}, i.e. the paper's 25 slices of ~1 mm scaled as {basis}."
    )
    return threshold, rule


def manual_threshold_rule(threshold: int) -> str:
    """The rule sentence for a threshold the user set."""
    return f"Threshold {threshold} slices set by the user."


def patient_decision(slice_positive: np.ndarray, threshold: int) -> tuple[str, int]:
    """``("positive"|"negative", positive_slices)``: positive when the count exceeds ``threshold``."""
    count = int(np.count_nonzero(slice_positive))
    return ("positive" if count > threshold else "negative"), count
