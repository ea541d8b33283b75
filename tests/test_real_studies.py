"""A newcomer's real-data run: ``jcs-viewer analyze`` with the shipped weights on every real CT set.

Nothing here was made by us: every volume of ``real_ct_small`` is free of COVID (any lesion is a false
positive), the NY-SBU slices are COVID patients' single slices (axial, coronal, sagittal). Each test
reads the decision field of ``results.json`` and, where the data has labels, the anatomy of the lung
mask (liver, spleen, stomach and heart must stay out of it). Skips when ``../shared/data`` is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import shared_data_path
from jcs_viewer.cli import main

pytestmark = [pytest.mark.shared_data, pytest.mark.usefixtures("pixel_size_rule")]

#: the acceptance bound on false-positive lesions in a lesion-free real volume
MAX_FALSE_LESION_ML = 5.0
#: TotalSegmentator class ids of the organs that must not be lung
ORGANS = {"spleen": 1, "liver": 5, "stomach": 6}


@pytest.fixture(autouse=True)
def _shipped_weights_only(monkeypatch, tmp_path):
    """The shipped weights, as a new user gets them (no user folder)."""
    monkeypatch.delenv("JCS_VIEWER_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no-user-weights"))


def analyze(path: Path, out: Path) -> dict:
    assert main(["analyze", str(path), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    return json.loads((out / "results.json").read_text())


def labels_on(label_file: Path, reference: Path) -> np.ndarray:
    """A label image resampled (nearest) onto another image's grid, by physical position."""
    ref = sitk.ReadImage(str(reference))
    return sitk.GetArrayFromImage(sitk.Resample(sitk.ReadImage(str(label_file)), ref, sitk.Transform(),
                                                sitk.sitkNearestNeighbor, 0))


def lung_array(out: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lung_mask.nii.gz"))) > 0


def assert_lesion_free_verdict(doc: dict) -> None:
    assert doc["decision"] in ("negative", "not assessable"), doc["decision"]
    if doc["decision"] == "not assessable":
        assert doc["decision_reason"].endswith(".")
    assert doc["lesion_volume_ml"]["total"] <= MAX_FALSE_LESION_ML, doc["lesion_volume_ml"]


def test_lung_bases_keep_liver_spleen_and_stomach_out(tmp_path):
    ct = shared_data_path("real_ct_small", "totalsegmentator", "example_ct_sm.nii.gz")
    doc = analyze(ct, tmp_path)
    assert_lesion_free_verdict(doc)
    lung = lung_array(tmp_path)
    organs = np.isin(labels_on(ct.with_name("example_seg.nii.gz"), tmp_path / "lung_mask.nii.gz"),
                     list(ORGANS.values()))
    assert lung.any()
    assert (lung & organs).sum() <= 0.01 * lung.sum()


def test_lung_bases_read_as_8bit_slices_keep_the_abdomen_out(tmp_path):
    """The same volume exported as lung-window PNG slices (as a web figure or a screenshot stack would be): the
    8-bit lung net was trained on whole consolidated lobes, and a dense lobe at the base looks like the liver
    dome; no lung may be found in the liver, spleen or stomach, nor in a slice without lung (bowel gas: 2,079
    of the 5,153 lung pixels the HU-default lung net found there)."""
    from PIL import Image

    from jcs_viewer.pipeline.lung_ai import display_flips

    ct = shared_data_path("real_ct_small", "totalsegmentator", "example_ct_sm.nii.gz")
    image = sitk.ReadImage(str(ct))
    flip_rows, flip_cols = display_flips(image.GetDirection())

    def shown(a: np.ndarray) -> np.ndarray:  # anterior up, patient right on the image left
        return a[:, ::-1 if flip_rows else 1, ::-1 if flip_cols else 1]

    hu = shown(sitk.GetArrayFromImage(image).astype(np.float32))
    seg = shown(sitk.GetArrayFromImage(sitk.ReadImage(str(ct.with_name("example_seg.nii.gz")))))
    stack = tmp_path / "stack"
    stack.mkdir()
    for z, hu_slice in enumerate(np.clip((hu + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)):
        Image.fromarray(np.ascontiguousarray(hu_slice)).save(stack / f"{z:03d}.png")
    analyze(stack, tmp_path / "out")
    lung = np.load(tmp_path / "out" / "arrays.npz")["lung_mask"] > 0
    organs = np.isin(seg, list(ORGANS.values()))
    without_lung = ~np.isin(seg, [10, 11, 12, 13, 14]).any(axis=(1, 2))  # TotalSegmentator's five lobes
    assert lung.sum() > 1000
    assert (lung & organs).sum() <= 0.01 * lung.sum()
    assert not lung[without_lung].any()


def test_an_abdomen_without_lungs_is_not_assessable(tmp_path):
    """The TotalSegmentator volume below its lung bases (no lung label in any slice): not assessable."""
    ct = shared_data_path("real_ct_small", "totalsegmentator", "example_ct_sm.nii.gz")
    image = sitk.ReadImage(str(ct))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(ct.with_name("example_seg.nii.gz"))))
    lung_slices = np.flatnonzero(np.isin(seg, [10, 11, 12, 13, 14]).any(axis=(1, 2)))
    abdomen = image[:, :, : int(lung_slices.min())]  # SimpleITK index order is x, y, z
    assert abdomen.GetSize()[2] >= 10
    path = tmp_path / "abdomen.nii.gz"
    sitk.WriteImage(abdomen, str(path))
    doc = analyze(path, tmp_path / "out")
    assert doc["decision"] == "not assessable"
    assert "lung" in doc["decision_reason"]
    assert doc["positive_slices"] == 0 and doc["lesion_volume_ml"]["total"] == 0.0


