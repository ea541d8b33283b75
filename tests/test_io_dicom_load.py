"""DICOM series loading: sorting, geometry, rescale, padding, compression, scanning."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from helpers_dicom import AXIAL, hu_slice, write_series, write_slice
from jcs_viewer.io import load_study, scan_folder


def test_slices_sorted_by_position_not_file_name(tmp_path):
    files, uid = write_series(tmp_path, n=6, size=32, spacing=1.25, z0=-100.0)
    vol = load_study(tmp_path)
    # Files are named in reverse order: IM0006 holds slice 0 (lowest z).
    assert [p.name for p in vol.source_files] == [f.name for f in files]
    assert vol.source_files[0].name == "IM0006.dcm"
    for z in range(6):
        np.testing.assert_array_equal(vol.array[z], hu_slice(32, z))
    assert vol.spacing == pytest.approx((1.25, 0.7, 0.7))
    assert vol.origin == pytest.approx((0.0, 0.0, -100.0))
    np.testing.assert_allclose(vol.direction, np.eye(3))
    assert vol.array.dtype == np.int16 and vol.array.flags.c_contiguous
    assert vol.is_hu and vol.source_format == "dicom"
    assert vol.info.series_uid == uid and vol.info.patient_id == "TEST001"
    assert vol.warnings == []


def test_oblique_names_shuffled_sorted_along_normal(tmp_path):
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # normal = row x col = (-1, 0, 0)
    names = ["b.dcm", "a.dcm", "d.dcm", "c.dcm"]
    write_series(tmp_path, n=4, spacing=2.0, z0=10.0, orientation=sagittal, names=names)
    vol = load_study(tmp_path)
    assert [p.name for p in vol.source_files] == names
    np.testing.assert_allclose(vol.direction[:, 2], [-1.0, 0.0, 0.0])
    np.testing.assert_allclose(vol.direction[:, 0], [0.0, 1.0, 0.0])
    assert vol.spacing[0] == pytest.approx(2.0)
    # index_to_lps of the last slice must land on that file's ImagePositionPatient.
    last = pydicom.dcmread(vol.source_files[-1], stop_before_pixels=True)
    np.testing.assert_allclose(vol.index_to_lps((3, 0, 0)), [float(v) for v in last.ImagePositionPatient], atol=1e-3)


@pytest.mark.parametrize("spacing, said", [(None, "gives no PixelSpacing"), (["0", "0"], "gives PixelSpacing 0 / 0"),
                                           (["0.7", "0.7"], None)])
def test_a_series_without_pixel_size_has_no_voxel_size(tmp_path, spacing, said):
    """1 mm pixels stand in for a missing PixelSpacing: the volume says so, as a PNG stack does, so that its
    lungs are not judged in mL that are not the patient's (``voxel_size_known`` was true)."""
    files, _ = write_series(tmp_path, n=4, size=16)
    for path in files:
        ds = pydicom.dcmread(path)
        if spacing is None:
            del ds.PixelSpacing
        else:
            ds.PixelSpacing = spacing
        ds.save_as(path)
    volume = load_study(tmp_path)
    assert volume.has_voxel_size is (said is None) and volume.spacing[0] == pytest.approx(1.25)
    notes = [w for w in volume.warnings if "assuming 1 mm pixels" in w]
    assert notes == [] if said is None else (len(notes) == 1 and said in notes[0])


