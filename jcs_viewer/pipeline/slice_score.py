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
"""

from __future__ import annotations

import numpy as np

from jcs_viewer.pipeline.options import SLICE_SCORES

EVIDENCE_WINDOW_MM = 8.0


def lesion_evidence(lesion_probability: np.ndarray, region: np.ndarray | None, pixel_mm: tuple[float, float]
                    ) -> np.ndarray:
    """Per-slice lesion evidence in 0..1.

    Args:
        lesion_probability: ``(n, h, w)`` uint8 lesion probability (0..255).
        region: ``(n, h, w)`` boolean region where lesions count (the lungs and margin), or None.
        pixel_mm: in-plane pixel size ``(dy, dx)`` in mm.

    Returns:
        ``(n,)`` float32: per slice, the largest mean probability over an ``EVIDENCE_WINDOW_MM``
        square window (in pixels, at least 1 x 1) of the probability masked to ``region``.
    """
    prob = np.asarray(lesion_probability, dtype=np.uint8)
    if region is not None:
        prob = prob * np.asarray(region, dtype=bool)  # still uint8
    n, h, w = prob.shape
    ky = int(min(h, max(1, round(EVIDENCE_WINDOW_MM / float(pixel_mm[0])))))
    kx = int(min(w, max(1, round(EVIDENCE_WINDOW_MM / float(pixel_mm[1])))))
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


def rule(mode: str, cutoff: float) -> str:
    """One sentence that says what makes a slice positive."""
    if mode == "classifier":
        return f"A slice is positive when the classifier's COVID probability is at least {cutoff:.2f}."
    return (f"A slice is positive when the mean of the classifier's COVID probability and the segmenter's "
            f"lesion evidence (its most lesion-like {EVIDENCE_WINDOW_MM:g} mm square of lung) is at least "
            f"{cutoff:.2f}.")
