"""Read the pixels of sorted DICOM slices into one preallocated int16 volume.

Uncompressed little-endian files are read straight from the byte offset found during
the header pass (one ``readinto`` per slice, no dataset parsing). Everything else
(JPEG 2000, JPEG Lossless, JPEG-LS, RLE, big endian, deflate) goes through
``pydicom`` and its pylibjpeg decoder plugins.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from jcs_viewer.errors import StudyLoadError, is_interrupt
from jcs_viewer.io.dicom_scan import SliceHeader, read_failure

AIR_HU = -1024
_INT16_MAX = 32767
_LONG_LENGTH_VRS = {b"OB", b"OW", b"OD", b"OF", b"OL", b"OV", b"UN", b"UT", b"UC", b"UR", b"SQ"}


def _native_dtype(h: SliceHeader) -> np.dtype | None:
    """Stored-value dtype when the fast path can read this file, else ``None``."""
    if h.transfer_syntax not in (ImplicitVRLittleEndian, ExplicitVRLittleEndian) or h.pixel_offset is None:
        return None
    if h.samples_per_pixel != 1 or h.n_frames != 1 or h.bits_allocated not in (8, 16):
        return None
    kind = "i" if h.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{h.bits_allocated // 8}")


def _read_native(h: SliceHeader, out: np.ndarray) -> None:
    """Fill ``out`` (rows x columns, stored dtype) with the file's raw pixel values."""
    expected = out.nbytes
    try:
        with open(h.path, "rb") as fp:
            fp.seek(h.pixel_offset)  # type: ignore[arg-type]
            head = fp.read(8)
            if len(head) < 8:
                raise StudyLoadError(f"DICOM file {h.path} is truncated: it ends before its pixel data.")
            if h.transfer_syntax == ImplicitVRLittleEndian:
                length = struct.unpack("<I", head[4:8])[0]
            elif head[4:6] in _LONG_LENGTH_VRS:
                length = struct.unpack("<I", fp.read(4))[0]
            else:
                length = struct.unpack("<H", head[6:8])[0]
            if length == 0xFFFFFFFF:
                raise StudyLoadError(f"{h.path} has encapsulated pixel data in an uncompressed transfer syntax.")
            got = fp.readinto(memoryview(out).cast("B"))
    except OSError as exc:
        raise StudyLoadError(f"Cannot read pixel data of {h.path}: {exc.strerror or exc}.") from exc
    if min(length, got) < expected:
        raise StudyLoadError(
            f"DICOM file {h.path} is truncated: {min(length, got)} bytes of pixel data, {expected} expected "
            f"for {h.rows}x{h.columns} pixels."
        )
    if length > expected + 1:  # one byte pads an odd length; more means Rows, Columns or BitsAllocated are wrong
        raise StudyLoadError(
            f"DICOM file {h.path} has {length} bytes of pixel data, but its header (Rows {h.rows}, Columns "
            f"{h.columns}, BitsAllocated {h.bits_allocated}) describes {expected}: the image size is wrong."
        )


class _PydicomReader:
    """Decodes files with pydicom; keeps the last multi-frame file's frames for its next frame."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._frames: np.ndarray | None = None

    def __call__(self, h: SliceHeader) -> np.ndarray:
        if h.frame is None:
            return _read_with_pydicom(h)
        if self._path != h.path:
            self._frames = _read_with_pydicom(h, frames=True)
            self._path = h.path
        return self._frames[h.frame]  # type: ignore[index]


def _read_with_pydicom(h: SliceHeader, frames: bool = False) -> np.ndarray:
    """Decode one file's pixels with pydicom (compressed or unusual encodings)."""
    try:
        ds = pydicom.dcmread(h.path, force=h.no_preamble)  # a bare data set has no preamble to find
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise StudyLoadError(f"DICOM file {h.path} is damaged or truncated ({read_failure(exc)}).") from exc
    if "PixelData" not in ds:  # the scan found its Pixel Data tag: the file ends inside that element
        raise StudyLoadError(f"DICOM file {h.path} is truncated: it ends inside its (compressed) pixel data.")
    try:
        pixels = ds.pixel_array
    except BaseException as exc:  # noqa: BLE001 - decoder errors vary by plugin; Rust ones are BaseException
        if is_interrupt(exc):
            raise
        detail = " ".join(str(exc).split()).rstrip(".")  # one line, whatever the plugin wrote
        if not isinstance(exc, Exception):  # a native decoder's panic: it read past its damaged stream
            detail = f"its compressed data is damaged (the decoder stopped: {detail})"
        raise StudyLoadError(
            f"Cannot decode the pixel data of {h.path} ({_syntax_name(h.transfer_syntax)}): {detail}."
        ) from exc
    if frames:
        if pixels.ndim == 2:
            pixels = pixels[np.newaxis]
        if pixels.shape[1:] != (h.rows, h.columns) or pixels.shape[0] <= (h.frame or 0):
            raise StudyLoadError(
                f"{h.path} holds frames of shape {pixels.shape}, not {h.rows}x{h.columns} grey images.")
        return pixels
    if pixels.shape != (h.rows, h.columns):
        raise StudyLoadError(
            f"{h.path} holds pixels of shape {pixels.shape}, expected one {h.rows}x{h.columns} grey image."
        )
    return pixels


def _syntax_name(uid: str) -> str:
    """"RLE Lossless, 1.2.840.10008.1.2.5": the transfer syntax by name where pydicom knows it."""
    name = pydicom.uid.UID(uid).name if uid else ""
    return f"{name}, {uid}" if name and name != uid else f"transfer syntax {uid or 'not given'}"


