"""Seeded DICOM fuzzing of the study loader (issue 15): 2,000 damaged series, no foreign exception, no hang.

Each case starts from a real 3-slice CT series written here and damages it one way: a header value set to
garbage (empty, non-finite, huge, negative, wrong type or multiplicity), an element deleted, header bytes
flipped, the file cut short or padded with junk, or the transfer syntax changed under the pixels. Loading
must either succeed with finite HU and a sane geometry or raise one of the project's own errors (a
:class:`~jcs_viewer.errors.JCSError`, whose message is the one sentence the CLI and the GUI show); any other
exception, or a load over 10 s, fails the test with the seed that reproduces it.
"""

from __future__ import annotations

import io
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from helpers_dicom import write_series
from jcs_viewer.errors import JCSError
from jcs_viewer.io import load_study

CASES = 2000  # issue 15 asks for 2,000 at least
HANG_S = 10

FIELDS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
          "NumberOfFrames", "RescaleSlope", "RescaleIntercept", "ImagePositionPatient", "ImageOrientationPatient",
          "PixelSpacing", "SliceThickness", "InstanceNumber", "PhotometricInterpretation", "Modality",
          "SeriesInstanceUID", "StudyInstanceUID", "SOPClassUID", "WindowCenter", "WindowWidth",
          "SpecificCharacterSet", "PatientName", "SliceLocation", "PixelPaddingValue", "PlanarConfiguration")
GARBAGE = ("", "nan", "inf", "-inf", "1e308", "-1e308", "9223372036854775808", "-1", "0", "65535", "4294967296",
           "abc", "\\", "1\\2\\3\\4\\5\\6\\7", "1e-320", "0.0\\0.0", "MONOCHROME3", "RGB", "PALETTE COLOR",
           "1.2.3.\x00", "\u00e9\u00e8", "  ", "3.5", "-0", "1" * 200)
SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5",
            "1.2.840.10008.1.2.1.99", "1.2.3.4", "")


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


@pytest.fixture(scope="module")
def seed_series(tmp_path_factory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("seed")
    files, _ = write_series(folder, n=3, size=16)
    return [Path(f).read_bytes() for f in sorted(files)]


def _set_garbage(raw: bytes, rng: np.random.Generator) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    keyword = FIELDS[rng.integers(len(FIELDS))]
    value = GARBAGE[rng.integers(len(GARBAGE))]
    if rng.random() < 0.15 and keyword in ds:
        del ds[keyword]
    else:
        try:
            setattr(ds, keyword, value)
        except (ValueError, TypeError, OverflowError):
            # pydicom refuses the value for that VR: store it as text, as a broken writer would (a wrong VR).
            from pydicom.dataelem import DataElement
            from pydicom.datadict import tag_for_keyword

            tag = tag_for_keyword(keyword)
            ds[tag] = DataElement(tag, "LO", value)
    if rng.random() < 0.2:
        ds.file_meta.TransferSyntaxUID = SYNTAXES[rng.integers(len(SYNTAXES))]
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - pydicom cannot even write it: damage the bytes instead
        return _flip(raw, rng)
    return out.getvalue()


def _flip(raw: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(raw)
    header_end = min(len(data), 900)  # preamble, meta and the header elements before the pixels
    for _ in range(int(rng.integers(1, 12))):
        data[int(rng.integers(128, header_end))] = int(rng.integers(256))
    return bytes(data)


def _cut_or_pad(raw: bytes, rng: np.random.Generator) -> bytes:
    if rng.random() < 0.6:
        return raw[: int(rng.integers(0, len(raw)))]
    return raw + rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes()


MUTATIONS = (_set_garbage, _set_garbage, _set_garbage, _flip, _cut_or_pad)


def _check_volume(volume) -> None:
    arr = np.asarray(volume.array)
    assert arr.ndim == 3 and arr.size > 0
    if np.issubdtype(arr.dtype, np.floating):
        assert np.isfinite(arr).all()
    assert all(np.isfinite(s) and 0 < s < 1000 for s in volume.spacing), volume.spacing
    assert np.isfinite(np.asarray(volume.origin, float)).all()
    assert np.isfinite(np.asarray(volume.direction, float)).all()


def test_damaged_dicom_series_load_or_fail_with_our_own_sentence(seed_series, tmp_path):
    previous = signal.signal(signal.SIGALRM, _alarm)
    failures: list[str] = []
    slowest = 0.0
    start = time.monotonic()
    folder = tmp_path / "case"
    try:
        for case in range(CASES):
            rng = np.random.default_rng(case)
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            victims = rng.choice(3, size=int(rng.integers(1, 3)), replace=False)
            for k, raw in enumerate(seed_series):
                if k in victims:
                    raw = MUTATIONS[rng.integers(len(MUTATIONS))](raw, rng)
                (folder / f"IM{k}.dcm").write_bytes(raw)
            t0 = time.monotonic()
            signal.alarm(HANG_S)
            try:
                _check_volume(load_study(folder))
            except JCSError as exc:
                assert str(exc).strip() and "\n" not in str(exc).strip(), (case, str(exc))
            except Hang:
                failures.append(f"case {case}: no answer within {HANG_S} s")
            except Exception as exc:  # noqa: BLE001 - what the test is for
                failures.append(f"case {case}: {type(exc).__name__}: {exc}"[:300])
            finally:
                signal.alarm(0)
            slowest = max(slowest, time.monotonic() - t0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    # The time is reported, not asserted (speed belongs to benchmarks): ~40 s here for all cases.
    print(f"{CASES} fuzz cases in {time.monotonic() - start:.1f} s, slowest {slowest:.2f} s")
    assert not failures, f"{len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:25])