def test_chest_crop_keeps_the_heart_out(tmp_path):
    ct = shared_data_path("real_ct_small", "totalsegmentator", "chest_crop", "ct_cropped.nii.gz")
    doc = analyze(ct, tmp_path)
    assert_lesion_free_verdict(doc)
    assert not any(row["too_blurred"] for row in doc["per_slice"])  # a sharp scan: every slice with lung is read
    lung = lung_array(tmp_path)
    heart = labels_on(ct.with_name("heart.nii.gz"), tmp_path / "lung_mask.nii.gz") > 0
    assert (lung & heart).sum() <= 0.01 * max(int(lung.sum()), 1)


def _chest_crop_path() -> Path:
    return shared_data_path("real_ct_small", "totalsegmentator", "chest_crop", "ct_cropped.nii.gz")


def _chest_crop() -> tuple[sitk.Image, np.ndarray]:
    image = sitk.ReadImage(str(_chest_crop_path()))
    return image, sitk.GetArrayFromImage(image).astype(np.float32)


def _analyze_variant(tmp_path: Path, hu: np.ndarray, spacing: tuple[float, ...], like: sitk.Image,
                     floor: float = -1024) -> dict:
    """``hu`` written as a NIfTI with ``spacing`` (x, y, z) at ``like``'s origin and direction, values clipped to
    ``floor``..3071, then analysed."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    variant = sitk.GetImageFromArray(np.clip(np.rint(hu), floor, 3071).astype(np.int16))
    variant.SetSpacing(spacing)
    variant.SetOrigin(like.GetOrigin())
    variant.SetDirection(like.GetDirection())
    sitk.WriteImage(variant, str(tmp_path / "variant.nii.gz"))
    return analyze(tmp_path / "variant.nii.gz", tmp_path / "out")


@pytest.mark.parametrize("slab", [2, 3])
def test_chest_crop_in_thick_slices_is_not_called_covid(tmp_path, slab):
    """The same lesion-free chest averaged into 3 and 4.5 mm slices, as thick reconstructions are: the heart's
    border and the domes cut obliquely by a slice read as ground glass (positive, 4.2 and 14.3 mL, before the
    gate's through-plane partial-volume rule)."""
    image, hu = _chest_crop()
    n = len(hu) // slab * slab
    thick = hu[:n].reshape(n // slab, slab, *hu.shape[1:]).mean(axis=1)
    doc = _analyze_variant(tmp_path, thick, image.GetSpacing()[:2] + (image.GetSpacing()[2] * slab,), image)
    assert doc["decision"] == "negative", (doc["decision"], doc["positive_slices"], doc["decision_reason"])
    assert doc["lesion_volume_ml"]["total"] <= 3.0, doc["lesion_volume_ml"]


@pytest.mark.parametrize("slab", [4, 5])
def test_chest_crop_in_6_and_7_5_mm_slices_is_not_flagged_for_smeared_vessels(tmp_path, slab):
    """Averaged into 6 and 7.5 mm slices, the lesion-free chest was called positive (3 and 4 slices flagged,
    threshold 2): each for one faint smudge of 45-90 mm² by a hilum or in the periphery, a vessel the slab cut
    obliquely. The lesion evidence of thick slices asks for a square twice the thickness
    (jcs_viewer.pipeline.slice_score.evidence_window_mm)."""
    image, hu = _chest_crop()
    n = len(hu) // slab * slab
    thick = hu[:n].reshape(n // slab, slab, *hu.shape[1:]).mean(axis=1)
    doc = _analyze_variant(tmp_path, thick, image.GetSpacing()[:2] + (image.GetSpacing()[2] * slab,), image)
    assert doc["decision"] == "negative", (doc["decision"], doc["positive_slices"], doc["threshold"])
    assert doc["positive_slices"] <= 1 and f"{2 * 1.5 * slab:g} mm square" in doc["slice_rule"]
    assert_lesion_free_verdict(doc)


def test_chest_crop_made_to_look_like_a_sharp_lung_kernel_is_not_called_covid(tmp_path):
    """The lesion-free crop at 0.75 mm pixels (cubic), an unsharp mask (amount 1, 1 mm) as a lung kernel's edge
    enhancement, and 30 HU of fine noise: positive with 21 of 112 slices and 6.3 mL before the nets read HU slices
    through ``harmonise_kernel``; 8 and 1.8 mL with it."""
    import cv2

    image, hu = _chest_crop()
    fine = np.stack([cv2.resize(s, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC) for s in hu])
    pixel = image.GetSpacing()[0] / 2
    rng = np.random.default_rng(0)
    for z, s in enumerate(fine):
        noise = cv2.GaussianBlur(rng.normal(0, 1, s.shape).astype(np.float32), (0, 0), 0.5 / pixel)
        fine[z] = s + (s - cv2.GaussianBlur(s, (0, 0), 1.0 / pixel)) + noise * (30.0 / noise.std())
    doc = _analyze_variant(tmp_path, fine, (pixel, pixel, image.GetSpacing()[2]), image)
    assert doc["decision"] == "negative", (doc["decision"], doc["positive_slices"], doc["decision_reason"])
    assert doc["lesion_volume_ml"]["total"] <= 4.0, doc["lesion_volume_ml"]


def test_chest_crop_in_a_circular_field_of_view_keeps_the_padding_out_of_the_lungs(tmp_path):
    """The crop's lungs reach its edges; written as a scanner writes a tight field of view (-3024 outside the
    reconstruction circle), the padding joined the lungs: 472 mL of it counted as lung."""
    image, hu = _chest_crop()
    rows, cols = np.mgrid[:hu.shape[1], :hu.shape[2]]
    outside = (rows - (hu.shape[1] - 1) / 2) ** 2 + (cols - (hu.shape[2] - 1) / 2) ** 2 > (max(hu.shape[1:]) / 2) ** 2
    doc = _analyze_variant(tmp_path / "fov", np.where(outside, -3024.0, hu), image.GetSpacing(), image, floor=-3024)
    plain = analyze(_chest_crop_path(), tmp_path / "plain")
    lung, reference = lung_array(tmp_path / "fov" / "out"), lung_array(tmp_path / "plain") & ~outside
    assert not lung[:, outside].any()
    assert 2 * (lung & reference).sum() / (lung.sum() + reference.sum()) >= 0.97
    assert doc["decision"] == plain["decision"] == "negative"


def test_chest_crop_framed_in_padding_is_read_as_without_the_frame(tmp_path):
    """A frame of padding all round (a volume resampled into a larger grid) joined the lungs at the crop's edges to
    the air outside: no lung found (not assessable, 0 mL). The frame's edge is now read as the image's edge."""
    image, hu = _chest_crop()
    framed = np.pad(hu, ((0, 0), (30, 30), (30, 30)), constant_values=-2000.0)
    doc = _analyze_variant(tmp_path, framed, image.GetSpacing(), image, floor=-2000)
    assert doc["decision"] == "negative", (doc["decision"], doc["decision_reason"])
    assert doc["lung_volume_ml"]["total"] >= 1800.0, doc["lung_volume_ml"]
    assert not lung_array(tmp_path / "out")[:, :30].any()


def test_copd_thorax_is_too_coarse_to_judge(tmp_path):
    """64 x 64 pixels of 4.2 mm: vessels blur into ground-glass smudges, so the models are not run on it.

    (Forced through the models it gets about 68 mL of "lesions" on hilar vessels: the images, not the lungs,
    are what cannot be judged. Its lungs are still found; see the next test.)
    """
    ct = shared_data_path("real_ct_small", "chest_imaging_platform", "ct-64.nrrd")
    doc = analyze(ct, tmp_path)
    assert_lesion_free_verdict(doc)
    assert doc["decision"] == "not assessable"
    assert "4.2 mm" in doc["decision_reason"] and "coarse" in doc["decision_reason"]
    assert doc["positive_slices"] == 0


def test_copd_thorax_resampled_onto_fine_pixels_is_still_too_blurred_to_judge(tmp_path):
    """The same 4.2 mm thorax resampled onto 0.8 mm pixels (a 512 matrix, as an export or a reformat writes it):
    the pixel size no longer tells, its edges do (blurred by about 2.2 mm). Called positive (15 slices, 12 mL of
    "lesions") before the blur was measured."""
    image = sitk.ReadImage(str(shared_data_path("real_ct_small", "chest_imaging_platform", "ct-64.nrrd")))
    spacing = (0.8, 0.8, image.GetSpacing()[2])
    size = [int(round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing, strict=True)]
    fine = sitk.Resample(image, size, sitk.Transform(), sitk.sitkBSpline, image.GetOrigin(), spacing,
                         image.GetDirection(), -1024, image.GetPixelID())
    sitk.WriteImage(fine, str(tmp_path / "fine.nii.gz"))
    doc = analyze(tmp_path / "fine.nii.gz", tmp_path / "out")
    assert doc["decision"] == "not assessable" and doc["positive_slices"] == 0, doc["decision"]
    assert "blurrier than its 0.8 mm pixels" in doc["decision_reason"], doc["decision_reason"]
    assert not any(row["segmented"] or row["probability"] is not None for row in doc["per_slice"])


def test_chest_crop_blurred_past_clinical_kernels_is_not_judged(tmp_path):
    """The lesion-free crop blurred by a 3-D Gaussian of 1.25 mm (its edges then measure about 1.4 mm; clinical
    reconstructions 0.3-0.9): positive with 22 slices before the blur was measured, not assessable now."""
    image, _ = _chest_crop()
    blurred = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), 1.25)
    doc = _analyze_variant(tmp_path, sitk.GetArrayFromImage(blurred), image.GetSpacing(), image)
    assert doc["decision"] == "not assessable" and "blurrier" in doc["decision_reason"], doc["decision_reason"]


def test_chest_crop_with_its_bases_blurred_by_breathing_is_read_on_its_sharp_slices(tmp_path):
    """The lesion-free crop's lowest 40 slices blurred in-plane by 2.5 mm, as breathing blurs the bases of a sharp
    scan: the study's median blur stays sharp (0.7 mm), and it was called positive (28 slices, 15 mL). Those slices
    are now left unscored, and the analysis says which."""
    import cv2

    image, hu = _chest_crop()
    sigma_px = 2.5 / image.GetSpacing()[0]
    moved = hu.copy()
    moved[:40] = np.stack([cv2.GaussianBlur(s, (0, 0), sigma_px) for s in hu[:40]])
    doc = _analyze_variant(tmp_path, moved, image.GetSpacing(), image)
    assert doc["decision"] == "negative", (doc["decision"], doc["positive_slices"], doc["decision_reason"])
    blurred = [row["index"] for row in doc["per_slice"] if row["too_blurred"]]
    assert 30 <= len(blurred) <= 40 and max(blurred) < 40, blurred  # the apex-most of them may hold no lung
    assert any("blurred past what the models read" in m for m in doc["messages"])


def test_clinical_reconstructions_measure_sharper_and_quieter_than_the_rules():
    """Every real HU slice here, soft kernels (GE STANDARD, Toshiba FC17) at 1-5 mm included, is read: its edges
    sharper than the blur rule, its soft tissue quieter than the noise rule (6.5-26.5 HU against 40)."""
    from jcs_viewer.io import load_study
    from jcs_viewer.pipeline.assess import MAX_EDGE_BLUR_MM, MAX_NOISE_HU
    from jcs_viewer.pipeline.noise import noise_hu
    from jcs_viewer.pipeline.sharpness import edge_blur_mm

    sbu = shared_data_path("covid19_ny_sbu_dicom_slices")
    files = sorted(sbu.glob("*/axial/*.dcm")) + [shared_data_path("ct_3slice_dcmqi"),
                                                  shared_data_path("real_ct_small", "lungmask_slices")]
    blurs, noises = {}, {}
    for path in files:
        volume = load_study(path)
        blurs[path.name] = edge_blur_mm(volume.array, volume.spacing[1:])
        noises[path.name] = noise_hu(volume.array, volume.spacing[1:])
    assert len(blurs) == 22 and all(b is not None for b in blurs.values()), blurs
    assert max(blurs.values()) < 0.8 * MAX_EDGE_BLUR_MM, blurs
    assert all(n is not None for n in noises.values()) and max(noises.values()) < 0.8 * MAX_NOISE_HU, noises


@pytest.mark.parametrize("noise_sd, grain_mm, expected", [(80.0, 1.0, "not assessable"), (40.0, 0.5, "negative")])
def test_chest_crop_with_ultra_low_dose_grain_is_not_judged(tmp_path, noise_sd, grain_mm, expected):
    """The lesion-free crop with 80 HU of noise of 1 mm grain (52 HU at the nets' scale), as an ultra-low-dose scan:
    positive with 14 slices and 22 mL before the noise was measured; with 40 HU of fine grain (20 HU) it is read."""
    import cv2

    image, hu = _chest_crop()
    rng = np.random.default_rng(1)
    noisy = hu.copy()
    for z in range(len(hu)):
        grain = cv2.GaussianBlur(rng.normal(0, 1, hu.shape[1:]).astype(np.float32), (0, 0),
                                 grain_mm / image.GetSpacing()[0])
        noisy[z] += grain * (noise_sd / grain.std())
    doc = _analyze_variant(tmp_path, noisy, image.GetSpacing(), image)
    assert doc["decision"] == expected, (doc["decision"], doc["positive_slices"], doc["decision_reason"])
    if expected == "not assessable":
        assert "too noisy" in doc["decision_reason"] and doc["geometry"]["noise_hu"] > 40
    else:
        assert doc["lesion_volume_ml"]["total"] <= 3.0 and doc["geometry"]["noise_hu"] < 30


def test_copd_thorax_as_png_slices_is_still_too_coarse(tmp_path):
    """The same thorax exported as 8-bit PNG slices (lung window) loses its voxel size; the lungs' span in
    pixels (58 across, where adult lungs span 22 cm or more) still shows the pixels too coarse, and the stack,
    which runs from apex to base, is not turned away for its "mL" at the 1 mm voxels a stack is given."""
    import cv2

    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data_path("real_ct_small", "chest_imaging_platform",
                                                                     "ct-64.nrrd")))).astype(np.float32)
    grey = np.clip((ct + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)  # W1500 / L-600
    stack = tmp_path / "png"
    stack.mkdir()
    for z, image in enumerate(grey):
        assert cv2.imwrite(str(stack / f"{z:03d}.png"), image)
    doc = analyze(stack, tmp_path / "out")
    assert doc["decision"] == "not assessable" and doc["positive_slices"] == 0
    reason = doc["decision_reason"]
    assert "no voxel size" in reason and "pixels across" in reason and "coarse" in reason, reason
    assert not any(row["segmented"] or row["probability"] is not None for row in doc["per_slice"])


def test_copd_thorax_lungs_match_the_reference_mask(tmp_path):
    """A training volume of the lung net (every slice), so this is a consistency check, not a held-out figure."""
    ct = shared_data_path("real_ct_small", "chest_imaging_platform", "ct-64.nrrd")
    analyze(ct, tmp_path)
    reference = labels_on(ct.with_name("wholeLung-64.nrrd"), tmp_path / "lung_mask.nii.gz") > 0
    lung = lung_array(tmp_path)
    assert 2 * (lung & reference).sum() / (lung.sum() + reference.sum()) >= 0.95



def test_consolidated_lower_lobes_of_an_8bit_slice_are_lesion_and_lung(tmp_path):
    """MedSeg tr_im_0023 (both lower lobes consolidated, soft-tissue dense) read as a one-slice 8-bit stack: a lung
    net that never saw a whole consolidated lobe misses the dense lobes, and the lesions were cut to them (Dice 0.28;
    0.44 with the half-inside rule); the 8-bit lung net, trained on such lobes, holds more of them (0.51)."""
    from jcs_viewer.train.images import read_mask

    medseg = shared_data_path("medseg_covid19_ct100_jcs")
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "tr_im_0023.png").write_bytes((medseg / "tr_im" / "tr_im_0023.png").read_bytes())
    doc = analyze(stack, tmp_path / "out")
    arrays = np.load(tmp_path / "out" / "arrays.npz")
    lesion, lung = arrays["lesion_mask"][0] > 0, arrays["lung_mask"][0] > 0
    truth = read_mask(medseg / "tr_mask_new" / "tr_mask_0023.png") > 0
    assert 2 * (lesion & truth).sum() / (lesion.sum() + truth.sum()) >= 0.47
    assert (lesion & lung).sum() == lesion.sum()  # every lesion voxel is in the lungs it involves
    assert doc["involvement_percent"]["total"] <= 100.0


