"""The lesion gate's through-plane partial-volume rule, on small HU volumes built voxel by voxel."""

from __future__ import annotations

import numpy as np

from jcs_viewer.pipeline.lesion_filter import through_plane_partial_volume

AERATED, HAZE, TISSUE = -850, -500, 40
ORGAN = (slice(8, 20), slice(22, 34))       # rises into the lungs from slice 1
LESION = (slice(24, 36), slice(4, 16))      # ground glass inside the lungs
BESIDE_SOLID = (slice(24, 36), slice(22, 34))  # ground glass over consolidation inside the lungs


def _volume() -> tuple[np.ndarray, np.ndarray]:
    """Five 40 x 40 slices of aerated lung (all lung mask) with the three regions set per slice."""
    image = np.full((5, 40, 40), AERATED, dtype=np.int16)
    lung = np.ones(image.shape, dtype=np.uint8)
    image[0][ORGAN] = image[1][ORGAN] = TISSUE  # the organ, outside the lungs, in slices 0 and 1
    lung[0][ORGAN] = lung[1][ORGAN] = 0
    image[2][ORGAN] = HAZE                      # slice 2 averages its surface with the lung above
    image[1:4][(slice(None),) + LESION] = HAZE  # ground glass through slices 1-3
    image[1][BESIDE_SOLID] = TISSUE             # consolidation (inside the lung mask) under ground glass
    image[2][BESIDE_SOLID] = HAZE
    return image, lung


def _core(region: tuple[slice, slice]) -> tuple[slice, slice]:
    """The region less the 3 mm smoothing's reach from its edges."""
    return tuple(slice(s.start + 2, s.stop - 2) for s in region)


def test_ground_glass_between_an_organ_and_aerated_lung_is_partial_volume():
    image, lung = _volume()
    flagged = through_plane_partial_volume(image, lung, [2], (1.0, 1.0))[0]
    assert flagged[_core(ORGAN)].all()
    assert not flagged[LESION].any()        # ground glass above and below: a lesion, kept
    assert not flagged[BESIDE_SOLID].any()  # the dense slice below is lung (consolidation), not an organ


def test_lung_between_an_organ_below_and_above_is_partial_volume_too():
    image, lung = _volume()
    image[3][ORGAN] = TISSUE
    lung[3][ORGAN] = 0
    assert through_plane_partial_volume(image, lung, [2], (1.0, 1.0))[0][_core(ORGAN)].all()


def test_haze_denser_than_the_lung_side_is_not_read_as_a_ramp():
    """Over the organ, a slice whose lung side is as dense as itself continues a lesion: kept."""
    image, lung = _volume()
    image[3][ORGAN] = HAZE
    assert not through_plane_partial_volume(image, lung, [2], (1.0, 1.0))[0].any()


def test_end_slices_and_short_volumes_are_never_flagged():
    image, lung = _volume()
    image[1][ORGAN] = HAZE  # slice 0 holds the organ, slice 1 the haze, slice 2 aerated lung
    image[2][ORGAN] = AERATED
    flagged = through_plane_partial_volume(image, lung, [0, 1, 4], (1.0, 1.0))
    assert not flagged[0].any() and not flagged[2].any()
    assert flagged[1][_core(ORGAN)].all()
    assert not through_plane_partial_volume(image[:2], lung[:2], [0, 1], (1.0, 1.0)).any()


def test_consolidation_that_runs_on_outside_the_lung_mask_is_not_partial_volume():
    """A consolidated lobe the lung mask misses in three slices: as dense here as on both sides, not a mixture."""
    image, lung = _volume()
    for z in (1, 2, 3):
        image[z][ORGAN], lung[z][ORGAN] = TISSUE, 0
    assert not through_plane_partial_volume(image, lung, [2], (1.0, 1.0))[0].any()
