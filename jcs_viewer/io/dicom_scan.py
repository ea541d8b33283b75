"""Find DICOM series in a folder by reading headers only (never pixel data)."""

from __future__ import annotations

import logging
import os
import struct
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.io.volume import StudyInfo
from jcs_viewer.vocabulary import counted, plane_of_normal

log = logging.getLogger(__name__)

_PIXEL_DATA_TAG_LE = b"\xe0\x7f\x10\x00"  # (7FE0,0010) in little-endian byte order
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class SliceHeader:
    """What the loader needs from one file's header (pixel data not read).

    ``pixel_offset`` is the byte offset of the Pixel Data element in the file, so that
    uncompressed pixels can be read later without parsing the header again. A frame of
    a multi-frame file has ``frame`` set and its own position/orientation/rescale.
    """

    path: Path
    series_uid: str
    modality: str
    transfer_syntax: str
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    n_frames: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    spacing_between_slices: float | None
    slope: float
    intercept: float
    padding: tuple[int, int] | None
    instance_number: int
    has_pixels: bool
    pixel_offset: int | None
    frame: int | None = None  # index in a multi-frame file, else None
    slope_zero: bool = False  # RescaleSlope was 0 (every value would be the intercept): 1 is used in its place
    no_preamble: bool = False  # a bare data set (an ACR-NEMA-era or raw export), read as its encoding shows
    monochrome1: bool = False  # PhotometricInterpretation MONOCHROME1: the lowest value is shown white


@dataclass(frozen=True)
class SeriesEntry:
    """One DICOM series found by :func:`scan_folder`.

    Attributes:
        series_uid: SeriesInstanceUID ("" when the files carry none).
        modality: e.g. ``"CT"``.
        description: SeriesDescription.
        n_slices: number of image files (frames for a multi-frame file).
        rows, columns: image size (the most common one in the series).
        slice_thickness: SliceThickness in mm, when given.
        info: patient, study and series fields from the series' first file.
        files: every file of the series, in scan order (not sorted).
    """

    series_uid: str
    modality: str
    description: str
    n_slices: int
    rows: int
    columns: int
    slice_thickness: float | None
    info: StudyInfo
    files: tuple[Path, ...]
    headers: tuple[SliceHeader, ...] = field(default=(), repr=False, compare=False)

    @property
    def has_pixels(self) -> bool:
        """Whether at least one file of the series holds an image."""
        return any(h.has_pixels for h in self.headers)

    @property
    def plane(self) -> str:
        """``"axial"``, ``"coronal"`` or ``"sagittal"`` from the slices' orientation ("" when they carry none)."""
        orientations = [h.orientation for h in self.headers if h.orientation is not None and len(h.orientation) == 6]
        if not orientations:
            return ""
        return plane_of_normal(np.cross(orientations[0][:3], orientations[0][3:]))

    def label(self) -> str:
        """Short human-readable name, e.g. ``series 3 "CHEST 1.25" (CT, 240 slices)``."""
        number = self.info.series_number or "?"
        desc = f' "{self.description}"' if self.description else ""
        return f"series {number}{desc} ({self.modality or 'no modality'}, {counted(self.n_slices, 'slice')})"


@dataclass
class ScanResult:
    """Series found, plus files that look like DICOM but could not be parsed."""

    entries: list[SeriesEntry]
    problems: list[str]
    n_files: int


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:  # noqa: BLE001 - a malformed optional field must not stop loading
        return ""
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _float(ds: pydicom.Dataset, keyword: str) -> float | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        if isinstance(value, pydicom.multival.MultiValue):
            value = value[0]
        return float(value)
    except Exception:  # noqa: BLE001
        return None


