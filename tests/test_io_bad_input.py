"""Bad input never crashes: a StudyLoadError naming the file, or a warning naming the files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from helpers_dicom import hu_slice, write_series, write_slice
from jcs_viewer.errors import StudyLoadError
from jcs_viewer.io import load_study, scan_folder


def _one_sentence(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.endswith("."), text
    return text


def test_missing_path(tmp_path):
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path / "nope")
    assert "does not exist" in _one_sentence(exc) and "nope" in str(exc.value)


def test_empty_folder(tmp_path):
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path)
    assert "empty" in _one_sentence(exc) and str(tmp_path) in str(exc.value)


def test_only_non_dicom_files(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "data.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    assert scan_folder(tmp_path) == []
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path)
    assert "No DICOM files" in _one_sentence(exc) and "2 files" in str(exc.value)


def test_unknown_single_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(StudyLoadError) as exc:
        load_study(path)
    assert "notes.txt" in _one_sentence(exc)


def test_truncated_pixel_data(tmp_path):
    files, _ = write_series(tmp_path, n=3, size=32)
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) - 700])
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path)
    assert "truncated" in _one_sentence(exc) and files[1].name in str(exc.value)


def test_truncated_header_is_skipped_with_warning_or_named(tmp_path):
    files, _ = write_series(tmp_path, n=3, size=32)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(files[0].read_bytes()[:300])  # preamble + part of the meta header
    vol = load_study(tmp_path)
    assert vol.n_slices == 3
    assert any("broken.dcm" in w and "truncated" in w for w in vol.warnings)
    with pytest.raises(StudyLoadError) as exc:
        load_study(broken)
    assert "broken.dcm" in _one_sentence(exc)


def test_dicom_without_pixel_data(tmp_path):
    path = write_slice(tmp_path / "nopix.dcm", hu_slice(16, 0), position=(0, 0, 0), series_uid="1.2.3",
                       with_pixels=False)
    with pytest.raises(StudyLoadError) as exc:
        load_study(path)
    assert "nopix.dcm" in _one_sentence(exc) and "pixel data" in str(exc.value)


def test_file_without_pixels_in_series_is_ignored_with_warning(tmp_path):
    files, uid = write_series(tmp_path, n=3, size=16)
    write_slice(tmp_path / "extra.dcm", hu_slice(16, 0), position=(0, 0, 50), series_uid=uid, with_pixels=False)
    vol = load_study(tmp_path)
    assert vol.n_slices == 3
    assert any("extra.dcm" in w and "without pixel data" in w for w in vol.warnings)


def test_two_series_picks_ct_with_most_slices_and_names_the_others(tmp_path):
    write_series(tmp_path, n=2, size=16, names=["a1.dcm", "a2.dcm"], description="SCOUT", series_number=1)
    write_series(tmp_path, n=4, size=16, names=[f"b{i}.dcm" for i in range(4)], description="LUNG", series_number=2)
    write_series(tmp_path, n=6, size=16, names=[f"m{i}.dcm" for i in range(6)], modality="MR", series_number=3)
    vol = load_study(tmp_path)
    assert vol.n_slices == 4 and vol.info.series_description == "LUNG"
    note = next(w for w in vol.warnings if "3 series" in w)
    assert "SCOUT" in note and "MR" in note


def test_non_ct_modality_loads_with_warning(tmp_path):
    write_series(tmp_path, n=3, size=16, modality="MR")
    vol = load_study(tmp_path)
    assert vol.n_slices == 3 and not vol.is_hu
    assert any("Modality is MR" in w for w in vol.warnings)


def test_single_slice_uses_slice_thickness(tmp_path):
    write_series(tmp_path, n=1, size=16, thickness=5.0, names=["only.dcm"])
    vol = load_study(tmp_path)
    assert vol.shape == (1, 16, 16) and vol.spacing[0] == pytest.approx(5.0)
    assert any("only.dcm" in w and "one slice" in w for w in vol.warnings)


def test_duplicate_slices_keep_one(tmp_path):
    files, _ = write_series(tmp_path, n=4, size=16)
    shutil.copy(files[2], tmp_path / "copy_of_slice2.dcm")
    vol = load_study(tmp_path)
    assert vol.n_slices == 4 and vol.spacing[0] == pytest.approx(1.25)
    note = next(w for w in vol.warnings if "Duplicate" in w)
    assert "copy_of_slice2.dcm" in note or files[2].name in note


def test_missing_slice_is_a_named_gap(tmp_path):
    files, _ = write_series(tmp_path, n=6, size=16, spacing=1.0)
    files[3].unlink()  # slice 3 of 0..5
    vol = load_study(tmp_path)
    assert vol.n_slices == 5 and vol.spacing[0] == pytest.approx(1.0)
    gap = next(w for w in vol.warnings if w.startswith("Gap"))
    assert files[2].name in gap and files[4].name in gap and "1 missing slice" in gap


def test_uneven_spacing_is_named(tmp_path):
    files, _ = write_series(tmp_path, n=6, size=16, spacing=1.0, step_offsets={3: 0.3})
    vol = load_study(tmp_path)
    note = next(w for w in vol.warnings if w.startswith("Uneven"))
    assert files[3].name in note


def test_mixed_orientations_keep_majority(tmp_path):
    files, uid = write_series(tmp_path, n=5, size=16)
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    write_slice(tmp_path / "coronal.dcm", hu_slice(16, 0), position=(0, 5, 0), orientation=coronal, series_uid=uid)
    vol = load_study(tmp_path)
    assert vol.n_slices == 5 and [p.name for p in vol.source_files] == [f.name for f in files]
    assert any("Mixed orientations" in w and "coronal.dcm" in w for w in vol.warnings)


def test_gantry_tilt_is_reported(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.77"
    for i in range(4):  # positions drift in y as z increases: a 15 degree tilt
        write_slice(tmp_path / f"t{i}.dcm", hu_slice(16, i), position=(0.0, i * np.tan(np.radians(15)), float(i)),
                    series_uid=uid, instance=i + 1)
    vol = load_study(tmp_path)
    note = next(w for w in vol.warnings if "tilt" in w)
    assert "15.0 degrees" in note and "t0.dcm" in note and "t3.dcm" in note


def test_unknown_series_uid(tmp_path):
    write_series(tmp_path, n=2, size=16)
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path, series_uid="9.9.9")
    assert "9.9.9" in _one_sentence(exc)


def test_nan_filled_nifti(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    path = tmp_path / "nan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((3, 8, 8), np.nan, np.float32)), str(path))
    with pytest.raises(StudyLoadError) as exc:
        load_study(path)
    assert "nan.nii.gz" in _one_sentence(exc) and "NaN" in str(exc.value)


def test_a_complex_valued_volume_is_refused_in_one_sentence(tmp_path):
    """ITK reads a complex NIfTI, then its reorientation raised a RuntimeError in ITK's words (a traceback)."""
    sitk = pytest.importorskip("SimpleITK")
    path = tmp_path / "phase.nii.gz"
    values = np.full((3, 8, 8), -800, np.float32) + 1j * np.ones((3, 8, 8), np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(values.astype(np.complex64)), str(path))
    with pytest.raises(StudyLoadError) as exc:
        load_study(path)
    assert path.name in _one_sentence(exc) and "complex numbers" in str(exc.value)


