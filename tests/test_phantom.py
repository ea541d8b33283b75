"""The synthetic chest CT phantom, its DICOM/NIfTI writers and ``jcs-viewer demo``."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jcs_viewer.io.dicom_writer import derive_uid, write_dicom_series, write_mask_nifti
from jcs_viewer.io.phantom import (
    CHEST_CENTRE_Z_MM,
    CHEST_HALF_EXTENT_MM,
    LESION_HU_RANGES,
    LESION_LABELS,
    default_spacing,
    demo_study_path,
    make_phantom,
    write_demo_study,
)

SMALL = dict(n_slices=24, size=128)


@pytest.fixture(scope="module")
def clean():
    """Noise-free small phantom: tissue values are exact."""
    return make_phantom(**SMALL, seed=1, noise_sigma=0)


@pytest.fixture(scope="module")
def noisy_pair():
    return make_phantom(**SMALL, seed=2), make_phantom(**SMALL, seed=2, lesions=False)


def _tree_hashes(root: Path) -> dict[str, str]:
    files = (p for p in sorted(root.rglob("*")) if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# ----------------------------------------------------------------------------------------------
# Generator


def test_same_seed_same_phantom_other_seed_differs():
    a, b, c = (make_phantom(**SMALL, seed=s) for s in (5, 5, 6))
    assert np.array_equal(a.hu, b.hu)
    assert np.array_equal(a.lesion_mask, b.lesion_mask) and np.array_equal(a.lung_mask, b.lung_mask)
    assert a.lesions == b.lesions
    assert not np.array_equal(a.hu, c.hu)
    assert not np.array_equal(a.lesion_mask, c.lesion_mask)
    assert [s.centre_mm for s in a.lesions] != [s.centre_mm for s in c.lesions]


def test_types_and_geometry(clean):
    assert clean.hu.dtype == np.int16 and clean.hu.shape == (24, 128, 128)
    assert clean.lesion_mask.dtype == np.uint8 and clean.lung_mask.dtype == np.uint8
    assert clean.spacing == pytest.approx(default_spacing(24, 128))
    assert np.array_equal(clean.direction, np.eye(3))
    volume = clean.to_volume()
    assert volume.shape == clean.hu.shape and volume.is_hu


def test_tissue_hu_values(clean):
    hu, lung = clean.hu, clean.lung_mask
    mid = hu.shape[0] // 2 + 2
    assert hu[:, 0, 0].tolist() == [-1000] * hu.shape[0]  # air outside the body
    # From the image's left edge inwards along the body's mid row: air, fat, then muscle.
    row = hu[mid, int(np.argmax((lung[mid] > 0).any(axis=1))) + 20]
    first = int(np.argmax(row > -500))
    assert -120 <= row[first] <= -80  # subcutaneous fat
    assert np.any((row[first : first + 40] >= 30) & (row[first : first + 40] <= 50))  # muscle
    # Bone (ribs, spine) +250..+1000; the spine lies on the midline behind the lungs.
    bone = hu[mid] >= 200
    assert bone.any() and hu.max() <= 1000 and hu.min() >= -1000
    centre = hu.shape[2] / 2
    bone_y, bone_x = np.nonzero(bone)
    lung_y = np.nonzero(lung[mid])[0]
    assert np.any((np.abs(bone_x - centre) < 3) & (bone_y > np.median(lung_y)))
    assert not np.any((hu >= 200) & (lung > 0))  # no bone inside the lung mask
    # Lung parenchyma away from vessels and lesions: -900..-800.
    parenchyma = hu[(lung > 0) & (clean.lesion_mask == 0)]
    assert -880 <= np.median(parenchyma) <= -820
    assert np.percentile(parenchyma, 5) >= -900
    # Some vessels at soft-tissue density inside the lungs.
    assert np.count_nonzero(parenchyma > -200) > 0
    # Heart level (t = -0.3): between the lungs lies the heart (+40) in mediastinal fat (-90).
    z_mm = clean.origin[2] + clean.spacing[0] * np.arange(hu.shape[0])
    k = int(np.argmin(np.abs((z_mm - CHEST_CENTRE_Z_MM) / CHEST_HALF_EXTENT_MM + 0.3)))
    ys = np.nonzero(lung[k])[0]
    y = int(np.median(ys))
    right_edge = np.nonzero(lung[k, y] == 1)[0].max()
    left_edge = np.nonzero(lung[k, y] == 2)[0].min()
    between = hu[k, y, right_edge + 1 : left_edge]
    assert between.size > 10
    assert 30 <= np.median(between) <= 60 and between.min() >= -110


def test_right_lung_is_image_left_and_sizes_taper(clean):
    z, y, x = np.nonzero(clean.lung_mask == 1)
    _, _, x_left = np.nonzero(clean.lung_mask == 2)
    assert x.mean() < clean.hu.shape[2] / 2 < x_left.mean()
    area = (clean.lung_mask > 0).sum(axis=(1, 2))
    top, widest = np.flatnonzero(area)[-1], int(np.argmax(area))
    assert area[top] < 0.5 * area[widest]  # apex smaller than the widest slice
    lung_ml = np.count_nonzero(clean.lung_mask) * clean.voxel_volume_ml
    assert 3000 < lung_ml < 7500  # adult lungs


def test_lesions_inside_lung_with_kind_hu_ranges(clean):
    mask, hu = clean.lesion_mask, clean.hu
    assert mask.any()
    assert not np.any((mask > 0) & (clean.lung_mask == 0))
    for kind, label in LESION_LABELS.items():
        values = hu[mask == label]
        low, high = LESION_HU_RANGES[kind]
        assert values.size > 0, kind
        assert values.min() >= low and values.max() <= high, kind
    kinds = {s.kind for s in clean.lesions}
    assert kinds == {"ground_glass", "consolidation"}
    assert {s.lung for s in clean.lesions} == {"right", "left"}
    assert {s.zone for s in clean.lesions} == {"upper", "middle", "lower"}
    assert sum(s.n_voxels for s in clean.lesions) == np.count_nonzero(mask)


def test_lesion_mask_is_exactly_the_changed_voxels(noisy_pair):
    with_lesions, without = noisy_pair
    assert not without.lesion_mask.any() and without.lesions == []
    assert np.array_equal(with_lesions.lung_mask, without.lung_mask)
    changed = with_lesions.hu != without.hu
    assert np.array_equal(changed, with_lesions.lesion_mask > 0)


def test_noise_level(noisy_pair):
    phantom = noisy_pair[1]
    air = phantom.hu[:, :8, :8].astype(float)
    assert 12 <= air.std() <= 22  # sigma ~ 15-20 HU like a CT


def test_default_size_phantom():
    phantom = make_phantom()
    assert phantom.hu.shape == (128, 512, 512)
    assert phantom.spacing == pytest.approx((2.5, 0.7, 0.7))
    assert len(phantom.lesions) >= 6
    assert np.count_nonzero(phantom.lesion_mask) * phantom.voxel_volume_ml > 20


# ----------------------------------------------------------------------------------------------
# Writers


def test_derived_uids_are_deterministic_and_valid():
    from pydicom.uid import UID

    a, b, c = derive_uid("x", 1), derive_uid("x", 1), derive_uid("x", 2)
    assert a == b != c
    assert UID(a).is_valid and a.startswith("2.25.") and len(a) <= 64


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
def test_series_passes_dciodvfy(tmp_path, clean):
    files = write_dicom_series(clean.hu[:3], tmp_path, clean.spacing, clean.origin, clean.direction, seed=1)
    for path in files:
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        report = result.stdout + result.stderr
        assert result.returncode == 0, report
        assert "Error" not in report, report
        assert "CTImage" in report


def test_series_attributes_and_file_order(tmp_path, clean):
    import pydicom

    files = write_dicom_series(clean.hu, tmp_path, clean.spacing, clean.origin, clean.direction, seed=1)
    assert len(files) == clean.hu.shape[0]
    first = pydicom.dcmread(files[0])
    assert first.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert first.PixelRepresentation == 1 and float(first.RescaleSlope) == 1 and float(first.RescaleIntercept) == 0
    assert str(first.PatientName) == "DEMO^PHANTOM"
    assert np.array_equal(first.pixel_array, clean.hu[0])
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    assert z == sorted(z)  # returned in slice order...
    assert [f.name for f in files] != sorted(f.name for f in files)  # ...but names sort differently


def test_bad_array_raises_export_error(tmp_path):
    from jcs_viewer.errors import ExportError

    with pytest.raises(ExportError, match="shape"):
        write_dicom_series(np.zeros((4, 4), np.int16), tmp_path, (1, 1, 1), (0, 0, 0))
    with pytest.raises(ExportError, match="0..255"):
        write_mask_nifti(np.full((2, 4, 4), 300), tmp_path / "m.nii.gz", (1, 1, 1), (0, 0, 0))


# ----------------------------------------------------------------------------------------------
# Demo study on disk


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return write_demo_study(out, seed=4, **SMALL)


def test_demo_study_files_are_reproducible(demo_dir, tmp_path):
    again = write_demo_study(tmp_path / "again", seed=4, **SMALL)
    assert _tree_hashes(demo_dir) == _tree_hashes(again)
    other = write_demo_study(tmp_path / "other", seed=5, **SMALL)
    assert set(_tree_hashes(other).values()).isdisjoint(_tree_hashes(demo_dir).values())
    assert not any(p.name.startswith(".") for p in demo_dir.rglob("*"))  # no staging left behind


def test_demo_study_loads_with_ground_truth_geometry(demo_dir):
    import SimpleITK as sitk

    from jcs_viewer.io import load_study

    volume = load_study(demo_dir / "dicom")
    phantom = make_phantom(seed=4, **SMALL)
    assert np.array_equal(volume.array, phantom.hu)
    assert volume.warnings == []
    for name in ("lesion_mask", "lung_mask"):
        image = sitk.ReadImage(str(demo_dir / "ground_truth" / f"{name}.nii.gz"))
        assert image.GetSize()[::-1] == volume.shape
        assert image.GetSpacing()[::-1] == pytest.approx(volume.spacing, abs=1e-4)
        assert image.GetOrigin() == pytest.approx(volume.origin, abs=1e-3)
        assert np.asarray(image.GetDirection()).reshape(3, 3) == pytest.approx(volume.direction)
        assert np.array_equal(sitk.GetArrayFromImage(image), getattr(phantom, name))
    # Each recorded lesion centre maps to lesion voxels of its kind in the loaded geometry.
    lesion_mask = sitk.GetArrayFromImage(sitk.ReadImage(str(demo_dir / "ground_truth" / "lesion_mask.nii.gz")))
    summary = json.loads((demo_dir / "ground_truth" / "lesions.json").read_text())
    lesion_ml = np.count_nonzero(lesion_mask) * volume.voxel_volume_ml
    assert summary["lesion_volume_ml"] == pytest.approx(lesion_ml, rel=1e-3)
    for lesion in summary["lesions"]:
        ijk = np.linalg.solve(volume.direction, np.subtract(lesion["centre_mm"], volume.origin))
        x, y, z = np.rint(ijk / np.array(volume.spacing[::-1])).astype(int)
        around = lesion_mask[max(z - 1, 0) : z + 2, y - 2 : y + 3, x - 2 : x + 3]
        assert (around == lesion["label"]).any(), lesion


def test_demo_study_sitk_series_matches_nifti(demo_dir):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(demo_dir / "dicom")))
    series = reader.Execute()
    mask = sitk.ReadImage(str(demo_dir / "ground_truth" / "lung_mask.nii.gz"))
    assert series.GetSize() == mask.GetSize()
    assert series.GetSpacing() == pytest.approx(mask.GetSpacing(), abs=1e-4)
    assert series.GetOrigin() == pytest.approx(mask.GetOrigin(), abs=1e-3)
    assert series.GetDirection() == pytest.approx(mask.GetDirection())


def test_demo_command(tmp_path, capsys):
    from jcs_viewer.cli import main

    assert main(["demo", "--out", str(tmp_path / "d"), "--slices", "8", "--seed", "2", "--no-lesions"]) == 0
    printed = capsys.readouterr().out
    assert str((tmp_path / "d").resolve()) in printed
    assert len(list((tmp_path / "d" / "dicom").glob("*.dcm"))) == 8
    summary = json.loads((tmp_path / "d" / "ground_truth" / "lesions.json").read_text())
    assert summary["lesions"] == [] and summary["lesion_volume_ml"] == 0
    assert main(["demo", "--out", str(tmp_path / "e"), "--slices", "2"]) == 2
    assert "--slices" in capsys.readouterr().err


def test_demo_study_path_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("JCS_VIEWER_CACHE", str(tmp_path / "cache"))
    first = demo_study_path(seed=3, n_slices=8)
    assert first.parent == tmp_path / "cache"
    stamp = (first / "ground_truth" / "lesions.json").stat().st_mtime_ns
    assert demo_study_path(seed=3, n_slices=8) == first
    assert (first / "ground_truth" / "lesions.json").stat().st_mtime_ns == stamp  # not regenerated
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # no staging folders left


def test_noisy_lesions_stay_in_their_ranges(noisy_pair):
    phantom = noisy_pair[0]
    for kind, label in LESION_LABELS.items():
        values = phantom.hu[phantom.lesion_mask == label]
        low, high = LESION_HU_RANGES[kind]
        inside = np.mean((values >= low) & (values <= high))
        assert inside >= 0.97, (kind, inside)
        assert low < np.mean(values) < high
