"""When a study cannot be judged: non-axial, single slice, no or too little lung, too few lung slices."""

from __future__ import annotations

import numpy as np
import pytest

from jcs_viewer.io.volume import Volume
from jcs_viewer.pipeline.assess import (
    NOT_ASSESSABLE,
    is_axial,
    not_assessable_reason,
    slice_plane,
    unreadable_reason,
)

CORONAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # columns: x, y, z index axes
SAGITTAL = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _volume(n=60, spacing=(5.0, 0.7, 0.7), direction=None, is_hu=True, source_format="dicom"):
    return Volume(np.zeros((n, 256, 256), np.int16), spacing, direction=np.eye(3) if direction is None else direction,
                  is_hu=is_hu, source_format=source_format)


def _lungs(n, slices, ml_per_slice, spacing=(5.0, 0.7, 0.7)):
    mask = np.zeros((n, 256, 256), np.uint8)
    voxels = int(round(ml_per_slice * 1000.0 / np.prod(spacing)))
    for z in slices:
        mask[z].flat[:voxels] = 1
    return mask


def test_planes():
    assert slice_plane(np.eye(3)) == "axial" and is_axial(np.eye(3))
    assert slice_plane(CORONAL) == "coronal" and not is_axial(CORONAL)
    assert slice_plane(SAGITTAL) == "sagittal" and not is_axial(SAGITTAL)
    tilted = np.eye(3)
    a = np.deg2rad(20)  # a 20 degree gantry tilt is still axial
    tilted[:, 2] = [0.0, np.sin(a), np.cos(a)]
    assert is_axial(tilted)


def test_a_full_chest_is_assessable():
    lungs = _lungs(60, range(5, 55), 80.0)  # 4 L over 50 slices
    assert not_assessable_reason(_volume(), lungs, lungs.any(axis=(1, 2)), threshold=5) is None


@pytest.mark.parametrize("direction, word", [(CORONAL, "coronal"), (SAGITTAL, "sagittal")])
def test_non_axial_slices_are_not_assessable(direction, word):
    lungs = _lungs(60, range(5, 55), 80.0)
    reason = not_assessable_reason(_volume(direction=direction), lungs, lungs.any(axis=(1, 2)), 5)
    assert reason is not None and word in reason and "axial" in reason


def test_single_slice_is_not_assessable():
    lungs = _lungs(1, [0], 80.0)
    reason = not_assessable_reason(_volume(n=1), lungs, np.ones(1, bool), 0)
    assert reason is not None and "single slice" in reason.lower() and "no lung" not in reason
    # an abdominal slice (NY-SBU A027284, A058062 and A062055 hold one each) is named as holding no lung
    reason = not_assessable_reason(_volume(n=1), np.zeros_like(lungs), np.zeros(1, bool), 0)
    assert reason.startswith("A single slice cannot be judged, and this one shows no lung:"), reason


def test_no_lung_and_too_little_lung():
    empty = np.zeros((60, 256, 256), np.uint8)
    assert "No lungs" in not_assessable_reason(_volume(), empty, np.zeros(60, bool), 5)
    bases = _lungs(60, range(0, 10), 25.0)  # 250 mL: the lung bases of an abdominal scan
    reason = not_assessable_reason(_volume(), bases, bases.any(axis=(1, 2)), 5)
    assert "250 mL" in reason and "500 mL" in reason


def test_no_lungs_and_no_air_points_at_the_values():
    """A CT stored with its 1024 offset and no RescaleIntercept holds no air at -1000 HU: "No lungs" alone sent
    the reader to the anatomy instead of the header."""
    empty = np.zeros((60, 256, 256), np.uint8)
    offset = _volume()
    offset.array[:] = 1024 - 1000  # air as stored without the intercept
    offset.array[:, 60:200, 60:200] = 1064  # soft tissue
    reason = not_assessable_reason(offset, empty, np.zeros(60, bool), 5)
    assert reason.startswith("No lungs") and "not Hounsfield units" in reason and "RescaleIntercept" in reason
    with_air = _volume()
    with_air.array[:] = -1000
    reason = not_assessable_reason(with_air, empty, np.zeros(60, bool), 5)
    assert reason.startswith("No lungs") and "Hounsfield" not in reason