def test_damaged_volume_file(tmp_path):
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(StudyLoadError) as exc:
        load_study(path)
    assert "bad.nii.gz" in _one_sentence(exc)


def test_a_folder_of_several_volume_files_names_them(tmp_path):
    """A CT and its label maps side by side (as exported by segmentation tools): which is the study is not guessed."""
    sitk = pytest.importorskip("SimpleITK")
    for name in ("ct.nii.gz", "heart.nii.gz", "lungs.mha"):
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 8), np.int16)), str(tmp_path / name))
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path)
    text = _one_sentence(exc)
    assert "3 volume files (ct.nii.gz, heart.nii.gz, lungs.mha)" in text and "open the CT file itself" in text


def test_image_folder_with_different_sizes(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.uint8)), str(tmp_path / "1.png"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 9), np.uint8)), str(tmp_path / "2.png"))
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path)
    assert "2.png" in _one_sentence(exc) and "same size" in str(exc.value)


@pytest.mark.parametrize("special", ["fifo", "socket"])
def test_special_files_in_a_study_folder_are_skipped(tmp_path, special):
    """A FIFO (or socket) among the slices: opening a FIFO blocks forever, so it must not be opened at all."""
    import os
    import socket
    import threading

    files, _ = write_series(tmp_path, n=3, size=16)
    if special == "fifo":
        os.mkfifo(tmp_path / "zz_pipe.dcm")
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(tmp_path / "zz_socket.dcm"))
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(load_study(tmp_path)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if special == "socket":
        sock.close()
    assert outcome, "loading a folder with a special file in it did not return"
    assert outcome[0].array.shape == (3, 16, 16)


@pytest.mark.parametrize("attribute, value, words", [
    ("Rows", 0, "Rows 0"),
    ("Columns", 0, "Columns 0"),
    ("ImagePositionPatient", ["nan", "0", "0"], "non-finite ImagePositionPatient"),
    ("PixelSpacing", ["inf", "1"], "non-finite PixelSpacing"),
    ("RescaleSlope", "nan", "non-finite RescaleSlope"),
    ("RescaleIntercept", "9223372036854775808", "no CT value fits"),
    ("BitsAllocated", 8, "the image size is wrong"),  # 16-bit pixel data under an 8-bit header
    ("Rows", 28, "the image size is wrong"),  # fewer rows than the pixel data holds
    ("Rows", 65535, "at most 4096 pixels"),
    ("Columns", 65535, "at most 4096 pixels"),
    ("NumberOfFrames", 65536, "65536 frames"),
])
def test_impossible_header_values_get_one_sentence(tmp_path, attribute, value, words):
    """Values no image can have: a sentence naming the file and the attribute, never a traceback or silent data."""
    import warnings

    import pydicom

    files, _ = write_series(tmp_path, n=3, size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values it is asked to write
        for path in files:
            ds = pydicom.dcmread(path)
            setattr(ds, attribute, value)
            ds.save_as(path)
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path)
    sentence = _one_sentence(exc)
    assert words in sentence and ".dcm" in sentence


@pytest.mark.parametrize("name", ["cut.nii.gz", "cut.nii"])
def test_a_truncated_nifti_is_refused_not_zero_filled(tmp_path, name):
    import gzip

    import SimpleITK as sitk

    array = np.random.default_rng(0).integers(-1000, 400, size=(16, 64, 64)).astype(np.int16)
    whole = tmp_path / "whole.nii"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(whole))
    data = whole.read_bytes()
    assert load_study(whole).array.shape == (16, 64, 64)  # the whole file still loads
    if name.endswith(".gz"):
        cut = gzip.compress(data)
        (tmp_path / name).write_bytes(cut[: int(len(cut) * 0.6)])
    else:
        (tmp_path / name).write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path / name)
    assert name in str(exc.value) and "truncated" in _one_sentence(exc)


