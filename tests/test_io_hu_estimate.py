"""HU estimated back from a chest CT exported without them (``jcs_viewer.io.hu_estimate``).

An 8-bit export of a lesion-free real chest (the TotalSeg crop through a lung window) was read as grey levels by
the 8-bit nets, which were validated on CLAHE and MedSeg slices only: positive, 28.1 mL (window -1000..200) and
70.9 mL (-1024..1016). Read back into HU it takes the HU path, validated on real anatomy. The real-data tests skip
when ``../shared/data`` is absent; the phantom's run everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import shared_data_path
from helpers_dicom import write_slice
from jcs_viewer.cli import main
from jcs_viewer.io import load_study
from jcs_viewer.io.hu_estimate import HuEstimate, estimate_hu
from jcs_viewer.io.phantom import make_phantom

#: lung windows of exports met in the wild (low, high HU), 8-bit
LUNG_WINDOWS = [(-1000, 200), (-1024, 1016), (-1350, 150), (-1200, 600)]
#: lung parenchyma, ground glass, fat, soft tissue
PROBES_HU = np.array([-850.0, -500.0, -110.0, 40.0])


def windowed(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip(np.rint((hu.astype(np.float32) - low) / (high - low) * 255), 0, 255).astype(np.uint8)


def errors_hu(estimate: HuEstimate, low: float, high: float) -> np.ndarray:
    """Estimated minus true HU at the probes, read from the grey levels the window gave them."""
    grey = (PROBES_HU - low) / (high - low) * 255
    return estimate.slope * grey + estimate.intercept - PROBES_HU


@pytest.fixture(scope="module")
def phantom_hu() -> np.ndarray:
    return make_phantom(n_slices=24, size=256, seed=3).to_volume().array


@pytest.mark.parametrize("low, high", LUNG_WINDOWS)
def test_the_window_of_an_8bit_export_of_the_phantom_is_found(phantom_hu, low, high):
    estimate = estimate_hu(windowed(phantom_hu, low, high).astype(np.int16))
    assert estimate is not None
    assert np.abs(errors_hu(estimate, low, high)).max() <= 25, errors_hu(estimate, low, high)


def test_an_offset_without_rescale_is_undone(phantom_hu):
    estimate = estimate_hu((phantom_hu.astype(np.int32) + 1024).astype(np.int16))
    assert estimate is not None and abs(estimate.slope - 1) < 0.03
    assert np.abs(estimate.slope * (PROBES_HU + 1024) + estimate.intercept - PROBES_HU).max() <= 25


def test_values_shifted_below_hu_are_not_taken_for_hu(phantom_hu, tmp_path):
    """A CT stored minus an offset (air at -4424) passed the HU test (its low end is below -500): no lung was found,
    with no word about the values. Air must also sit near -1000; the values are read back instead."""
    from jcs_viewer.io.grey_levels import looks_like_hu

    shifted = (phantom_hu.astype(np.int32) - 3400).astype(np.int16)
    assert looks_like_hu(phantom_hu) and not looks_like_hu(shifted)
    sitk.WriteImage(sitk.GetImageFromArray(shifted), str(tmp_path / "shifted.nii.gz"))
    volume = load_study(tmp_path / "shifted.nii.gz")
    assert volume.hu_estimated
    body = (phantom_hu > -500) & (phantom_hu < 1000)
    assert np.abs(volume.array[body].astype(int) - phantom_hu[body]).mean() < 30


def test_what_shows_no_fat_and_soft_tissue_gets_no_estimate(phantom_hu):
    """A soft-tissue window (the lungs one black with the air), noise and one broad hump are left as they are."""
    assert estimate_hu(windowed(phantom_hu, -160, 240).astype(np.int16)) is None
    rng = np.random.default_rng(0)
    assert estimate_hu(rng.integers(0, 256, (8, 64, 64)).astype(np.int16)) is None
    hump = np.clip(rng.normal(120, 30, (8, 64, 64)), 0, 255).astype(np.int16)
    assert estimate_hu(hump) is None
    assert estimate_hu(rng.integers(0, 256, (1, 1, 512)).astype(np.int16)) is None  # too few voxels for peaks


def test_a_ct_series_stored_without_its_intercept_is_read_in_estimated_hu(phantom_hu, tmp_path):
    """Values stored with the scanner's 1024 offset and RescaleIntercept 0: the lungs sat at -850 + 1024."""
    for z in range(0, 24, 2):
        write_slice(tmp_path / f"IM{z:03d}.dcm", phantom_hu[z].astype(np.int32) + 1024, position=(0.0, 0.0, 2.0 * z),
                    series_uid="1.2.826.0.1.3680043.8.498.77", instance=z + 1, intercept=0.0, thickness=2.0)
    volume = load_study(tmp_path)
    assert volume.is_hu and volume.hu_estimated
    assert np.abs(volume.array.astype(int) - phantom_hu[::2]).mean() < 30  # air is anchored at -1000, not -1024
    assert any("not Hounsfield units" in w and "mapped back" in w for w in volume.warnings), volume.warnings