@pytest.mark.parametrize("air", [True, False])
def test_a_series_without_modality_is_ct_when_its_values_hold_air(tmp_path, air):
    """lungmask's LIDC test slices carry no Modality: they were read as grey levels (HU numbers squeezed into
    0..255, shown at W255) where their values are plainly HU. Without air they stay grey levels."""
    files, _ = write_series(tmp_path, n=3, size=32)
    for path in files:
        ds = pydicom.dcmread(path)
        del ds.Modality
        if not air:  # an 8-bit export: 0..255, stored as is
            ds.RescaleIntercept, ds.RescaleSlope = 0, 1
            ds.PixelData = np.clip(ds.pixel_array.astype(np.int32) // 16 + 100, 0, 255).astype(np.int16).tobytes()
        ds.save_as(path)
    volume = load_study(tmp_path)
    (note,) = [w for w in volume.warnings if "gives no Modality" in w]
    assert volume.is_hu is air and ("read as CT in Hounsfield units" in note) is air
    if air:
        assert volume.array.min() <= -1000
    else:
        assert 0 <= volume.array.min() and volume.array.max() <= 255


def test_rescale_slope_intercept_padding_and_floor(tmp_path):
    hu = hu_slice(32, 0)
    hu[:4, :4] = -3000  # padding pixels (outside the scanned circle)
    hu[-4:, -4:] = -1500  # below air without being padding: floored to -1024
    for z in range(3):
        write_slice(tmp_path / f"s{z}.dcm", hu, position=(0.0, 0.0, 2.0 * z), series_uid="1.2.3.4",
                    slope=2.0, intercept=-1000.0, padding=-30000, instance=z + 1)
    vol = load_study(tmp_path)
    expected = np.maximum(hu, -1024)
    expected[:4, :4] = -1024
    np.testing.assert_array_equal(vol.array[1], expected)
    assert vol.array.min() == -1024


def test_padding_above_air_and_unsigned_12_bit_values(tmp_path):
    hu = hu_slice(16, 0)
    hu[:3, :3] = -2000  # written as the padding value below
    files = [
        write_slice(tmp_path / "pad.dcm", hu, position=(0, 0, 0), series_uid="1.2.3.5", padding=3000,
                    instance=1),  # stored 3000 = +1976 HU: only the padding tag says it is not tissue
        write_slice(tmp_path / "u12.dcm", hu_slice(16, 1), position=(0, 0, 1), series_uid="1.2.3.5",
                    unsigned_bits=12, instance=2),
    ]
    vol = load_study(tmp_path)
    assert list(vol.source_files) == files
    expected = hu.copy()
    expected[:3, :3] = -1024
    np.testing.assert_array_equal(vol.array[0], expected)
    np.testing.assert_array_equal(vol.array[1], hu_slice(16, 1))


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=["rle", "jpeg-ls", "jpeg2000"])
def test_compressed_transfer_syntaxes_decode(tmp_path, syntax):
    write_series(tmp_path, n=3, size=32, compress=syntax)
    header = pydicom.dcmread(next(tmp_path.iterdir()), stop_before_pixels=True)
    assert header.file_meta.TransferSyntaxUID == syntax
    vol = load_study(tmp_path)
    for z in range(3):
        np.testing.assert_array_equal(vol.array[z], hu_slice(32, z))


def test_jpeg_lossless_from_dcmtk_decodes(tmp_path):
    tool = shutil.which("dcmcjpeg")
    if tool is None:
        pytest.skip("dcmtk's dcmcjpeg is not installed (apt-get install dcmtk) to encode JPEG Lossless")
    plain = tmp_path / "plain"
    files, _ = write_series(plain, n=3, size=32)
    out = tmp_path / "jpeg"
    out.mkdir()
    for f in files:
        subprocess.run([tool, "+e1", str(f), str(out / f.name)], check=True, capture_output=True)
    assert pydicom.dcmread(out / files[0].name).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    np.testing.assert_array_equal(load_study(out).array, load_study(plain).array)


def test_scan_folder_finds_series_recursively_and_skips_other_files(tmp_path):
    write_series(tmp_path / "patient" / "ct", n=4, size=16, thickness=1.25, description="CHEST")
    write_series(tmp_path / "patient" / "mr", n=2, size=24, modality="MR", series_number=2, description="T1")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 200)
    entries = scan_folder(tmp_path)
    assert [(e.modality, e.n_slices, e.rows, e.columns) for e in entries] == [("CT", 4, 16, 16), ("MR", 2, 24, 24)]
    ct = entries[0]
    assert ct.description == "CHEST" and ct.slice_thickness == pytest.approx(1.25)
    assert ct.info.patient_id == "TEST001" and ct.info.study_date == "20240101"
    assert len(ct.files) == 4 and all(f.parent.name == "ct" for f in ct.files)


def test_load_by_series_uid(tmp_path):
    write_series(tmp_path, n=4, size=16)
    _, small_uid = write_series(tmp_path, n=2, size=16, names=["x1.dcm", "x2.dcm"], series_number=2)
    vol = load_study(tmp_path, series_uid=small_uid)
    assert vol.n_slices == 2 and vol.info.series_uid == small_uid
    assert not any("series" in w for w in vol.warnings)


