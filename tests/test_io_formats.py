"""NIfTI / MHA / NRRD volumes through SimpleITK, and folders of PNG/JPEG slices."""

from __future__ import annotations

import numpy as np
import pytest

from jcs_viewer.io import load_study

sitk = pytest.importorskip("SimpleITK")


def _marked_volume() -> np.ndarray:
    """HU volume (z, y, x) = (4, 6, 8) where every voxel's value encodes its index."""
    z, y, x = np.mgrid[:4, :6, :8]
    return (-1000 + 100 * z + 10 * y + x).astype(np.int16)


def test_nifti_in_ras_is_reoriented_to_lps(tmp_path):
    data = _marked_volume()
    image = sitk.GetImageFromArray(data)
    image.SetSpacing((0.5, 0.6, 2.0))
    # x index runs to patient right, y to anterior (a typical RAS-stored NIfTI), z to head.
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    image.SetOrigin((10.0, 20.0, -30.0))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    vol = load_study(path)
    assert vol.source_format == "nifti" and vol.is_hu and vol.array.dtype == np.int16
    np.testing.assert_allclose(vol.direction, np.eye(3), atol=1e-6)
    np.testing.assert_array_equal(vol.array, data[:, ::-1, ::-1])
    assert vol.spacing == pytest.approx((2.0, 0.6, 0.5))
    # The voxel that was [0, 0, 0] keeps its LPS position after the flip.
    np.testing.assert_allclose(vol.index_to_lps((0, 5, 7)), (10.0, 20.0, -30.0), atol=1e-4)


def test_nan_voxels_of_a_nifti_take_its_lowest_value_where_they_lie(tmp_path):
    """ITK reads a NIfTI's NaN as 0: ten NaN planes through a chest became a wall of water that cut the lungs
    (1892 mL -> 60 mL). They now take the lowest real value, as a float MHA's do, on the reoriented grid."""
    data = _marked_volume().astype(np.float32)
    data[1:3, 4, :] = np.nan  # a wall of missing values, off the centre so that a flip would show
    image = sitk.GetImageFromArray(data)
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS-stored: loading flips x and y
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    vol = load_study(path)
    expected = np.where(np.isnan(data), np.nanmin(data), data)[:, ::-1, ::-1].astype(np.int16)
    np.testing.assert_array_equal(vol.array, expected)
    (note,) = [w for w in vol.warnings if "NaN" in w]
    assert "has 16 NaN or infinite voxels; they were set to -1000, its lowest value" in note


def test_mha_float_is_rounded_to_int16(tmp_path):
    data = _marked_volume().astype(np.float32) + 0.4
    path = tmp_path / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(data), str(path))
    vol = load_study(path)
    assert vol.source_format == "mha" and vol.is_hu
    np.testing.assert_array_equal(vol.array, _marked_volume())


def test_nrrd_uint8_is_not_hu(tmp_path):
    data = np.arange(4 * 6 * 8, dtype=np.uint8).reshape(4, 6, 8)
    path = tmp_path / "scan.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(data), str(path))
    vol = load_study(path)
    assert vol.source_format == "nrrd" and not vol.is_hu
    np.testing.assert_array_equal(vol.array, data.astype(np.int16))
    assert any("Hounsfield" in w for w in vol.warnings)


def test_png_folder_in_natural_order(tmp_path):
    for index in (1, 2, 10):
        sitk.WriteImage(sitk.GetImageFromArray(np.full((6, 5), index * 20, np.uint8)), str(tmp_path / f"s{index}.png"))
    rgb = np.zeros((6, 5, 3), np.uint8)
    rgb[...] = 90
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "s3.png"))
    vol = load_study(tmp_path)
    assert vol.source_format == "images" and not vol.is_hu
    assert [p.name for p in vol.source_files] == ["s1.png", "s2.png", "s3.png", "s10.png"]
    assert vol.array[:, 0, 0].tolist() == [20, 40, 90, 200]
    assert vol.shape == (4, 6, 5)