@pytest.mark.parametrize("curve", ["window -600..600", "window -350..450", "window -1000..-200", "gamma 2"])
def test_a_volume_file_whose_window_cannot_be_found_is_not_assessable(phantom_hu, tmp_path, curve):
    """Read as grey levels, such exports of a lesion-free real chest were called positive with 36-95 mL (a fuzz run
    on the TotalSeg crop): the 8-bit nets were validated on PNG slices only. A volume file whose values are not HU
    and show no lung window to read back is not assessable, and no model runs on it."""
    if curve.startswith("window"):
        low, high = (float(v) for v in curve.split()[1].replace("..-", " -").replace("..", " ").split())
        grey = windowed(phantom_hu, low, high)
    else:
        grey = np.rint(255 * np.clip((phantom_hu + 1350.0) / 1500, 0, 1) ** 2).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(grey), str(tmp_path / "export.nii.gz"))
    doc = _analyze(tmp_path / "export.nii.gz", tmp_path / "out")
    assert doc["decision"] == "not assessable" and doc["geometry"]["is_hu"] is False
    # The phantom's whole chest shows how much of it a clipping window blackens; a curve is named as such.
    says = "clip the inside of the chest to black" if curve.startswith("window") else "no lung window could be found"
    assert says in doc["decision_reason"], doc["decision_reason"]
    assert doc["positive_slices"] == 0 and not any(row["segmented"] for row in doc["per_slice"])


def test_a_ct_series_without_air_or_a_window_asks_for_its_intercept(phantom_hu, tmp_path):
    """A series that says CT but holds no air and no window to read back: not assessable, and the sentence names the
    likeliest cause."""
    from jcs_viewer.pipeline.assess import unreadable_reason

    curved = np.rint(4095 * np.clip((phantom_hu + 1350.0) / 1500, 0, 1) ** 2).astype(np.int32)
    for z in range(0, 24, 2):
        write_slice(tmp_path / f"IM{z:03d}.dcm", curved[z], position=(0.0, 0.0, 2.0 * z),
                    series_uid="1.2.826.0.1.3680043.8.498.78", instance=z + 1, intercept=0.0, thickness=2.0)
    volume = load_study(tmp_path)
    assert not volume.hu_estimated
    assert "(is its RescaleIntercept missing?)" in unreadable_reason(volume)


@pytest.mark.parametrize("stored", ["float 0..1", "uint16 x 257"])
def test_normalised_or_16_bit_scaled_exports_are_read_back(phantom_hu, tmp_path, stored):
    """A float export normalised to 0..1 was rounded to the values 0 and 1; 8 bits stored x 257 in uint16 were
    clipped at 32767: both erased the image. Scaled linearly instead, their window is found."""
    grey = windowed(phantom_hu, -1350, 150)
    data = grey.astype(np.float32) / 255 if stored == "float 0..1" else grey.astype(np.uint16) * 257
    sitk.WriteImage(sitk.GetImageFromArray(data), str(tmp_path / "export.nii.gz"))
    volume = load_study(tmp_path / "export.nii.gz")
    assert volume.is_hu and volume.hu_estimated, volume.warnings
    said = "fractional values" if stored == "float 0..1" else "scaled linearly to 0..32767"
    assert any(said in w for w in volume.warnings), volume.warnings
    body = (phantom_hu > -500) & (phantom_hu < 150)  # inside the window: bone is clipped at 150
    assert np.abs(volume.array[body].astype(int) - phantom_hu[body]).mean() < 30


