"""Lung mask: Dice against the phantom, right/left labels, non-HU fallback, real data."""

import numpy as np
import pytest

from jcs_viewer.pipeline.lungs import compute_lung_mask, include_lesions
from jcs_viewer.pipeline.morphology import dilate_xy
from test_pipeline_support import dice, small_phantom
from conftest import shared_data_path


@pytest.fixture(scope="module")
def phantom():
    return small_phantom(64, 256, seed=1)


def test_lung_mask_matches_phantom(phantom):
    mask = compute_lung_mask(phantom.to_volume())
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, 2}
    assert dice(mask > 0, phantom.lung_mask > 0) >= 0.97
    # Label 1 is the patient's right lung (low x in this LPS volume), 2 the left.
    assert dice(mask == 1, phantom.lung_mask == 1) >= 0.97
    assert dice(mask == 2, phantom.lung_mask == 2) >= 0.97
    # Lesions (including consolidation, which is not air) inside the lungs end up in the mask.
    inside = phantom.lesion_mask > 0
    assert np.count_nonzero(mask[inside] > 0) >= 0.9 * np.count_nonzero(inside)


def test_right_left_follow_the_direction_matrix(phantom):
    vol = phantom.to_volume()
    mirrored = np.ascontiguousarray(vol.array[:, :, ::-1])
    # Columns now run towards patient right: direction's x column is -x.
    mask = compute_lung_mask(mirrored, vol.spacing, direction=np.diag([-1.0, 1.0, 1.0]))
    assert dice(mask == 1, phantom.lung_mask[:, :, ::-1] == 1) >= 0.97


def test_joined_lungs_are_split(phantom):
    hu = phantom.hu.copy()
    lungs = phantom.lung_mask
    # Bridge the lungs with an air channel through the mediastinum over a few slices.
    z = lungs.shape[0] // 2
    right_x = np.flatnonzero((lungs[z] == 1).any(axis=0)).max()
    left_x = np.flatnonzero((lungs[z] == 2).any(axis=0)).min()
    rows = np.flatnonzero(lungs[z].any(axis=1))
    y = int(rows.mean())
    hu[z - 2 : z + 3, y - 3 : y + 3, right_x - 2 : left_x + 3] = -1000
    mask = compute_lung_mask(hu, phantom.spacing)
    assert set(np.unique(mask)) == {0, 1, 2}
    assert dice(mask == 1, lungs == 1) >= 0.95 and dice(mask == 2, lungs == 2) >= 0.95


def test_non_hu_fallback_on_lung_window_images(phantom):
    # The phantom as an 8-bit lung-window stack (what a PNG series gives).
    u8 = np.clip((phantom.hu.astype(np.float32) + 1350) / 1500 * 255, 0, 255).astype(np.int16)
    mask = compute_lung_mask(u8, phantom.spacing, is_hu=False)
    assert dice(mask > 0, phantom.lung_mask > 0) >= 0.95


def test_learned_lungs_trim_the_grey_level_lungs_of_an_8bit_stack(phantom):
    """In an 8-bit stack what the learned net does not call lung is cut away (grey levels cannot tell lung
    from dark fat at the border); in HU the learned mask never removes aerated lung."""
    u8 = np.clip((phantom.hu.astype(np.float32) + 1350) / 1500 * 255, 0, 255).astype(np.int16)
    truth = phantom.lung_mask > 0
    net = ~dilate_xy(~truth, 3)  # the net's lungs stop 3 pixels inside the grey-level border
    learned = (net * 255).astype(np.uint8)
    mask = compute_lung_mask(u8, phantom.spacing, is_hu=False, learned=learned) > 0
    assert mask.any() and not (mask & ~net).any()
    assert dice(mask, net) >= 0.97
    hu_mask = compute_lung_mask(phantom.hu, phantom.spacing, learned=(truth * 255).astype(np.uint8))
    assert dice(hu_mask > 0, truth) >= 0.97


def test_no_lungs_gives_empty_mask():
    block = np.full((4, 32, 32), 40, dtype=np.int16)
    assert not compute_lung_mask(block, (1.0, 1.0, 1.0)).any()


def test_include_lesions_adds_pleural_lesion_to_nearest_lung():
    lungs = np.zeros((1, 20, 40), dtype=np.uint8)
    lungs[0, 5:15, 2:15] = 1
    lungs[0, 5:15, 25:38] = 2
    lesion = np.zeros_like(lungs)
    lesion[0, 8:10, 15:17] = 1  # just outside the right lung
    out = include_lesions(lungs, lesion, (1.0, 1.0, 1.0), margin_mm=3.0)
    assert (out[0, 8:10, 15:17] == 1).all() and (lungs[0, 8:10, 15:17] == 0).all()