def test_non_hu_needs_more_lung_and_says_why():
    lungs = _lungs(60, range(5, 55), 16.0)  # 800 mL: enough in HU, not from grey levels alone
    scored = lungs.any(axis=(1, 2))
    assert not_assessable_reason(_volume(), lungs, scored, 5) is None
    reason = not_assessable_reason(_volume(is_hu=False), lungs, scored, 5)
    assert "not Hounsfield" in reason


def test_images_without_voxel_size_are_judged_by_their_lung_ends_not_by_assumed_ml():
    """A folder of PNG/JPEG slices has no voxel size (1 mm assumed): its "mL" say nothing of the patient, so
    it speaks for them when its lungs narrow to apex and base inside the stack, whatever the assumed volume."""
    one_mm = (1.0, 1.0, 1.0)
    whole = np.zeros((40, 256, 256), np.uint8)
    for z, rows in enumerate(np.r_[np.linspace(8, 80, 20), np.linspace(80, 16, 16)].astype(int)):
        whole[z + 2, 60 : 60 + rows, 40:200] = 1  # apex at slice 2, widest at 21, base at 37
    small_ml = float(whole.sum()) / 1000.0
    assert small_ml < 500  # under every mL floor at the assumed voxels
    stack = _volume(n=40, spacing=one_mm, is_hu=False, source_format="images")
    assert not_assessable_reason(stack, whole, whole.any(axis=(1, 2)), 5) is None
    assert "mL" in not_assessable_reason(_volume(n=40, spacing=one_mm, is_hu=False), whole,
                                         whole.any(axis=(1, 2)), 5)  # with a real voxel size the floor holds

    upper_half = whole.copy()
    upper_half[:21] = 0  # the stack begins at the widest section
    reason = not_assessable_reason(stack, upper_half, upper_half.any(axis=(1, 2)), 5)
    assert "no voxel size" in reason and "first image with lung (100%" in reason and "last" not in reason
    middle = whole[15:30]
    reason = not_assessable_reason(_volume(n=15, spacing=one_mm, is_hu=False, source_format="images"), middle,
                                   middle.any(axis=(1, 2)), 5)
    assert "first image" in reason and "last image" in reason and "cut inside the lungs" in reason


def _chest(lung_grey: int) -> np.ndarray:
    """Eight 8-bit slices of a chest: soft tissue (100) with black gaps in its wall, two lungs at ``lung_grey``."""
    yy, xx = np.mgrid[:256, :256]
    image = np.zeros((256, 256), np.int16)
    image[((yy - 128) / 100.0) ** 2 + ((xx - 128) / 120.0) ** 2 <= 1] = 100
    for cx in (80, 176):
        image[((yy - 128) / 70.0) ** 2 + ((xx - cx) / 40.0) ** 2 <= 1] = lung_grey
    image[:, 126:130] = np.where(image[:, 126:130] > 0, 100, 0)  # mediastinum
    image[120:124, :] = 0  # fat of a soft-tissue window at the floor: the wall is open on both sides
    return np.repeat(image[None], 8, axis=0)


def test_a_window_that_clips_the_lungs_to_black_is_unreadable():
    """A soft-tissue window puts lung, air and ground glass at one black value (LIDC2 of the shared data):
    nothing in the lungs can be read, and that is said before "no lungs were found"."""
    from jcs_viewer.pipeline.assess import MAX_CLIPPED_CHEST_SHARE, clipped_chest_share

    clipped, lung_window = _chest(0), _chest(40)
    # the black band across the wall, closed into the chest, is all a lung window leaves at the floor
    assert clipped_chest_share(clipped) > 0.3 and clipped_chest_share(lung_window) < MAX_CLIPPED_CHEST_SHARE / 4
    volume = Volume(clipped, (5.0, 0.7, 0.7), is_hu=False)
    no_lungs = np.zeros(clipped.shape, np.uint8)
    reason = not_assessable_reason(volume, no_lungs, np.zeros(8, bool), 1)
    assert reason == unreadable_reason(volume) and "clip the inside of the chest to black" in reason
    assert unreadable_reason(Volume(lung_window, (5.0, 0.7, 0.7), is_hu=False)) is None
    assert unreadable_reason(Volume(clipped, (5.0, 0.7, 0.7), is_hu=True)) is None  # HU is never a window