def test_a_monochrome1_export_is_turned_over_before_its_window_is_found(phantom_hu, tmp_path):
    """MONOCHROME1 shows the lowest value white: an 8-bit export stored so had air as its brightest value."""
    import pydicom

    grey = 255 - windowed(phantom_hu, -1350, 150).astype(np.int32)
    for z in range(0, 24, 2):
        path = write_slice(tmp_path / f"IM{z:03d}.dcm", grey[z], position=(0.0, 0.0, 2.0 * z),
                           series_uid="1.2.826.0.1.3680043.8.498.79", instance=z + 1, intercept=0.0, thickness=2.0)
        ds = pydicom.dcmread(path)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.save_as(path)
    volume = load_study(tmp_path)
    assert volume.hu_estimated and any("MONOCHROME1" in w for w in volume.warnings), volume.warnings
    body = (phantom_hu[::2] > -500) & (phantom_hu[::2] < 150)
    assert np.abs(volume.array[body].astype(int) - phantom_hu[::2][body]).mean() < 30


def test_png_stacks_of_a_lung_window_are_read_in_estimated_hu(phantom_hu, tmp_path):
    """A chest exported slice by slice through a lung window reads as the same export in one volume file."""
    from PIL import Image

    for z, image in enumerate(windowed(phantom_hu[8:14], -1000, 200)):
        Image.fromarray(image).save(tmp_path / f"s{z}.png")
    volume = load_study(tmp_path)
    assert volume.is_hu and volume.hu_estimated
    body = (phantom_hu[8:14] > -500) & (phantom_hu[8:14] < 150)
    assert np.abs(volume.array[body].astype(int) - phantom_hu[8:14][body]).mean() < 30
    assert any("mapped back to HU" in w for w in volume.warnings), volume.warnings
    assert not any("not HU" in w for w in volume.warnings), volume.warnings  # said before the window was found


def test_stacks_of_two_images_or_without_a_window_stay_grey_levels(phantom_hu, tmp_path):
    """CLAHE and MedSeg slices, read alone, are what the 8-bit nets were validated on; one or two images may show a
    "window" of noise (a CT-Seg CLAHE slice read alone: 25 of 145)."""
    from PIL import Image

    for z, image in enumerate(windowed(phantom_hu[8:10], -1000, 200)):
        Image.fromarray(image).save(tmp_path / f"s{z}.png")
    volume = load_study(tmp_path)
    assert not volume.is_hu and not volume.hu_estimated
    noise = np.random.default_rng(0).integers(0, 256, (4, 128, 128), dtype=np.uint8)
    for z, image in enumerate(noise):
        Image.fromarray(image).save(tmp_path / f"s{z}.png")
    assert not load_study(tmp_path).is_hu


# --- real CT (skips without ../shared/data) -------------------------------------------------------------------

REAL_HU = {
    "chest crop": ("real_ct_small", "totalsegmentator", "chest_crop", "ct_cropped.nii.gz"),
    "COPD thorax": ("real_ct_small", "chest_imaging_platform", "ct-64.nrrd"),
    "LIDC slices": ("real_ct_small", "lungmask_slices"),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", REAL_HU)
def test_the_window_of_8bit_exports_of_real_chests_is_found(name):
    hu = load_study(shared_data_path(*REAL_HU[name])).array
    for low, high in LUNG_WINDOWS:
        estimate = estimate_hu(windowed(hu, low, high).astype(np.int16))
        assert estimate is not None, (low, high)
        assert np.abs(errors_hu(estimate, low, high)[:2]).max() <= 35, (low, high, errors_hu(estimate, low, high))


@pytest.mark.shared_data
def test_ctseg_clahe_stacks_show_no_lung_window():
    """The eleven CT-Seg volume groups, read as the stacks ``evaluate stacks`` reads: CLAHE is not a linear window,
    so none is read in estimated HU (and the lesion figures of the 8-bit nets stay as measured)."""
    import cv2

    from jcs_viewer.train.splits import ctseg_group

    files = sorted(shared_data_path("covid19_ct_seg20_slices", "ct").glob("*.png"))
    groups: dict[int, list[Path]] = {}
    for path in files:
        groups.setdefault(ctseg_group(int(path.stem[:4])), []).append(path)
    assert len(groups) == 11
    for group, paths in groups.items():
        stack = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]).astype(np.int16)
        assert estimate_hu(stack) is None, group