@pytest.mark.parametrize("pixdim_z", [0.0, float("nan"), 2.5])
def test_a_nifti_without_slice_spacing_has_no_voxel_size(tmp_path, pixdim_z):
    """ITK reads a pixdim of 0 (no qform, no sform) as 1 mm without a word: the lungs were then measured in mL
    that are not the patient's. Now the volume says the size is assumed, and a note names the axis."""
    import struct

    path = tmp_path / "ct.nii"
    image = sitk.GetImageFromArray(_marked_volume())
    image.SetSpacing((0.8, 0.8, 2.5))
    sitk.WriteImage(image, str(path))
    data = bytearray(path.read_bytes())
    data[88:92] = struct.pack("<f", pixdim_z)  # pixdim[3]
    data[252:256] = struct.pack("<hh", 0, 0)  # qform_code, sform_code: no other source of the size
    path.write_bytes(bytes(data))
    volume = load_study(path)
    notes = [w for w in volume.warnings if "no voxel size along z" in w]
    if pixdim_z == 2.5:
        assert volume.has_voxel_size and not notes and volume.spacing[0] == pytest.approx(2.5)
    else:
        assert not volume.has_voxel_size and len(notes) == 1 and volume.spacing[0] == pytest.approx(1.0)
        assert volume.spacing[1:] == pytest.approx((0.8, 0.8))


def test_16_bit_png_slices_read_as_the_grey_levels_they_hold(tmp_path):
    """The nets read non-HU slices as 0..255: 16-bit slices once saturated at 255 (lungs and chest wall one
    white) or were clipped above 32767. The same slices saved at 8 bits and scaled by 257 now read alike, and a
    stack of HU + 1024 keeps its contrast."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (3, 12, 10)).astype(np.uint8)
    grey.flat[:2] = (0, 255)
    stacks = {"8-bit": grey, "x257": grey.astype(np.uint16) * 257,
              "hu+1024": (grey.astype(np.uint16) * 8 + 80)}  # 80..2120, as HU -944..1096 stored plainly
    loaded = {}
    for name, data in stacks.items():
        (tmp_path / name).mkdir()
        for z, image in enumerate(data):
            sitk.WriteImage(sitk.GetImageFromArray(image), str(tmp_path / name / f"{z}.png"))
        loaded[name] = load_study(tmp_path / name)
    np.testing.assert_array_equal(loaded["8-bit"].array, grey)
    np.testing.assert_array_equal(loaded["x257"].array, grey)
    scaled = loaded["hu+1024"].array
    assert scaled.max() == 255 and np.unique(scaled).size >= 0.9 * np.unique(grey).size  # contrast kept
    order = np.argsort(grey, axis=None)
    assert np.all(np.diff(scaled.ravel()[order].astype(int)) >= 0)  # one linear map: the order of values kept
    assert any("80..2120" in w and "scaled linearly" in w for w in loaded["hu+1024"].warnings)
    assert not any("scaled" in w for w in loaded["8-bit"].warnings)


def test_a_huge_image_is_refused_before_it_is_decoded(tmp_path):
    """A 30000-pixel PNG (a decompression bomb) hung the load; its header alone now says it is no CT slice."""
    from jcs_viewer.errors import StudyLoadError

    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 5000), np.uint8)), str(tmp_path / "wide.png"))
    with pytest.raises(StudyLoadError, match=r"wide\.png is 5000x2 pixels: CT slices are at most 4096"):
        load_study(tmp_path)


def test_colour_images_are_read_as_grey_and_said_to_be_in_colour(tmp_path):
    grey = np.full((6, 5, 3), 90, np.uint8)  # grey saved as RGB: not "in colour"
    marked = grey.copy()
    marked[2, 2] = (255, 0, 0)  # a red arrow's tip
    for name, image in (("s1.png", grey), ("s2.png", marked)):
        sitk.WriteImage(sitk.GetImageFromArray(image, isVector=True), str(tmp_path / name))
    vol = load_study(tmp_path)
    assert vol.array[1, 2, 2] == round(0.299 * 255) and vol.array[0, 2, 2] == 90
    (note,) = [w for w in vol.warnings if "in colour" in w]
    assert note.startswith("1 image in colour (s2.png)")


def test_jpeg_folder_loads(tmp_path):
    for index in range(3):
        sitk.WriteImage(sitk.GetImageFromArray(np.full((8, 8), 50 * index, np.uint8)), str(tmp_path / f"{index}.jpg"))
    vol = load_study(tmp_path)
    assert vol.n_slices == 3 and not vol.is_hu
    assert abs(int(vol.array[2].mean()) - 100) <= 2  # JPEG is lossy
