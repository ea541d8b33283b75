"""Slice scores: the classifier alone (the paper's flow), or jointly with the segmenter's lesion evidence.

The paper flags a slice when its classifier says COVID and segments only the flagged slices. That
needs a classifier as strong as the paper's (trained on 144,167 slices of 750 patients). The shipped
lite classifier learned from 425 figure crops and 56 MedSeg slices; the lite segmenter, trained on
pixel masks, is the better lesion detector on real CT and on the demo phantom (slice AUC from lesion
evidence vs classifier on the demo: see weights/README.md). The ``joint`` score therefore asks both
networks, as a soft vote of two probabilities:

    score = (classifier probability + lesion evidence) / 2

where the lesion evidence is the mean lesion probability of the most lesion-like
``EVIDENCE_WINDOW_MM`` square of the slice inside the lungs (plus the lesion margin): a lesion that
fills such a square scores 1, scattered single pixels score little. A slice is positive when its
score reaches the slice cutoff; with ``classifier`` the score is the classifier probability alone.
The joint score needs every slice segmented.

On thick slices the square is wider, ``THICK_SLICE_FACTOR`` times the slice thickness
(:func:`evidence_window_mm`): a slab averages a vessel that crosses it obliquely into a faint smudge
of ground-glass density about as long as the slab is thick, which the segmenter cannot tell from a
small opacity. The lesion-free chest crop averaged into 6 and 7.5 mm slices had 3 and 4 slices
flagged for such smudges (45-90 mm² each, by the hila and in the periphery) and was called positive;
the real COVID slices of 5 mm score as before, their lesions being far wider than 10 mm.
"""

from __future__ import annotations

import numpy as np

from jcs_viewer.pipeline.options import SLICE_SCORES

EVIDENCE_WINDOW_MM = 8.0
THICK_SLICE_FACTOR = 2.0
#: Slices past 8 mm are no diagnostic chest CT (the test phantoms' few slices of 20-40 mm stand in for a chest):
#: the square grows no further.
MAX_EVIDENCE_WINDOW_MM = 16.0


def evidence_window_mm(slice_thickness_mm: float | None) -> float:
    """The side of the lesion evidence square for slices this thick (``None``: not known, the thin default)."""
    if slice_thickness_mm is None or not slice_thickness_mm > 0:
        return EVIDENCE_WINDOW_MM
    return min(MAX_EVIDENCE_WINDOW_MM, max(EVIDENCE_WINDOW_MM, THICK_SLICE_FACTOR * float(slice_thickness_mm)))


def lesion_evidence(lesion_probability: np.ndarray, region: np.ndarray | None, pixel_mm: tuple[float, float],
                    window_mm: float = EVIDENCE_WINDOW_MM) -> np.ndarray:
    """Per-slice lesion evidence in 0..1.

    Args:
        lesion_probability: ``(n, h, w)`` uint8 lesion probability (0..255).
        region: ``(n, h, w)`` boolean region where lesions count (the lungs and margin), or None.
        pixel_mm: in-plane pixel size ``(dy, dx)`` in mm.
        window_mm: side of the square in mm (:func:`evidence_window_mm` for the study's slices).

    Returns:
        ``(n,)`` float32: per slice, the largest mean probability over a ``window_mm`` square window
        (in pixels, at least 1 x 1, at most the slice) of the probability masked to ``region``.
    """
    prob = np.asarray(lesion_probability, dtype=np.uint8)
    if region is not None:
        prob = prob * np.asarray(region, dtype=bool)  # still uint8
    n, h, w = prob.shape
    ky = int(min(h, max(1, round(window_mm / float(pixel_mm[0])))))
    kx = int(min(w, max(1, round(window_mm / float(pixel_mm[1])))))
    import cv2

    out = np.empty(n, dtype=np.float32)
    for z in range(n):
        # Integral image in exact integers (255 x 512^2 fits int32 with room to spare); OpenCV's is one pass.
        total = cv2.integral(prob[z], sdepth=cv2.CV_32S)
        window = total[ky:, kx:] - total[:-ky, kx:] - total[ky:, :-kx] + total[:-ky, :-kx]
        out[z] = window.max() / (255.0 * ky * kx)
    return out


def combine(classifier_probability: np.ndarray, evidence: np.ndarray | None, mode: str) -> np.ndarray:
    """The slice score of ``mode`` (``evidence`` is required for ``joint``)."""
    if mode == "classifier":
        return np.asarray(classifier_probability, dtype=np.float32)
    if mode != "joint":
        raise ValueError(f"slice score must be one of {SLICE_SCORES}, not {mode!r}")
    if evidence is None:
        raise ValueError("the joint slice score needs the lesion evidence of every slice")
    return ((np.asarray(classifier_probability, np.float32) + np.asarray(evidence, np.float32)) / 2.0)


def rule(mode: str, cutoff: float, window_mm: float = EVIDENCE_WINDOW_MM) -> str:
    """One sentence that says what makes a slice positive."""
    if mode == "classifier":
        return f"A slice is positive when the classifier's COVID probability is at least {cutoff:.2f}."
    square = f"its most lesion-like {window_mm:g} mm square of lung"
    if window_mm > EVIDENCE_WINDOW_MM:
        square += (f", {THICK_SLICE_FACTOR:g} x the slice thickness: a thick slice smears a vessel it cuts "
                   f"obliquely into ground glass")
    return (f"A slice is positive when the mean of the classifier's COVID probability and the segmenter's "
            f"lesion evidence ({square}) is at least {cutoff:.2f}.")