def test_lidc_slices_without_modality_are_read_in_hu_and_not_judged(tmp_path):
    """The lungmask test slices (LIDC, no COVID) carry no Modality. They were read as grey levels (HU numbers
    squeezed into 0..255, where the 8-bit lesion net fired on fat beside the lungs); their values hold air at
    about -1000, so they are CT in HU. Two slices hold about 41 mL of lung: not assessable, and nothing marked as
    lesion lies outside the lungs."""
    doc = analyze(shared_data_path("real_ct_small", "lungmask_slices"), tmp_path)
    assert doc["geometry"]["is_hu"] is True
    assert any("gives no Modality" in m for m in doc["messages"]), doc["messages"]
    assert doc["decision"] == "not assessable" and "mL of lung is in the study" in doc["decision_reason"]
    assert 30.0 <= doc["lung_volume_ml"]["total"] <= 55.0, doc["lung_volume_ml"]
    assert doc["quantification"]["lesion_outside_lungs_ml"] <= 0.5

def test_lidc2_volume_not_hu_is_not_called_covid(tmp_path):
    """LIDC2 is stored in a soft-tissue window (0..255): its lungs are as black as the air around the chest."""
    doc = analyze(shared_data_path("lidc_chest_volume", "LIDC2.mha"), tmp_path)
    assert_lesion_free_verdict(doc)
    assert "clip the inside of the chest to black" in doc["decision_reason"], doc["decision_reason"]
    assert doc["positive_slices"] == 0 and not any(row["segmented"] for row in doc["per_slice"])


