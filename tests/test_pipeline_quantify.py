"""Quantification against the phantom's ground truth and hand-made masks."""

import numpy as np
import pytest

from jcs_viewer.pipeline.quantify import quantify
from test_pipeline_support import small_phantom


@pytest.fixture(scope="module")
def phantom():
    return small_phantom(48, 192, seed=3)


def test_ground_truth_lesion_volume_within_one_percent(phantom):
    vol = phantom.to_volume()
    q = quantify(vol, phantom.lung_mask, phantom.lesion_mask)
    true_ml = sum(spec.n_voxels for spec in phantom.lesions) * phantom.voxel_volume_ml
    assert true_ml > 0
    assert q.lesion_volume_ml["total"] == pytest.approx(true_ml, rel=0.01)
    # Every phantom lesion lies inside its lung: left + right = total, nothing outside.
    assert q.lesion_volume_ml["left"] + q.lesion_volume_ml["right"] == pytest.approx(true_ml, rel=1e-9)
    assert q.lesion_outside_lungs_ml == pytest.approx(0.0, abs=1e-9)
    for side, label in (("right", 1), ("left", 2)):
        per_side = sum(s.n_voxels for s in phantom.lesions if s.lung == side) * phantom.voxel_volume_ml
        assert q.lesion_volume_ml[side] == pytest.approx(per_side, rel=0.01)
        lung_ml = np.count_nonzero(phantom.lung_mask == label) * phantom.voxel_volume_ml
        assert q.lung_volume_ml[side] == pytest.approx(lung_ml)
        assert q.involvement_percent[side] == pytest.approx(100 * per_side / lung_ml, rel=0.01)
    # Lobulated phantom lesions may touch each other; never more components than lesions.
    assert len(phantom.lesions) - 2 <= q.lesion_count <= len(phantom.lesions)
    # Per-slice areas integrate to the volume; zones split the in-lung volume.
    assert q.per_slice_area_mm2.sum() * phantom.spacing[0] / 1000 == pytest.approx(true_ml, rel=1e-9)
    assert sum(q.zones.values()) == pytest.approx(true_ml, rel=1e-9)
    assert q.per_slice_count.max() >= 1


def test_hu_split_matches_lesion_kinds(phantom):
    q = quantify(phantom.to_volume(), phantom.lung_mask, phantom.lesion_mask)
    v = phantom.voxel_volume_ml
    ggo = np.count_nonzero(phantom.lesion_mask == 1) * v
    cons = np.count_nonzero(phantom.lesion_mask == 2) * v
    assert q.ggo_ml == pytest.approx(ggo, rel=0.1)
    if cons > 0:
        assert q.consolidation_ml == pytest.approx(cons, rel=0.1)
    assert -800 < q.mean_hu < 0


def test_cube_geometry_and_zones():
    hu = np.full((30, 40, 40), -850, dtype=np.int16)
    lungs = np.zeros(hu.shape, dtype=np.uint8)
    lungs[:, 5:35, 2:19] = 1
    lungs[:, 5:35, 21:38] = 2
    lesion = np.zeros(hu.shape, dtype=np.uint8)
    lesion[24:28, 10:14, 5:9] = 1  # right lung, high z
    lesion[2:4, 10:12, 25:27] = 1  # left lung, low z (8 voxels: below the 10-voxel minimum)
    hu[lesion > 0] = -500
    q = quantify(hu, lungs, lesion, spacing=(2.0, 1.0, 1.0))
    assert q.lesion_volume_ml["right"] == pytest.approx(64 * 2 / 1000)
    assert q.lesion_volume_ml["left"] == pytest.approx(8 * 2 / 1000)
    assert q.lesion_count == 1  # the small one is ignored
    assert q.extent_mm == pytest.approx((27 - 2 + 1) * 2.0)
    # Identity direction: high z is cranial.
    assert q.zones["upper"] == pytest.approx(64 * 2 / 1000)
    assert q.zones["lower"] == pytest.approx(8 * 2 / 1000)
    flipped = quantify(hu, lungs, lesion, spacing=(2.0, 1.0, 1.0), direction=np.diag([1.0, 1.0, -1.0]))
    assert flipped.zones["upper"] == pytest.approx(8 * 2 / 1000)
    assert q.ggo_ml == pytest.approx(72 * 2 / 1000) and q.consolidation_ml == 0.0
    assert quantify(hu, lungs, np.zeros_like(lesion), spacing=(2.0, 1.0, 1.0)).lesion_count == 0


def test_components_use_26_connectivity():
    hu = np.full((20, 20, 20), -850, dtype=np.int16)
    lungs = np.ones(hu.shape, dtype=np.uint8)
    lesion = np.zeros(hu.shape, dtype=np.uint8)
    lesion[2:5, 2:5, 2:5] = 1
    lesion[5:8, 5:8, 5:8] = 1  # touches the first only at a corner: one component
    lesion[12:15, 12:15, 12:15] = 1  # apart: a second one
    q = quantify(hu, lungs, lesion, spacing=(1.0, 1.0, 1.0))
    assert q.lesion_count == 2
    assert q.per_slice_count[4] == 1 and q.per_slice_count[13] == 1


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        quantify(np.zeros((2, 4, 4), np.int16), np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 5), np.uint8),
                 spacing=(1, 1, 1))