def test_pixels_too_coarse_to_tell_lesion_from_vessel(pixel_size_rule):
    lungs = _lungs(60, range(5, 55), 80.0, spacing=(5.0, 4.2, 4.2))
    coarse = _volume(spacing=(5.0, 4.2, 4.2))
    reason = not_assessable_reason(coarse, lungs, lungs.any(axis=(1, 2)), threshold=5)
    assert reason == unreadable_reason(coarse) and "4.2 mm" in reason and "coarse" in reason
    fine_enough = _volume(spacing=(5.0, pixel_size_rule, pixel_size_rule))
    assert unreadable_reason(fine_enough) is None
    # A study without lungs says so first: that is the more basic reason.
    empty = np.zeros((60, 256, 256), np.uint8)
    assert "No lungs" in not_assessable_reason(coarse, empty, np.zeros(60, bool), 5)


def test_coarse_slices_are_neither_scored_nor_segmented(registered, pixel_size_rule):
    """The models are not run on what they cannot read: no score, no lesion, and the reason says why."""
    from jcs_viewer.io import make_phantom
    from jcs_viewer.pipeline import AnalysisOptions, analyze

    volume = make_phantom(n_slices=24, size=96, seed=1).to_volume()  # 96 px over 36 cm: 3.7 mm pixels
    result = analyze(volume, AnalysisOptions(device="cpu"))
    assert result.decision == NOT_ASSESSABLE and "coarse" in result.decision_reason
    assert result.lung_mask.any()  # the lungs are still shown
    assert not result.scored_slices.any() and not result.segmented_slices.any()
    assert not result.slice_positive.any() and not result.lesion_mask.any()
    assert not result.lesions_measured  # "0 mL" would read as "no lesion": the summary says "not measured"
    from dataclasses import replace

    pytest.importorskip("PySide6")
    from jcs_viewer.gui.summary_panel import summary_html

    assert "not measured" in summary_html(result) and "Lesion volume" not in summary_html(result)
    measured = replace(result, segmented_slices=np.ones_like(result.segmented_slices))
    assert measured.lesions_measured and "Lesion volume" in summary_html(measured)
    # The same numbers from a PNG/JPEG stack are counted at assumed voxels, and the summary says so.
    assert "voxels assumed" not in summary_html(measured, volume)
    assert "1 mm voxels assumed" in summary_html(replace(measured, has_voxel_size=False), volume)


def test_fewer_lung_slices_than_the_rule_needs():
    lungs = _lungs(60, range(20, 25), 200.0)  # 1 L on 5 slices, threshold 5
    reason = not_assessable_reason(_volume(), lungs, lungs.any(axis=(1, 2)), threshold=5)
    assert "Only 5 slices carry lung" in reason and "more than 5" in reason


