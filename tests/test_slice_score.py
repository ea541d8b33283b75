"""Lesion evidence of a slice (jcs_viewer.pipeline.slice_score) against its definition."""

from __future__ import annotations

import numpy as np
import pytest

from jcs_viewer.pipeline.slice_score import EVIDENCE_WINDOW_MM, lesion_evidence


def _by_definition(prob: np.ndarray, region: np.ndarray, ky: int, kx: int) -> np.ndarray:
    """Per slice, the largest mean of the region-masked probability over every ky x kx window, in 0..1."""
    masked = prob.astype(np.int64) * region
    n, h, w = masked.shape
    best = np.zeros(n)
    for y in range(h - ky + 1):
        for x in range(w - kx + 1):
            best = np.maximum(best, masked[:, y : y + ky, x : x + kx].sum(axis=(1, 2)))
    return best / (255.0 * ky * kx)


@pytest.mark.parametrize("pixel_mm", [(1.0, 1.0), (2.0, 0.8), (0.5, 4.0), (40.0, 40.0)])
def test_evidence_is_the_best_window_mean_inside_the_region(pixel_mm):
    rng = np.random.default_rng(int(pixel_mm[0] * 10))
    prob = (rng.random((3, 19, 23)) * 256).astype(np.uint8)
    region = rng.random((3, 19, 23)) < 0.7
    ky = min(19, max(1, round(EVIDENCE_WINDOW_MM / pixel_mm[0])))
    kx = min(23, max(1, round(EVIDENCE_WINDOW_MM / pixel_mm[1])))
    got = lesion_evidence(prob, region, pixel_mm)
    assert got.dtype == np.float32 and got.shape == (3,)
    np.testing.assert_allclose(got, _by_definition(prob, region, ky, kx), rtol=1e-6)


def test_a_lesion_filling_the_window_scores_one_and_scattered_pixels_little():
    prob = np.zeros((2, 64, 64), dtype=np.uint8)
    prob[0, 20:30, 30:40] = 255  # 10 x 10 px at 1 mm: fills the 8 mm window
    prob[1, ::8, ::8] = 255  # one pixel in 64: any 8 x 8 window holds one
    evidence = lesion_evidence(prob, None, (1.0, 1.0))
    assert evidence[0] == pytest.approx(1.0)
    assert evidence[1] == pytest.approx(1 / 64)
    outside = np.zeros(prob.shape, dtype=bool)  # the same lesion outside the region counts for nothing
    assert lesion_evidence(prob, outside, (1.0, 1.0))[0] == 0.0


def test_evidence_of_a_strided_view_and_of_no_slices():
    rng = np.random.default_rng(3)
    prob = (rng.random((4, 40, 40)) * 256).astype(np.uint8)
    view = prob[::2, :, ::2]  # not contiguous
    np.testing.assert_array_equal(lesion_evidence(view, None, (1.0, 2.0)),
                                  lesion_evidence(np.ascontiguousarray(view), None, (1.0, 2.0)))
    assert lesion_evidence(np.zeros((0, 8, 8), np.uint8), None, (1.0, 1.0)).shape == (0,)


def test_thick_slices_ask_for_a_lesion_wider_than_a_smeared_vessel():
    """A slab averages a vessel it cuts obliquely into a ground-glass smudge about as long as the slab is thick:
    the evidence square is twice the slice thickness (8 mm at least, 16 mm at most)."""
    from jcs_viewer.pipeline.slice_score import evidence_window_mm, rule

    assert [evidence_window_mm(t) for t in (None, 0.0, 1.25, 4.0, 5.0, 7.5, 40.0)] == [8, 8, 8, 8, 10, 15, 16]
    prob = np.zeros((1, 64, 64), dtype=np.uint8)
    prob[0, 20:28, 30:38] = 255  # an 8 x 8 mm smudge at 1 mm pixels
    assert lesion_evidence(prob, None, (1.0, 1.0), evidence_window_mm(1.0))[0] == pytest.approx(1.0)
    assert lesion_evidence(prob, None, (1.0, 1.0), evidence_window_mm(6.0))[0] == pytest.approx(64 / 144)
    prob[0, 10:40, 10:40] = 255  # a 30 mm opacity fills either square
    assert lesion_evidence(prob, None, (1.0, 1.0), evidence_window_mm(6.0))[0] == pytest.approx(1.0)
    assert "8 mm square of lung)" in rule("joint", 0.5, evidence_window_mm(1.0))
    assert "12 mm square of lung, 2 x the slice thickness" in rule("joint", 0.5, evidence_window_mm(6.0))
