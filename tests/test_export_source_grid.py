"""Exported masks lie on the source file's own voxel grid (same size, order, spacing, origin, direction).

Internally every volume is (z, y, x) in LPS; a NIfTI/MHA/NRRD stored in another orientation is
permuted/flipped on loading and turned back on export, so a researcher who loads image and mask with
nibabel or numpy compares the same voxels by index.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import shared_data_path
from jcs_viewer.io import load_study
from jcs_viewer.io.export import export_nifti

#: direction matrices (row-major, columns = the x, y, z index axes in LPS)
DIRECTIONS = {
    "identity": (1, 0, 0, 0, 1, 0, 0, 0, 1),
    "flipped-xy (RAS)": (-1, 0, 0, 0, -1, 0, 0, 0, 1),
    "flipped-z": (1, 0, 0, 0, 1, 0, 0, 0, -1),
    "permuted (coronal)": (1, 0, 0, 0, 0, 1, 0, -1, 0),
    "permuted and flipped": (0, -1, 0, -1, 0, 0, 0, 0, -1),
}


def _source(tmp_path, suffix: str, direction) -> tuple[sitk.Image, str]:
    rng = np.random.default_rng(7)
    array = rng.integers(-1000, 400, size=(9, 11, 13)).astype(np.int16)  # (z, y, x) of the file, all sizes differ
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((12.5, -40.0, 101.0))
    image.SetDirection(tuple(float(v) for v in direction))
    path = tmp_path / f"source{suffix}"
    sitk.WriteImage(image, str(path))
    return image, str(path)


def _assert_same_grid(source: sitk.Image, written: sitk.Image) -> None:
    assert written.GetSize() == source.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_mask_header_and_voxels_match_the_source(tmp_path, suffix, name):
    source, path = _source(tmp_path, suffix, DIRECTIONS[name])
    volume = load_study(path)
    assert volume.direction[2, 2] > 0 or name == "permuted (coronal)"  # the internal grid is LPS-like
    mask = (volume.array > 0).astype(np.uint8)  # a mask defined by the image's own values
    out = export_nifti(mask, volume, tmp_path / "mask.nii.gz")
    written = sitk.ReadImage(str(out))
    _assert_same_grid(source, written)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source) > 0)


def test_nibabel_sees_image_and_mask_aligned_by_index(tmp_path):
    nib = pytest.importorskip("nibabel")
    _, path = _source(tmp_path, ".nii.gz", DIRECTIONS["flipped-xy (RAS)"])
    volume = load_study(path)
    out = export_nifti((volume.array > 0).astype(np.uint8), volume, tmp_path / "mask.nii.gz")
    image, mask = nib.load(path), nib.load(str(out))
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-4)
    assert np.array_equal(np.asarray(mask.dataobj) > 0, np.asarray(image.dataobj) > 0)


def test_totalsegmentator_lung_mask_is_on_its_ct_grid(tmp_path):
    """The real file of the report: direction diag(-1, -1, 1); the lung mask must not come back mirrored."""
    nib = pytest.importorskip("nibabel")
    from jcs_viewer.cli import main

    ct = shared_data_path("real_ct_small", "totalsegmentator", "example_ct_sm.nii.gz")
    assert main(["analyze", str(ct), "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 0
    source = sitk.ReadImage(str(ct))
    for name in ("lung_mask.nii.gz", "lesion_mask.nii.gz"):
        _assert_same_grid(source, sitk.ReadImage(str(tmp_path / name)))
    lung = np.asarray(nib.load(str(tmp_path / "lung_mask.nii.gz")).dataobj) > 0
    labels = np.asarray(nib.load(str(ct.with_name("example_seg.nii.gz"))).dataobj)
    # By index, the lung mask sits on the labelled lung lobes (10-14), not on the liver (5).
    assert (lung & np.isin(labels, [10, 11, 12, 13, 14])).sum() > 0.8 * lung.sum()
    assert (lung & (labels == 5)).sum() < 0.01 * lung.sum()


def test_no_dicom_seg_for_a_series_read_as_axial_slices():
    """A coronal DICOM series read as axial slices: its SEG frames could not follow the source slices."""
    from jcs_viewer.io.export import dicom_seg_unavailable
    from jcs_viewer.io.reorient import MIN_REFORMAT_SLICES, as_axial
    from jcs_viewer.io.volume import Volume

    coronal = Volume(np.zeros((MIN_REFORMAT_SLICES, 20, 30), np.int16), (3.0, 0.8, 0.8),
                     direction=np.array(DIRECTIONS["permuted (coronal)"], float).reshape(3, 3),
                     source_files=tuple(f"IM{k}.dcm" for k in range(MIN_REFORMAT_SLICES)))
    assert dicom_seg_unavailable(coronal) is None
    reason = dicom_seg_unavailable(as_axial(coronal))
    assert reason is not None and "read as axial slices" in reason