def test_a_study_without_lungs_is_not_assessable_end_to_end(registered):
    """An abdomen (soft tissue, bowel gas in half the slices, no lung): not assessable, and said why; the
    slices without even gas have no score."""
    from jcs_viewer.pipeline import AnalysisOptions, analyze

    n, size = 24, 128
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - 64) / 50.0) ** 2 + ((xx - 64) / 58.0) ** 2 <= 1.0
    array = np.full((n, size, size), -1000, np.int16)
    array[:, body] = 40
    gas = ((yy - 60) / 8.0) ** 2 + ((xx - 40) / 10.0) ** 2 <= 1.0  # a loop of bowel gas through every slice
    array[:12, gas] = -950
    volume = Volume(array, (5.0, 2.5, 2.5))
    result = analyze(volume, AnalysisOptions(device="cpu"))
    assert result.decision == NOT_ASSESSABLE
    assert result.decision_reason.endswith(".") and "lung" in result.decision_reason
    assert not result.slice_positive.any()
    doc = result.summary_dict()
    assert doc["decision"] == "not assessable" and doc["decision_reason"] == result.decision_reason
    unscored = [row for row in doc["per_slice"] if not row["has_lung"]]
    assert unscored and all(row["probability"] is None for row in unscored)


@pytest.mark.parametrize("modality, reason", [("MR", "magnetic resonance (MR), not CT"), ("PT", "PET (PT), not CT"),
                                              ("CT", None), ("", None), ("OT", None)])
def test_a_series_of_another_modality_is_unreadable(modality, reason):
    """An MR series of the chest was once judged POSITIVE (84 % involvement): its grey levels are not CT's.
    A secondary capture (OT) may hold a CT slice: it is read as the grey levels it has."""
    from jcs_viewer.io.volume import StudyInfo

    volume = _volume()
    volume.info = StudyInfo(modality=modality)
    found = unreadable_reason(volume)
    assert found == reason if reason is None else (reason in found and found.endswith("."))


def test_an_mr_series_is_neither_scored_nor_segmented(registered):
    from dataclasses import replace

    from jcs_viewer.io import make_phantom
    from jcs_viewer.pipeline import AnalysisOptions, analyze

    volume = make_phantom(n_slices=24, size=128, seed=1).to_volume()
    volume.info = replace(volume.info, modality="MR")
    result = analyze(volume, AnalysisOptions(device="cpu"))
    assert result.decision == NOT_ASSESSABLE and "not CT" in result.decision_reason
    assert not result.scored_slices.any() and not result.lesion_mask.any()


def test_a_coronal_volume_is_read_as_axial_slices_voxel_for_voxel(tmp_path):
    import SimpleITK as sitk

    from jcs_viewer.io import load_study

    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1000, size=(30, 40, 50), dtype=np.int16)  # (slices, rows, columns)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.5, 2.0))
    image.SetOrigin((10.0, 20.0, 30.0))
    image.SetDirection(CORONAL.ravel().tolist())
    path = tmp_path / "coronal.nii.gz"
    sitk.WriteImage(image, str(path))
    volume = load_study(path)
    assert is_axial(volume.direction) and volume.direction[2, 2] > 0
    assert volume.array.shape == (40, 30, 50) and volume.spacing == pytest.approx((0.5, 2.0, 0.7))
    for x, y, z in [(0, 0, 0), (7, 5, 3), (49, 39, 29)]:  # SimpleITK index (x, y, z) of the source
        lps = np.array(image.TransformIndexToPhysicalPoint((x, y, z)))
        value = array[z, y, x]
        ijk = np.linalg.solve(volume.direction * np.array(volume.spacing[::-1]), lps - np.array(volume.origin))
        i, j, k = (int(round(v)) for v in ijk)
        assert volume.array[k, j, i] == value


def test_as_axial_says_what_it_did_and_leaves_a_few_slices_alone():
    from jcs_viewer.io.reorient import MIN_REFORMAT_SLICES, as_axial

    coronal = Volume(np.zeros((MIN_REFORMAT_SLICES, 20, 30), np.int16), (3.0, 0.8, 0.8), direction=CORONAL)
    axial = as_axial(coronal)
    assert is_axial(axial.direction) and axial.array.shape == (20, MIN_REFORMAT_SLICES, 30)
    assert any("coronal" in w and "axial slices" in w for w in axial.warnings)
    few = Volume(np.zeros((3, 20, 30), np.int16), (3.0, 0.8, 0.8), direction=CORONAL)
    assert as_axial(few) is few  # three coronal slices are not a volume: analysed as not assessable