def _ny_sbu(plane: str) -> list[Path]:
    root = shared_data_path("covid19_ny_sbu_dicom_slices")
    return sorted(p / plane for p in root.iterdir() if (p / plane).is_dir())


#: NY-SBU patients whose (first) axial slice is an abdominal one: kidneys and bowel, no lung (looked at).
ABDOMINAL_SLICES = {"A027284", "A058062", "A062055"}


def test_ny_sbu_single_axial_slices_are_not_assessable_but_their_lungs_are_found(tmp_path):
    studies = _ny_sbu("axial")
    assert len(studies) >= 8
    for k, study in enumerate(studies):
        doc = analyze(study, tmp_path / str(k))
        assert doc["decision"] == "not assessable"
        assert "single slice" in doc["decision_reason"].lower()
        if study.parent.name in ABDOMINAL_SLICES:
            assert doc["lung_volume_ml"]["total"] == 0 and doc["lesion_volume_ml"]["total"] == 0
        else:
            assert doc["lung_volume_ml"]["total"] > 0, study


@pytest.mark.parametrize("patient, dense_share", [("A046441", 0.4), ("A002304", 0.2)])
def test_ny_sbu_consolidated_lung_is_inside_the_lung_mask(tmp_path, patient, dense_share):
    """Posterior consolidation (soft-tissue density) belongs to the lung: the sickest lung is not cut away."""
    from jcs_viewer.io import load_study

    study = shared_data_path("covid19_ny_sbu_dicom_slices", patient, "axial")
    doc = analyze(study, tmp_path)
    lung = np.load(tmp_path / "arrays.npz")["lung_mask"] > 0
    dense = load_study(study).array > -300
    assert (lung & dense).sum() >= dense_share * lung.sum()
    assert doc["lesion_volume_ml"]["total"] >= 0.4 * doc["lung_volume_ml"]["total"]