def test_single_dicom_file_path(tmp_path):
    files, _ = write_series(tmp_path, n=3, size=16)
    vol = load_study(files[1])
    assert vol.n_slices == 1 and vol.source_files == (files[1],)
    np.testing.assert_array_equal(vol.array[0], hu_slice(16, 1))


def test_one_copy_in_memory(tmp_path):
    """Peak allocation while loading stays near one volume (no list of slices + stack)."""
    write_series(tmp_path, n=40, size=128)
    load_study(tmp_path)  # warm caches and lazy imports outside the measurement
    tracemalloc.start()
    vol = load_study(tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1.4 * vol.array.nbytes, f"peak {peak} bytes for a {vol.array.nbytes}-byte volume"


def test_enhanced_multiframe_ct_sorted_by_frame_position(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import EnhancedCTImageStorage, ExplicitVRLittleEndian, generate_uid

    order = [3, 1, 0, 2]  # frame i shows slice order[i]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedCTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", generate_uid(), generate_uid()
    ds.Rows = ds.Columns = 16
    ds.NumberOfFrames = len(order)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = list(AXIAL)
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.5, 0.5]
    shared.PixelMeasuresSequence[0].SliceThickness = 2.0
    shared.PixelValueTransformationSequence = [Dataset()]
    shared.PixelValueTransformationSequence[0].RescaleIntercept = -1024
    shared.PixelValueTransformationSequence[0].RescaleSlope = 1
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = []
    for z in order:
        frame = Dataset()
        frame.PlanePositionSequence = [Dataset()]
        frame.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, 2.0 * z]
        ds.PerFrameFunctionalGroupsSequence.append(frame)
    ds.PixelData = np.stack([hu_slice(16, z) + 1024 for z in order]).astype(np.int16).tobytes()
    ds.save_as(tmp_path / "enhanced.dcm", enforce_file_format=True)

    assert scan_folder(tmp_path)[0].n_slices == 4
    vol = load_study(tmp_path)
    assert vol.shape == (4, 16, 16) and vol.spacing == pytest.approx((2.0, 0.5, 0.5))
    for z in range(4):
        np.testing.assert_array_equal(vol.array[z], hu_slice(16, z))


def _strip_to_bare_data_sets(folder, implicit: bool) -> None:
    """Rewrite every file of ``folder`` as a bare data set: no preamble, no file meta (ACR-NEMA-era archives)."""
    from pydicom.dataset import FileMetaDataset

    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.file_meta, ds.preamble = FileMetaDataset(), None
        ds.save_as(path, implicit_vr=implicit, little_endian=True, enforce_file_format=False)


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit-vr", "explicit-vr"])
def test_bare_data_sets_without_preamble_load_and_say_so(tmp_path, implicit):
    """Old archives and raw exporters wrote the data set alone, without the DICM preamble and file meta: such a
    series read as "No DICOM files found". It loads as it is, with a note; DICOM outputs can still reference it."""
    from jcs_viewer.io.export import export_dicom_seg
    from test_export_support import make_study

    expected, _ = make_study(tmp_path / "reference", n_slices=4, size=32)
    bare = tmp_path / "bare"
    shutil.copytree(expected.source_files[0].parent, bare)
    _strip_to_bare_data_sets(bare, implicit)
    first = sorted(bare.iterdir())[0]
    raw = first.read_bytes()
    assert raw[:2] == b"\x08\x00" and raw[128:132] != b"DICM"  # group 0008 first: no preamble, no file meta
    volume = load_study(bare)
    assert np.array_equal(volume.array, expected.array) and volume.spacing == expected.spacing
    assert any("carry no DICOM preamble" in w and first.name in w for w in volume.warnings), volume.warnings
    seg = export_dicom_seg(volume, np.zeros(volume.shape, np.uint8), np.ones(volume.shape, np.uint8),
                           tmp_path / "seg.dcm")
    assert pydicom.dcmread(seg).ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(
        expected.source_files[0]).SeriesInstanceUID


def test_a_file_that_only_starts_like_a_bare_data_set_is_not_an_image(tmp_path):
    write_series(tmp_path, n=3, size=32)
    (tmp_path / "notes.bin").write_bytes(b"\x08\x00\x05\x00" + bytes(range(256)) * 4)
    volume = load_study(tmp_path)
    assert volume.n_slices == 3 and not any("preamble" in w for w in volume.warnings), volume.warnings