def _fix_bits_stored(raw: np.ndarray, h: SliceHeader) -> None:
    """Clear (unsigned) or sign-extend (signed) bits above BitsStored, in place."""
    unused = h.bits_allocated - h.bits_stored
    if unused <= 0 or unused >= h.bits_allocated:
        return
    if h.pixel_representation == 1:
        np.left_shift(raw, unused, out=raw)
        np.right_shift(raw, unused, out=raw)  # arithmetic shift restores the sign
    else:
        np.bitwise_and(raw, (1 << h.bits_stored) - 1, out=raw)


class _SliceConverter:
    """Rescales stored values to int16 (HU for CT) with reusable scratch buffers."""

    def __init__(self, shape: tuple[int, int], is_ct: bool) -> None:
        self.floor = AIR_HU if is_ct else -32768
        self.pad_value = AIR_HU if is_ct else 0
        self.int_buf = np.empty(shape, np.int32)
        self.float_buf = np.empty(shape, np.float32)
        self.clipped_files: list[Path] = []

    def __call__(self, raw: np.ndarray, h: SliceHeader, out: np.ndarray) -> None:
        if h.slope == 1.0 and float(h.intercept).is_integer():
            values = self.int_buf
            np.add(raw, int(h.intercept), out=values, dtype=np.int32, casting="unsafe")
        else:
            values = self.float_buf
            np.multiply(raw, np.float32(h.slope), out=values, casting="unsafe")
            values += np.float32(h.intercept)
            np.rint(values, out=values)
        if h.padding is not None:
            low, high = h.padding
            values[(raw >= low) & (raw <= high)] = self.pad_value
        if values.max() > _INT16_MAX:
            self.clipped_files.append(h.path)
        # Below -1024 HU is outside the scanned field of view (padding), shown as air.
        np.clip(values, self.floor, _INT16_MAX, out=values)
        out[...] = values


def _in_place_floor(h: SliceHeader, is_ct: bool) -> int | None:
    """Stored value of -1024 HU when a slice can be read straight into the int16 volume.

    That holds for CT slices of 16-bit stored values that fit int16 (signed, or unsigned
    with at most 15 bits stored), slope 1 and an integer intercept <= 0: flooring at this
    value and then adding the intercept can never overflow int16.
    """
    dtype = _native_dtype(h)
    if not is_ct or dtype is None or dtype.itemsize != 2 or h.slope != 1.0:
        return None
    if not float(h.intercept).is_integer() or not -30000 <= h.intercept <= 0:
        return None
    if h.pixel_representation == 0 and h.bits_stored > 15:
        return None
    return AIR_HU - int(h.intercept)


def _convert_in_place(values: np.ndarray, h: SliceHeader, floor: int) -> None:
    """Stored values (already in the int16 volume) to HU, padding and below-air to -1024."""
    if h.padding is not None and h.padding[1] >= floor and h.padding[0] <= _INT16_MAX:
        low, high = max(h.padding[0], -32768), min(h.padding[1], _INT16_MAX)
        values[(values >= low) & (values <= high)] = floor
    np.maximum(values, floor, out=values)  # also covers padding stored below -1024 HU
    if h.intercept:
        np.add(values, int(h.intercept), out=values)


def read_pixels(headers: list[SliceHeader], is_ct: bool) -> tuple[np.ndarray, list[str]]:
    """Stack the slices' pixels, rescaled, into one new ``(z, y, x)`` int16 array.

    The array is allocated once and filled slice by slice, so a study occupies
    memory only once.

    Args:
        headers: the slices in their final order, all of the same size.
        is_ct: map values to HU, padding and anything below -1024 HU to -1024 (air).

    Returns:
        The volume and warnings (values clipped to the int16 range).

    Raises:
        StudyLoadError: a file is truncated, lacks pixel data or cannot be decoded.
    """
    rows, cols = headers[0].rows, headers[0].columns
    for h in headers:
        if h.rows <= 0 or h.columns <= 0:  # a header the scan could not read a size from
            raise StudyLoadError(f"DICOM file {h.path} declares no usable image size (Rows {h.rows}, "
                                 f"Columns {h.columns}).")
    volume = np.empty((len(headers), rows, cols), np.int16)
    convert = _SliceConverter((rows, cols), is_ct)
    raw_buffers: dict[np.dtype, np.ndarray] = {}
    decode = _PydicomReader()
    for z, h in enumerate(headers):
        if not h.has_pixels:
            raise StudyLoadError(f"DICOM file {h.path} has no pixel data.")
        floor = _in_place_floor(h, is_ct)
        if floor is not None:
            # Fast path: no scratch buffer, the file's bytes land in the volume itself.
            target = volume[z] if h.pixel_representation == 1 else volume[z].view(np.uint16)
            _read_native(h, target)
            _fix_bits_stored(target, h)
            _convert_in_place(volume[z], h, floor)
            continue
        dtype = _native_dtype(h)
        if dtype is not None:
            raw = raw_buffers.get(dtype)
            if raw is None:
                raw = raw_buffers[dtype] = np.empty((rows, cols), dtype)
            _read_native(h, raw)
        else:
            raw = decode(h)
            if not raw.flags.writeable or h.frame is not None:
                raw = raw.copy()
        _fix_bits_stored(raw, h)
        convert(raw, h, volume[z])
    warnings = []
    if convert.clipped_files:
        warnings.append(
            f"Values above {_INT16_MAX} were clipped in {len(convert.clipped_files)} slices "
            f"(first: {convert.clipped_files[0].name})."
        )
    return volume, warnings