def test_slice_positions_no_ct_series_can_have_are_refused(tmp_path):
    """Positions 1e30 mm apart once gave a lesion volume of 5.8e30 mL: refuse, never report numbers from them."""
    import pydicom

    files, _ = write_series(tmp_path, n=3, size=16)
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [0, 0, f"{k * 1e30:g}"]
        ds.save_as(path)
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path)
    assert "positions are wrong" in _one_sentence(exc)


@pytest.mark.parametrize("syntax", ["j2k", "deflate"])
def test_a_compressed_file_cut_short_is_called_what_it_is(tmp_path, syntax):
    """A JPEG 2000 file cut inside its pixel data is "truncated", not "has no pixel data"; a broken deflate
    stream is named as such, not "(error)" (zlib's exception class)."""
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless

    files, _ = write_series(tmp_path, n=3, size=64)
    for path in files:
        ds = pydicom.dcmread(path)
        if syntax == "j2k":
            ds.compress(JPEG2000Lossless)
        else:
            ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    data = files[1].read_bytes()
    files[1].write_bytes(data[: int(len(data) * 0.8)])
    if syntax == "j2k":
        with pytest.raises(StudyLoadError) as exc:
            load_study(tmp_path)
        assert "truncated" in _one_sentence(exc) and "no pixel data" not in str(exc.value)
    else:  # a damaged file among good ones is skipped, and the warning says why
        volume = load_study(tmp_path)
        assert volume.array.shape[0] == 2
        (warning,) = [w for w in volume.warnings if files[1].name in w]
        assert "deflate-compressed data set is corrupt" in warning and "(error)" not in warning


