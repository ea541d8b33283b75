"""In-plane binary morphology (jcs_viewer.pipeline.morphology) against the definition, pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest

from jcs_viewer.pipeline import morphology


def _by_definition(mask: np.ndarray, radius: int, dilate: bool) -> np.ndarray:
    """Each pixel's OR (dilation) or AND (erosion) over its (2r+1)^2 square, clipped to the slice."""
    out = np.zeros_like(mask)
    _, h, w = mask.shape
    for y in range(h):
        for x in range(w):
            window = mask[:, max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
            out[:, y, x] = window.any(axis=(1, 2)) if dilate else window.all(axis=(1, 2))
    return out


@pytest.mark.parametrize("radius", [1, 2, 3, 5, 7, 12, 40])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.3, 0.8, 1.0])
def test_square_dilation_and_erosion_match_their_definition(radius, density):
    rng = np.random.default_rng(radius * 100 + int(density * 10))
    mask = rng.random((3, 23, 31)) < density
    mask[1] = False  # a slice with nothing, beside slices with something: no mixing along z
    if density:
        mask[2, 5:9, 20:30] = True  # a block near the edge, so that clipping at the slice's edge matters
    assert np.array_equal(morphology.dilate_xy(mask, radius), _by_definition(mask, radius, True))
    assert np.array_equal(morphology.erode_xy(mask, radius), _by_definition(mask, radius, False))


def test_window_half_lengths_add_up_to_the_radius_in_logarithmic_passes():
    for radius in range(1, 200):
        steps = morphology._segments(radius)
        assert sum(steps) == radius
        assert len(steps) <= radius.bit_length() + 1


def test_morphology_keeps_the_callers_dtype_and_does_not_touch_its_input():
    mask = np.zeros((1, 9, 9), dtype=np.uint8)
    mask[0, 4, 4] = 1
    before = mask.copy()
    grown = morphology.dilate_xy(mask, 2)
    assert grown.dtype == np.uint8 and int(grown.sum()) == 25
    assert np.array_equal(mask, before)
    assert not morphology.erode_xy(mask, 1).any()


def test_components_touching_reads_each_slice_on_its_own():
    rng = np.random.default_rng(7)
    candidates = rng.random((7, 30, 30)) < 0.35
    candidates[[0, 1, 5]] = False  # slices without candidates, with seeds: nothing of theirs may be kept
    seeds = rng.random((7, 30, 30)) < 0.02
    whole = morphology.components_touching(candidates, seeds, min_share=0.05)
    one_by_one = np.concatenate([morphology.components_touching(candidates[z : z + 1], seeds[z : z + 1], 0.05)
                                 for z in range(7)])
    assert np.array_equal(whole, one_by_one)
    assert whole[[2, 3, 4, 6]].any() and not whole[[0, 1, 5]].any()
    assert not (whole & ~candidates).any()


def _itk_components(mask: np.ndarray, minimum: int) -> int:
    """The reference: one 3-D ITK labelling (full connectivity), components of at least ``minimum`` voxels."""
    import SimpleITK as sitk

    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
    relabel = sitk.RelabelComponentImageFilter()
    relabel.SetMinimumObjectSize(minimum)
    relabel.Execute(labels)
    return int(relabel.GetNumberOfObjects())


def test_components_counted_slice_by_slice_match_one_3d_labelling():
    """count_components joins the slices' own components where they touch (26-connected) instead of labelling the
    whole mask at once: the same count on masks sparse to dense, thin and thick, 2-D too."""
    rng = np.random.default_rng(7)
    for trial in range(120):
        shape = (int(rng.integers(1, 9)), int(rng.integers(1, 24)), int(rng.integers(1, 24)))
        mask = rng.random(shape) < rng.uniform(0.05, 0.7)
        for minimum in (1, 3, 10):
            assert morphology.count_components(mask, minimum) == _itk_components(mask, minimum), (trial, minimum)
    plane = rng.random((30, 40)) < 0.35
    assert morphology.count_components(plane, 2) == _itk_components(plane[None], 2)
    assert morphology.count_components(np.zeros((3, 4, 4), bool)) == 0
    # two blobs that touch only corner to corner across slices are one (26-connectivity)
    corner = np.zeros((2, 5, 5), bool)
    corner[0, 1, 1] = corner[1, 2, 2] = True
    assert morphology.count_components(corner) == 1


def _fill_holes_one_labelling(mask: np.ndarray) -> np.ndarray:
    """The reference: background components (4-connected, each slice its own) that touch no slice border."""
    import SimpleITK as sitk

    out = mask.copy()
    for z in range(mask.shape[0]):
        labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray((~mask[z]).astype(np.uint8)),
                                                                False))
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        out[z] |= (labels > 0) & ~np.isin(labels, border)
    return out


def test_fill_holes_fills_what_no_slice_border_reaches():
    rng = np.random.default_rng(3)
    for _ in range(60):
        mask = rng.random((3, int(rng.integers(3, 30)), int(rng.integers(3, 30)))) < rng.uniform(0.3, 0.8)
        assert np.array_equal(morphology.fill_holes_xy(mask), _fill_holes_one_labelling(mask))