@pytest.mark.parametrize("slice_file", ["A056642/axial/19001229-053.dcm", "A098752/axial/19010127-128.dcm"])
def test_ny_sbu_lungs_cut_into_pieces_by_consolidation_are_found_whole(tmp_path, slice_file):
    """Consolidation cuts a diseased lung's air into pieces, and every piece the lung net confirms is lung: when only
    the largest two were kept, A056642 lost its whole left lung (its lesions unread) and a piece of its right lung
    was called the left (left 2,032 pixels against right 14,961), A098752 its right lower lobe (7,067 against
    15,006)."""
    study = tmp_path / "study"
    study.mkdir()
    source = shared_data_path("covid19_ny_sbu_dicom_slices", *slice_file.split("/"))
    (study / source.name).write_bytes(source.read_bytes())
    analyze(study, tmp_path / "out")
    arrays = np.load(tmp_path / "out" / "arrays.npz")
    lung, lesion = arrays["lung_mask"][0], arrays["lesion_mask"][0] > 0
    right, left = lung == 1, lung == 2
    assert min(right.sum(), left.sum()) >= 0.6 * max(right.sum(), left.sum()), (right.sum(), left.sum())
    # Patient right on the image's left (standard axial): no piece of one lung is called the other.
    assert np.flatnonzero(right.any(axis=0)).max() < np.flatnonzero(left.any(axis=0)).min()
    assert (lesion & right).any() and (lesion & left).any()