def test_a_damaged_rle_stream_is_one_sentence_not_a_decoder_panic(tmp_path):
    """pylibjpeg-rle's Rust decoder panics on a damaged stream (``PanicException``, a ``BaseException`` that
    ``except Exception`` lets through): the study must still end in a sentence naming the file and the syntax."""
    import pydicom
    from pydicom.uid import RLELossless

    pytest.importorskip("rle")
    files, _ = write_series(tmp_path, n=3, size=32)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)
    clean = files[1].read_bytes()
    for start in np.linspace(0.5, 0.95, 10):  # scramble the RLE segments' tail until the decoder panics
        data = bytearray(clean)
        for i in range(int(len(data) * start), len(data) - 16):
            data[i] = (data[i] * 7 + 13) & 0xFF
        files[1].write_bytes(bytes(data))
        try:
            pydicom.dcmread(files[1]).pixel_array
        except Exception:  # noqa: BLE001, S112 - an ordinary decoder error: not the case under test
            continue
        except BaseException as exc:  # noqa: BLE001
            assert type(exc).__name__ == "PanicException"
            break
    else:
        pytest.fail("no scrambled tail made the RLE decoder panic")
    files[1].write_bytes(bytes(data))
    with pytest.raises(StudyLoadError) as exc:
        load_study(tmp_path)
    sentence = _one_sentence(exc)
    assert files[1].name in sentence and "RLE Lossless" in sentence and "damaged" in sentence


def test_what_a_series_silently_lost_or_changed_is_named(tmp_path):
    """An empty file and a non-DICOM file named like slices of the series, a RescaleSlope of 0 read as 1, and a
    volume file beside the DICOM series: each was passed over without a word."""
    import pydicom

    sitk = pytest.importorskip("SimpleITK")
    files, _ = write_series(tmp_path / "series", n=4, size=16, names=[f"IM{i}.dcm" for i in range(4)])
    ds = pydicom.dcmread(files[2])
    ds.RescaleSlope = 0
    ds.save_as(files[2])
    (tmp_path / "series" / "IM9.dcm").write_bytes(b"")
    (tmp_path / "series" / "IM8.dcm").write_bytes(b"not DICOM at all")
    (tmp_path / "series" / "notes.txt").write_text("a reader's notes")  # other files stay quiet
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 8), np.int16)), str(tmp_path / "series" / "mask.nii.gz"))
    volume = load_study(tmp_path / "series")
    assert volume.n_slices == 4
    said = " | ".join(volume.warnings)
    assert "IM9.dcm is named .dcm but is empty" in said and "IM8.dcm is named .dcm but is not a DICOM file" in said
    assert "notes.txt" not in said
    assert "RescaleSlope is 0 in 1 file (IM2.dcm)" in said
    assert "Also there: 1 volume file (mask.nii.gz)" in said


@pytest.mark.parametrize("locked", ["study", "subfolder", "file"])
def test_permission_denied_is_one_sentence_naming_what_cannot_be_read(tmp_path, locked):
    """Issue 15, item 4: a real permission denial (root without CAP_DAC_OVERRIDE, else a plain user), exit 2."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from helpers_dicom import write_series

    study = tmp_path / "study"
    files, _ = write_series(study / "series", n=3, size=16)
    target = {"study": study, "subfolder": study / "series", "file": Path(files[0])}[locked]
    target.chmod(0)
    command = [sys.executable, "-c", "import sys; from jcs_viewer.cli import main; sys.exit(main(sys.argv[1:]))",
               "analyze", str(study), "--out", str(tmp_path / "out")]
    if os.geteuid() == 0:  # root reads everything: drop the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is needed to run without CAP_DAC_OVERRIDE as root")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        target.chmod(0o755)
    lines = proc.stderr.strip().splitlines()
    if locked == "file":  # one unreadable slice is skipped like a damaged one, and said so; the rest is analysed
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert f"Skipped: Cannot read {target}: Permission denied." in lines
        return
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("jcs-viewer: ") and "Permission denied" in lines[0] and str(target) in lines[0]