def test_a_lesion_continuing_past_the_lung_joins_it_whole_and_a_detached_one_does_not():
    lungs = np.zeros((1, 30, 40), dtype=np.uint8)
    lungs[0, 5:25, 2:15] = 1
    lesion = np.zeros_like(lungs)
    lesion[0, 10:20, 12:30] = 1  # starts in the right lung and runs 15 px past it (a consolidated lobe)
    lesion[0, 2:4, 35:38] = 1  # touches no lung
    out = include_lesions(lungs, lesion, (1.0, 1.0, 1.0), margin_mm=3.0)
    assert (out[0, 10:20, 12:30] == 1).all()
    assert (out[0, 2:4, 35:38] == 0).all()


def test_components_touching_keeps_seeded_components_whole_and_honours_the_share():
    from jcs_viewer.pipeline.morphology import components_touching

    found = np.zeros((2, 12, 12), dtype=bool)
    found[0, 1:3, 1:3] = True  # 4 px, 1 seeded
    found[0, 6:8, 6:9] = True  # 6 px, 4 seeded
    found[1, 1:3, 1:3] = True  # same place, next slice: slices are not joined
    seeds = np.zeros_like(found)
    seeds[0, 1, 1] = True
    seeds[0, 6:8, 6:8] = True
    assert components_touching(found, seeds).sum() == 10
    kept = components_touching(found, seeds, min_share=0.5)
    assert kept[0, 6:8, 6:9].all() and not kept[0, 1:3, 1:3].any() and not kept[1].any()

@pytest.mark.slow
def test_default_demo_study_dice():
    """Acceptance on the default demo study (128 x 512^2)."""
    from jcs_viewer.io.phantom import make_phantom

    p = make_phantom()
    assert dice(compute_lung_mask(p.to_volume()) > 0, p.lung_mask > 0) >= 0.97


@pytest.mark.shared_data
def test_lidc_lung_volume_is_plausible():
    from jcs_viewer.io import load_study

    vol = load_study(shared_data_path("lidc_chest_volume", "LIDC2.mha"))
    assert not vol.is_hu
    mask = compute_lung_mask(vol)
    right, left = (np.count_nonzero(mask == lab) * vol.voxel_volume_ml for lab in (1, 2))
    # Adult lungs hold ~3-7 L at inspiration; each lung 1-4 L.
    assert 2500 <= right + left <= 8000
    assert 800 <= right <= 4500 and 800 <= left <= 4500


def test_single_slice_study_gets_its_lungs(phantom):
    z = phantom.hu.shape[0] // 2
    one = phantom.hu[z : z + 1]
    mask = compute_lung_mask(one, (1.0,) + phantom.spacing[1:])
    assert dice(mask == 1, phantom.lung_mask[z : z + 1] == 1) >= 0.95
    assert dice(mask == 2, phantom.lung_mask[z : z + 1] == 2) >= 0.95


def test_trachea_and_main_bronchi_are_not_lung(phantom):
    from jcs_viewer.pipeline.airways import find_airways
    from jcs_viewer.pipeline.morphology import fill_holes_xy

    vol = phantom.to_volume()
    mask = compute_lung_mask(vol)
    # The phantom's airway lumen: air darker than any lung voxel, outside its lung labels, inside the body.
    body = fill_holes_xy(phantom.hu > -500)
    lumen = (phantom.hu < -950) & (phantom.lung_mask == 0) & body
    assert lumen.sum() > 100  # the phantom has a trachea to find
    assert np.count_nonzero(mask[lumen]) <= 0.02 * lumen.sum()
    airways = find_airways(phantom.hu, (phantom.hu < -320) & body, phantom.spacing, vol.direction)
    assert airways is not None and np.count_nonzero(airways & lumen) >= 0.8 * lumen.sum()
    # Flipping the slice order (cranial end first) finds the same airways.
    flipped = np.diag([1.0, 1.0, -1.0])
    found = find_airways(phantom.hu[::-1], ((phantom.hu < -320) & body)[::-1], phantom.spacing, flipped)
    assert found is not None and np.array_equal(found[::-1], airways)


def test_air_components_are_numbered_as_itk_relabels_them():
    """_inner_air_components reads ITK's 32-bit labels in place and numbers them itself (largest first, ties in
    label order, border components dropped, at most 250): the same labels as ITK's own relabelling did."""
    import SimpleITK as sitk

    from jcs_viewer.pipeline.lungs import _inner_air_components, remove_labels_on_border

    rng = np.random.default_rng(11)
    for trial in range(40):
        air = rng.random((int(rng.integers(1, 6)), int(rng.integers(4, 40)), int(rng.integers(4, 40)))) < 0.45
        for keep_border in (False, True):
            labels, sizes = _inner_air_components(air, per_slice=False, min_voxels=3, keep_border=keep_border)
            image = sitk.ConnectedComponent(sitk.GetImageFromArray(air.astype(np.uint8)), False)
            if not keep_border:
                image = remove_labels_on_border(image)
            relabel = sitk.RelabelComponentImageFilter()
            relabel.SetMinimumObjectSize(3)
            relabel.SetSortByObjectSize(True)
            expected = sitk.GetArrayFromImage(sitk.Threshold(relabel.Execute(image), 0, 250, 0))
            assert np.array_equal(labels, expected), trial
            assert sizes == [int(v) for v in relabel.GetSizeOfObjectsInPixels()][:250]