def test_ny_sbu_consolidated_lobe_with_air_bronchograms_is_lung_and_lesion(tmp_path):
    """A072894's left lower lobe is consolidated around air bronchograms, with a seam of partial-volume air between it
    and the aerated lingula: counted as air it cut the dense lobe off the lung (left lung 3,128 pixels, 52 of them
    lesion; the slice scored 0.52). The effusion behind it stays out."""
    from jcs_viewer.io import load_study

    study = shared_data_path("covid19_ny_sbu_dicom_slices", "A072894", "axial")
    analyze(study, tmp_path)
    arrays = np.load(tmp_path / "arrays.npz")
    left, lesion = arrays["lung_mask"][0] == 2, arrays["lesion_mask"][0] > 0
    dense = load_study(study).array[0] > -300
    assert (left & dense).sum() >= 0.25 * left.sum(), (left.sum(), (left & dense).sum())
    assert (left & lesion).sum() >= 2000
    assert left.sum() <= 0.5 * (arrays["lung_mask"][0] == 1).sum()  # the effusion behind the lobe is not lung


@pytest.mark.parametrize("plane", ["coronal", "sagittal"])
def test_ny_sbu_non_axial_slices_are_not_assessable_and_say_so(tmp_path, plane):
    study = _ny_sbu(plane)[0]
    doc = analyze(study, tmp_path)
    assert doc["decision"] == "not assessable"
    assert plane in doc["decision_reason"] and "axial" in doc["decision_reason"]