@pytest.mark.shared_data
@pytest.mark.usefixtures("pixel_size_rule")
def test_a_png_stack_of_a_lesion_free_chest_is_read_in_hu_and_marks_almost_nothing(tmp_path):
    """The chest crop as 8-bit PNG slices through W1500/L-600: read as grey levels, 15 slices were positive (over
    the threshold of 9) with 15.3 mL marked at the 1 mm voxels assumed (a gate on the window's densities alone still
    left 8 and 10.9 mL); in estimated HU none and 0.1 mL."""
    from PIL import Image

    source = shared_data_path("real_ct_small", "totalsegmentator", "chest_crop", "ct_cropped.nii.gz")
    grey = windowed(sitk.GetArrayFromImage(sitk.ReadImage(str(source))), -1350, 150)
    (tmp_path / "png").mkdir()
    for z, image in enumerate(grey[::-1]):
        Image.fromarray(image).save(tmp_path / "png" / f"slice_{z:03d}.png")
    doc = _analyze(tmp_path / "png", tmp_path / "out")
    assert doc["geometry"]["hu_estimated"] is True
    assert doc["positive_slices"] <= 2, (doc["positive_slices"], doc["threshold"])
    assert doc["lesion_volume_ml"]["total"] <= 2.0, doc["lesion_volume_ml"]


@pytest.mark.shared_data
@pytest.mark.parametrize("parts", [("real_ct_small", "chest_imaging_platform", "ct-64.nrrd"),
                                   ("real_ct_small", "totalsegmentator", "example_ct_sm.nii.gz"),
                                   ("ct_3slice_dcmqi",)], ids=["COPD thorax", "lung bases", "dcmqi slices"])
def test_a_window_whose_floor_clips_aerated_lung_is_not_read_back(parts):
    """Through -900..300 HU the lung's commonest value is the floor: read with air there, -850 HU came back 95 to
    110 HU too low ("within about 50 HU", the note said). Such an export gets no window; the lung windows do."""
    hu = load_study(shared_data_path(*parts)).array
    assert estimate_hu(windowed(hu, -900, 300).astype(np.int16)) is None
    assert estimate_hu(windowed(hu, -1000, 200).astype(np.int16)) is not None


def _export(tmp_path: Path, low: float, high: float) -> Path:
    source = shared_data_path("real_ct_small", "totalsegmentator", "chest_crop", "ct_cropped.nii.gz")
    image = sitk.ReadImage(str(source))
    grey = sitk.GetImageFromArray(windowed(sitk.GetArrayFromImage(image), low, high))
    grey.CopyInformation(image)
    path = tmp_path / f"chest_{low}_{high}.nii.gz"
    sitk.WriteImage(grey, str(path))
    return path