def _floats(ds: pydicom.Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    try:
        value = ds.get(keyword)
        if value is None or len(value) != count:
            return None
        return tuple(float(v) for v in value)
    except Exception:  # noqa: BLE001
        return None


def _int(ds: pydicom.Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword)
        return default if value is None or value == "" else int(value)
    except Exception:  # noqa: BLE001
        return default


def study_info(ds: pydicom.Dataset) -> StudyInfo:
    """Patient, study and series fields of one dataset."""
    return StudyInfo(
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        age=_text(ds, "PatientAge"),
        study_uid=_text(ds, "StudyInstanceUID"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        study_description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        series_number=_text(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        modality=_text(ds, "Modality"),
        manufacturer=_text(ds, "Manufacturer"),
        institution=_text(ds, "InstitutionName"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        slice_thickness=_float(ds, "SliceThickness"),
        kvp=_float(ds, "KVP"),
        convolution_kernel=_text(ds, "ConvolutionKernel"),
    )


def _padding(ds: pydicom.Dataset) -> tuple[int, int] | None:
    """Stored-value range marked as padding (outside the scanned field of view)."""
    try:
        value = ds.get("PixelPaddingValue")
        if value is None or isinstance(value, bytes):
            return None
        low = int(value)
        limit = ds.get("PixelPaddingRangeLimit")
        high = low if limit is None or isinstance(limit, bytes) else int(limit)
        return (min(low, high), max(low, high))
    except Exception:  # noqa: BLE001
        return None


class _RawFields:
    """Per-slice header values decoded straight from pydicom's raw elements.

    pydicom converts a value on first access, which costs more than parsing the whole
    header; these few numeric/text fields are read for every file, so they are decoded
    here from the raw bytes (falling back to pydicom for anything unusual).
    """

    def __init__(self, ds: pydicom.Dataset) -> None:
        self.ds = ds

    def _raw(self, tag: int) -> tuple[bytes | None, bool] | None:
        """(bytes, little_endian) of a raw element; None when absent; ValueError if converted."""
        try:
            elem = self.ds.get_item(tag)
        except Exception:  # noqa: BLE001 - malformed element: treat as absent
            return None
        if elem is None:
            return None
        if not isinstance(elem, RawDataElement):
            raise ValueError("already converted")
        return elem.value, elem.is_little_endian

    def text(self, tag: int, keyword: str) -> str:
        try:
            raw = self._raw(tag)
        except ValueError:
            return _text(self.ds, keyword)
        if raw is None or raw[0] is None:
            return ""
        return raw[0].decode("latin-1").strip(" \x00")

    def numbers(self, tag: int, keyword: str, count: int) -> tuple[float, ...] | None:
        """``count`` DS/IS values (``count=1``: a 1-tuple)."""
        try:
            raw = self._raw(tag)
        except ValueError:
            return _floats(self.ds, keyword, count) if count > 1 else _as_tuple(_float(self.ds, keyword))
        if raw is None or raw[0] is None:
            return None
        try:
            parts = raw[0].decode("latin-1").strip(" \x00").split("\\")
            values = tuple(float(p) for p in parts[:count])
        except ValueError:
            return None
        return values if len(values) == count else None

    def number(self, tag: int, keyword: str) -> float | None:
        values = self.numbers(tag, keyword, 1)
        return None if values is None else values[0]

    def ushort(self, tag: int, keyword: str, default: int) -> int:
        try:
            raw = self._raw(tag)
        except ValueError:
            return _int(self.ds, keyword, default)
        if raw is None or raw[0] is None or len(raw[0]) != 2:
            return default
        return struct.unpack("<H" if raw[1] else ">H", raw[0])[0]


def _as_tuple(value: float | None) -> tuple[float] | None:
    return None if value is None else (value,)


def _header_from(ds: pydicom.Dataset, path: Path, pixel_offset: int | None, has_pixels: bool) -> SliceHeader:
    meta = getattr(ds, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    f = _RawFields(ds)
    slope = f.number(0x00281053, "RescaleSlope")
    intercept = f.number(0x00281052, "RescaleIntercept")
    bits_allocated = f.ushort(0x00280100, "BitsAllocated", 16)
    frames = f.number(0x00280008, "NumberOfFrames")
    instance = f.number(0x00200013, "InstanceNumber")
    _check_values(path, f, slope, intercept, frames)
    return SliceHeader(
        path=path,
        series_uid=f.text(0x0020000E, "SeriesInstanceUID"),
        modality=f.text(0x00080060, "Modality"),
        transfer_syntax=syntax,
        rows=f.ushort(0x00280010, "Rows", 0),
        columns=f.ushort(0x00280011, "Columns", 0),
        samples_per_pixel=f.ushort(0x00280002, "SamplesPerPixel", 1),
        bits_allocated=bits_allocated,
        bits_stored=f.ushort(0x00280101, "BitsStored", bits_allocated),
        pixel_representation=f.ushort(0x00280103, "PixelRepresentation", 0),
        n_frames=max(1, int(frames or 1)),
        position=f.numbers(0x00200032, "ImagePositionPatient", 3),  # type: ignore[arg-type]
        orientation=f.numbers(0x00200037, "ImageOrientationPatient", 6),
        pixel_spacing=f.numbers(0x00280030, "PixelSpacing", 2),  # type: ignore[arg-type]
        slice_thickness=f.number(0x00180050, "SliceThickness"),
        spacing_between_slices=f.number(0x00180088, "SpacingBetweenSlices"),
        slope=1.0 if slope in (None, 0.0) else slope,
        intercept=0.0 if intercept is None else intercept,
        padding=_padding(ds) if 0x00280120 in ds else None,
        instance_number=int(instance) if instance is not None and np.isfinite(instance) else 0,
        has_pixels=has_pixels,
        pixel_offset=pixel_offset,
        slope_zero=slope == 0.0,
        monochrome1=f.text(0x00280004, "PhotometricInterpretation").strip().upper() == "MONOCHROME1",
    )


#: |RescaleSlope| and |RescaleIntercept| beyond these give no CT value an int16 volume can hold.
MAX_RESCALE = 1e5
#: more frames than any CT series holds in one file (and than a sane allocation).
MAX_FRAMES = 10000
#: CT slices are 512 or 1024 pixels a side (2048 on a few scanners): beyond this a header is wrong.
MAX_SIDE = 4096


def _check_values(path: Path, f: _RawFields, slope, intercept, frames) -> None:
    """One sentence for header values no image can have: zero size, non-finite or absurd numbers.

    Raises:
        StudyLoadError: naming the file and the attribute.
    """
    for name, tag in (("Rows", 0x00280010), ("Columns", 0x00280011)):
        size = f.ushort(tag, name, 1)
        if size == 0:
            raise StudyLoadError(f"DICOM file {path} has {name} 0: it holds no image.")
        if size > MAX_SIDE:  # checked before anything is allocated for it
            raise StudyLoadError(f"DICOM file {path} declares {name} {size}: CT slices are at most {MAX_SIDE} "
                                 "pixels a side.")
    numbers = {"RescaleSlope": slope, "RescaleIntercept": intercept, "NumberOfFrames": frames}
    for name, tag, count in (("ImagePositionPatient", 0x00200032, 3), ("ImageOrientationPatient", 0x00200037, 6),
                             ("PixelSpacing", 0x00280030, 2)):
        values = f.numbers(tag, name, count)
        if values is not None and not all(np.isfinite(values)):
            raise StudyLoadError(f"DICOM file {path} has a non-finite {name} ({', '.join(map(str, values))}).")
    for name, value in numbers.items():
        if value is not None and not np.isfinite(value):
            raise StudyLoadError(f"DICOM file {path} has a non-finite {name} ({value}).")
    if slope is not None and abs(slope) > MAX_RESCALE or intercept is not None and abs(intercept) > MAX_RESCALE:
        raise StudyLoadError(f"DICOM file {path} has RescaleSlope {slope} and RescaleIntercept {intercept}: "
                             "no CT value fits them.")
    if frames is not None and not 0 <= frames <= MAX_FRAMES:
        raise StudyLoadError(f"DICOM file {path} declares {frames:g} frames (at most {MAX_FRAMES} are read).")


def read_failure(exc: BaseException) -> str:
    """What a failed pydicom read says about the file, in words (not an exception class name like "error")."""
    import zlib

    if isinstance(exc, zlib.error):
        return "its deflate-compressed data set is corrupt"
    if isinstance(exc, EOFError):
        return "it ends early"
    text = str(exc).strip().rstrip(".")
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fp:
            fp.seek(128)
            return fp.read(4) == b"DICM"
    except OSError:
        return False


def _read_to_pixels(path: Path, force: bool) -> tuple[pydicom.Dataset, int, bytes]:
    """The header, the offset where pydicom stopped (at the Pixel Data tag, if any) and the 4 bytes there."""
    with open(path, "rb") as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=force)
        offset = fp.tell()
        return ds, offset, fp.read(4)


def starts_like_a_data_set(path: Path) -> bool:
    """Whether a file without the DICM preamble opens with a little-endian element of group 0002 or 0008 (a data
    set written bare, as ACR-NEMA-era archives and some exporters did), with an element number that group uses."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(4)
    except OSError:
        return False
    if len(head) < 4:
        return False
    group, element = struct.unpack("<HH", head)
    return group in (0x0002, 0x0008) and element < 0x0200


def _bare_header(ds: pydicom.Dataset, path: Path, offset: int,
                 tag: bytes) -> tuple[SliceHeader, pydicom.Dataset] | None:
    """A bare data set's header, its encoding taken for its transfer syntax; None when it describes no image."""
    if "SOPClassUID" not in ds and "Rows" not in ds:
        return None
    implicit = getattr(ds, "original_encoding", (True, True))[0]  # little endian: its first tag said so
    syntax = pydicom.uid.ImplicitVRLittleEndian if implicit else pydicom.uid.ExplicitVRLittleEndian
    has_pixels = tag == _PIXEL_DATA_TAG_LE
    header = _header_from(ds, path, offset if has_pixels else None, has_pixels)
    return replace(header, transfer_syntax=syntax, no_preamble=True), ds


#: the Patient and General Study attributes of type 2 (required, may be empty) that the derived objects copy
_TYPE_2_PATIENT_AND_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                             "ReferringPhysicianName", "StudyID", "AccessionNumber")


def source_header(path: str | os.PathLike[str]) -> pydicom.Dataset:
    """A loaded slice's header, for the DICOM outputs that reference it (SEG, SR, Encapsulated PDF).

    A bare data set (no preamble, :func:`starts_like_a_data_set`) is read as the scan read it; an empty
    SpecificCharacterSet, which means the default repertoire, is removed (highdicom rejects ''), and the patient and
    study attributes of type 2 that are missing are added empty (highdicom copies them).

    Raises:
        OSError, InvalidDicomError: the file cannot be read (any more).
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        if not starts_like_a_data_set(Path(path)):
            raise
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
        del ds.SpecificCharacterSet
    for keyword in _TYPE_2_PATIENT_AND_STUDY:  # present but empty when unknown; an anonymiser may drop them
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def read_header(path: Path) -> tuple[SliceHeader, pydicom.Dataset] | None:
    """Read one file's header; ``None`` when it is not a DICOM file (or is a DICOMDIR).

    Raises:
        StudyLoadError: the file is DICOM but its header cannot be parsed.
    """
    if path.name.upper() == "DICOMDIR":
        return None
    bare = False
    try:
        try:
            ds, offset, tag = _read_to_pixels(path, force=False)
        except InvalidDicomError:
            if not starts_like_a_data_set(path):
                return None
            bare = True
            with warnings.catch_warnings():  # a file that only starts like one makes pydicom guess charsets aloud
                warnings.simplefilter("ignore")
                ds, offset, tag = _read_to_pixels(path, force=True)
    except OSError as exc:
        raise StudyLoadError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt headers
        if _looks_like_dicom(path):
            raise StudyLoadError(f"DICOM file {path} is damaged or truncated ({read_failure(exc)}).") from exc
        return None
    if bare:
        return _bare_header(ds, path, offset, tag)
    meta = getattr(ds, "file_meta", None)
    try:  # pydicom converts the meta elements only now: a corrupt VR there raises here
        media_class = str(getattr(meta, "MediaStorageSOPClassUID", ""))
        syntax = str(getattr(meta, "TransferSyntaxUID", ""))
    except Exception as exc:  # noqa: BLE001 - NotImplementedError, ValueError ... on a damaged file meta
        raise StudyLoadError(f"DICOM file {path} is damaged ({read_failure(exc)} in its file meta "
                             "information).") from exc
    if media_class == _DICOMDIR_SOP_CLASS:
        return None
    if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
        # pydicom stops quietly at the end of a cut file: an image header without these is incomplete.
        raise StudyLoadError(f"DICOM file {path} is damaged or truncated (its header is incomplete).")
    if syntax in (pydicom.uid.DeflatedExplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian):
        # Offsets are meaningless (deflate) or the tag bytes differ (big endian): let pydicom decide later.
        has_pixels = "Rows" in ds
        offset_or_none = None
    else:
        has_pixels = tag == _PIXEL_DATA_TAG_LE
        offset_or_none = offset if has_pixels else None
    return _header_from(ds, path, offset_or_none, has_pixels), ds


def iter_files(root: Path):
    """Every regular file under ``root`` (recursively), in a stable order.

    FIFOs, sockets and devices are skipped: opening a FIFO blocks until someone writes to it.
    """
    if root.is_file():
        yield root
        return
    def unreadable(exc: OSError) -> None:  # os.walk would skip the folder silently: "no images" would be wrong
        raise StudyLoadError(f"Cannot read the folder {exc.filename or root}: {exc.strerror or exc}.") from exc

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():  # False for special files (and for links to them)
                yield path


def scan(path: str | os.PathLike[str]) -> ScanResult:
    """Headers of every DICOM file under ``path``, grouped by series (see :func:`scan_folder`)."""
    root = Path(path)
    if not root.exists():
        raise StudyLoadError(f"Study path {root} does not exist.")
    headers: dict[str, list[SliceHeader]] = {}
    infos: dict[str, StudyInfo] = {}
    problems: list[str] = []
    n_files = 0
    for file in iter_files(root):
        n_files += 1
        try:
            found = read_header(file)
        except StudyLoadError as exc:
            problems.append(str(exc))
            continue
        if found is None:
            if file.suffix.lower() == ".dcm":  # named as part of a series: a missing slice must not go unnamed
                what = ("empty" if _size(file) == 0 else
                        "not a DICOM file (no DICM preamble, nor a data set without one)")
                problems.append(f"{file.name} is named .dcm but is {what}.")
            continue
        header, ds = found
        if header.series_uid not in headers:
            headers[header.series_uid] = []
            infos[header.series_uid] = study_info(ds)
        headers[header.series_uid].append(header)
    entries = [_entry(uid, hs, infos[uid]) for uid, hs in headers.items()]
    entries.sort(key=lambda e: (e.info.study_uid, _series_number(e), e.series_uid))
    return ScanResult(entries, problems, n_files)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _series_number(entry: SeriesEntry) -> float:
    try:
        return float(entry.info.series_number)
    except ValueError:
        return float("inf")


def _entry(uid: str, headers: list[SliceHeader], info: StudyInfo) -> SeriesEntry:
    size = Counter((h.rows, h.columns) for h in headers).most_common(1)[0][0]
    n_slices = sum(h.n_frames for h in headers if h.has_pixels) or len(headers)
    return SeriesEntry(
        series_uid=uid,
        modality=info.modality,
        description=info.series_description,
        n_slices=n_slices,
        rows=size[0],
        columns=size[1],
        slice_thickness=info.slice_thickness,
        info=info,
        files=tuple(h.path for h in headers),
        headers=tuple(headers),
    )


def scan_folder(path: str | os.PathLike[str]) -> list[SeriesEntry]:
    """One entry per DICOM series under ``path`` (recursing into sub-folders).

    Reads headers only. Files that are not DICOM (no ``DICM`` preamble) and DICOMDIR
    index files are skipped quietly; damaged DICOM files are skipped with a logged warning.

    Args:
        path: a folder (or a single file).

    Returns:
        Series ordered by study, series number and UID; empty when none is found.

    Raises:
        StudyLoadError: ``path`` does not exist.
    """
    result = scan(path)
    for problem in result.problems:
        log.warning("%s", problem)
    return result.entries


def describe_files(paths: Any, limit: int = 4) -> str:
    """``"a.dcm, b.dcm and 3 more"``: file names for a warning sentence."""
    names = [Path(p).name for p in paths]
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"
