"""Real public CT files from ../shared/data (skipped when that folder is absent)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from conftest import shared_data_path
from jcs_viewer.io import load_study, scan_folder

pytestmark = pytest.mark.shared_data


def test_every_ny_sbu_slice_loads_with_plausible_hu():
    root = shared_data_path("covid19_ny_sbu_dicom_slices")
    files = sorted(root.rglob("*.dcm"))
    assert len(files) >= 60
    entries = scan_folder(root)
    assert sum(e.n_slices for e in entries) == len(files)
    for path in files:
        vol = load_study(path)
        assert vol.shape[0] == 1 and vol.is_hu, path
        assert vol.array.min() == -1024 and vol.array.max() > 0, path
        # Independent check of the fast reader against pydicom's decoder and the HU formula.
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(vol.array[0], np.maximum(np.rint(hu), -1024).astype(np.int16))
        assert any("one slice" in w for w in vol.warnings)


def test_ny_sbu_each_series_by_uid():
    root = shared_data_path("covid19_ny_sbu_dicom_slices")
    for entry in scan_folder(root / "A002304"):
        vol = load_study(root / "A002304", series_uid=entry.series_uid)
        assert vol.info.series_uid == entry.series_uid and vol.source_files == entry.files


def test_ct_3slice_in_anatomical_order():
    root = shared_data_path("ct_3slice_dcmqi")
    vol = load_study(root)
    assert vol.shape == (3, 512, 512)
    assert [p.name for p in vol.source_files] == ["03.dcm", "02.dcm", "01.dcm"]  # z = -128.69, -127.69, -126.69
    assert vol.spacing == pytest.approx((1.0, 0.810547, 0.810547), abs=1e-5)
    assert vol.origin[2] == pytest.approx(-128.69, abs=1e-3)
    assert vol.array.min() == -1024 and 500 < vol.array.max() < 3000
    body = vol.array[:, 200:300, 200:300]
    assert -200 < np.median(body) < 200  # soft tissue in the middle of the slice
    assert vol.info.patient_id == "99000" and vol.warnings == []


def test_lidc_mha_loads_as_non_hu_volume():
    path = shared_data_path("lidc_chest_volume", "LIDC2.mha")
    vol = load_study(path)
    assert vol.shape == (133, 256, 256) and vol.array.dtype == np.int16
    assert not vol.is_hu and 0 <= vol.array.min() and vol.array.max() <= 255
    assert any("Hounsfield" in w for w in vol.warnings)