def _analyze(path: Path, out: Path) -> dict:
    assert main(["analyze", str(path), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.shared_data
@pytest.mark.usefixtures("pixel_size_rule")
@pytest.mark.parametrize("low, high", [(-1000, 200), (-1024, 1016)])
def test_an_8bit_export_of_a_lesion_free_chest_is_read_in_hu_and_called_negative(tmp_path, low, high):
    """Read in HU the crop is negative with 1.9 mL and 1892 mL of lung; as grey levels these exports were positive
    with 28.1 and 70.9 mL."""
    doc = _analyze(_export(tmp_path, low, high), tmp_path / "out")
    assert doc["geometry"]["is_hu"] is True and doc["geometry"]["hu_estimated"] is True
    assert any("mapped back to HU" in m for m in doc["messages"]), doc["messages"]
    assert doc["decision"] == "negative", doc["decision_reason"]
    assert doc["lesion_volume_ml"]["total"] <= 5.0
    assert 1800 <= doc["lung_volume_ml"]["total"] <= 2000


@pytest.mark.shared_data
@pytest.mark.usefixtures("pixel_size_rule")
def test_a_soft_tissue_window_of_a_real_chest_is_not_assessable(tmp_path):
    """Through W400/L40 the crop's lungs are as black as air: it was read positive with 90.8 mL of "lesion"."""
    doc = _analyze(_export(tmp_path, -160, 240), tmp_path / "out")
    assert doc["decision"] == "not assessable", doc["decision"]
    assert "soft-tissue window" in doc["decision_reason"], doc["decision_reason"]
    assert doc["positive_slices"] == 0


@pytest.mark.shared_data
@pytest.mark.usefixtures("pixel_size_rule")
def test_an_inverted_export_without_monochrome1_is_not_assessable_and_the_sentence_names_inversion(tmp_path):
    """255 - g of a lung window in a NIfTI (which has no MONOCHROME1) finds no lung; the reason named only a
    soft-tissue window, which it is not."""
    path = _export(tmp_path, -1350, 150)
    image = sitk.ReadImage(str(path))
    inverted = sitk.GetImageFromArray((255 - sitk.GetArrayFromImage(image)).astype(np.uint8))
    inverted.CopyInformation(image)
    sitk.WriteImage(inverted, str(path))
    doc = _analyze(path, tmp_path / "out")
    assert doc["decision"] == "not assessable", doc["decision"]
    assert "inverted grey scale" in doc["decision_reason"], doc["decision_reason"]
    assert doc["positive_slices"] == 0


@pytest.mark.shared_data
@pytest.mark.parametrize("slice_id", ["0016", "0017", "0062", "0063"])
def test_medseg_slices_framed_in_black_or_cropped_get_the_lung_window_or_none(slice_id):
    """MedSeg's web images are lung-window slices (fat and soft tissue at about 212 and 238 of 255, as W1500/L-600
    puts them). 0062 and 0063 sit in a black frame, which was taken for air (a window from -1000 HU: lungs read about
    200 HU too dense); 0016 and 0017 are cropped inside the body, and their lung's peak was taken for air (from
    -1600 HU). A frame is not air, nor is anything inside the body: the window comes out near -1350..150 or not
    at all."""
    from PIL import Image

    image = np.array(Image.open(shared_data_path("medseg_covid19_ct100_jcs", "tr_im", f"tr_im_{slice_id}.png")))
    estimate = estimate_hu(image[None].astype(np.int16))
    if estimate is not None:
        low, high = estimate.window(0, 255)
        assert -1400 <= low <= -1250 and 100 <= high <= 170, (low, high)


@pytest.mark.shared_data
def test_the_window_check_prints_a_row_per_volume_and_export(capsys):
    from jcs_viewer.train import hu_windows

    assert hu_windows.main(["--data", str(shared_data_path())]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == len(hu_windows.VOLUMES) * (len(hu_windows.WINDOWS) + 2), rows
    crop_lung_windows = [r for r in rows if r.startswith("TotalSeg chest crop") and "8-bit -1" in r
                         and "-160" not in r]
    assert len(crop_lung_windows) == 8
    for row in crop_lung_windows:  # -850 and -500 HU within 35 HU on every lung window
        assert all(abs(float(e)) <= 35 for e in row.split(maxsplit=5)[-1].split(" / ")[:2]), row


@pytest.mark.shared_data
@pytest.mark.usefixtures("pixel_size_rule")
@pytest.mark.parametrize("low, high", [(-350, 450), (-600, 600), (-1000, -200)])
def test_an_export_of_a_real_chest_with_no_window_to_read_back_is_not_assessable(tmp_path, low, high):
    """The cropped chest hides how much of it these windows blacken (its clipped share stays under the bound): read
    as grey levels, they were called positive with 85, 95 and 87 mL (fuzz run of stop 48)."""
    doc = _analyze(_export(tmp_path, low, high), tmp_path / "out")
    assert doc["decision"] == "not assessable", doc["decision"]
    assert "no lung window could be found in them" in doc["decision_reason"], doc["decision_reason"]
    assert doc["positive_slices"] == 0
