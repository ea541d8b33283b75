"""Per-study session files: edits, review states and notes, saved atomically (no Qt).

A session file lives in the user's data folder, named by a key derived from the study
(series UID and geometry), so reopening the same study finds it. Saving is debounced
by :class:`Autosaver`: every change re-arms a timer and the file is written once the
reader pauses, well within two seconds of the last change, and within five seconds of any
change however steadily the reader goes on editing.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from jcs_viewer import __version__
from jcs_viewer.atomic import atomic_path
from jcs_viewer.errors import JCSError
from jcs_viewer.settings import data_dir

SCHEMA_VERSION = 1
AUTOSAVE_DELAY_S = 1.0
AUTOSAVE_MAX_WAIT_S = 4.0  # an edit is on disk within this (plus the write) however steadily the reader edits


class SessionError(JCSError):
    """A session file could not be read or written."""


def study_key(volume) -> str:
    """A stable key for a study: series UID (or source paths) plus the volume geometry."""
    info = volume.info
    identity = info.series_uid or "|".join(str(p) for p in volume.source_files[:1] + volume.source_files[-1:])
    text = f"{identity}|{volume.shape}|{tuple(round(s, 4) for s in volume.spacing)}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def session_path(volume, folder: Path | None = None) -> Path:
    return (folder or data_dir() / "sessions") / f"{study_key(volume)}.jcssession"


@dataclass
class SessionState:
    """What a reader adds to an analysed study."""

    edited_mask: np.ndarray | None = None  # uint8 (z, y, x)
    review: dict[int, str] = field(default_factory=dict)  # slice -> "confirmed" | "rejected"
    notes: str = ""
    reviewer: str = ""
    study_key: str = ""
    saved_at: float = 0.0
    measurements: list[dict] = field(default_factory=list)  # Measurement.to_dict() each


def check_study(state: SessionState, key: str, name: str = "") -> None:
    """That ``state`` was saved for the study whose :func:`study_key` is ``key``.

    Raises:
        SessionError: the session names another study, or none (a key left empty would match any study of the
            same size; every session the app writes names its study).
    """
    what = f"The session file {name}" if name else "The session file"
    if not state.study_key:
        raise SessionError(f"{what} names no study (its study key is empty), so it cannot be matched to the one "
                           "open and was not applied.")
    if state.study_key != key:
        raise SessionError(f"{what} belongs to a different study than the one open and was not applied.")


def save_session(state: SessionState, path: Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "app_version": __version__,
        "review": {str(k): v for k, v in sorted(state.review.items())},
        "notes": state.notes,
        "reviewer": state.reviewer,
        "study_key": state.study_key,
        "saved_at": time.time(),
        "has_mask": state.edited_mask is not None,
        "measurements": list(state.measurements),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Private: a session holds a reader's edits and notes on a patient's study.
        with atomic_path(path, private=True) as tmp:
            # Level 1: a 300-slice mask compresses in ~0.3 s, keeping autosave well inside 2 s.
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                zf.writestr("session.json", json.dumps(meta, indent=1))
                if state.edited_mask is not None:
                    buf = io.BytesIO()
                    np.save(buf, np.ascontiguousarray(state.edited_mask, dtype=np.uint8))
                    zf.writestr("edited_mask.npy", buf.getvalue())
    except OSError as exc:
        raise SessionError(f"Could not save the session to {path}: {exc.strerror or exc}.") from exc
    return path


#: a session's mask is one byte a voxel: 1 GiB holds 1000 slices of 1024 x 1024, beyond any CT study
MAX_MASK_BYTES = 1 << 30
MAX_META_BYTES = 16 << 20
REVIEW_DECISIONS = ("confirmed", "rejected")


def load_session(path: Path) -> SessionState:
    """Read a session file written by :func:`save_session`.

    Every member is checked before it is trusted: sizes (declared by the zip and by the mask's own header) before
    anything is inflated or allocated, and each field's type.

    Raises:
        SessionError: no such file, a damaged or foreign file, or one from a newer version (one sentence).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(_member(zf, "session.json", MAX_META_BYTES))
            if not isinstance(meta, dict):
                raise ValueError("its session.json is not a record")
            version = meta.get("schema_version", 0)
            if not isinstance(version, int):
                raise ValueError(f"schema_version {version!r}")
            if version > SCHEMA_VERSION:
                raise SessionError(f"The session file {path.name} was written by a newer JCS Viewer "
                                   f"({meta.get('app_version')}).")
            mask = _mask(_member(zf, "edited_mask.npy", MAX_MASK_BYTES)) if meta.get("has_mask") else None
        return SessionState(edited_mask=mask, **_fields(meta))
    except SessionError:
        raise
    except FileNotFoundError as exc:
        raise SessionError(f"There is no session file at {path}.") from exc
    except IsADirectoryError as exc:
        raise SessionError(f"{path} is a folder, not a session file.") from exc
    except (OSError, KeyError, ValueError, TypeError, RecursionError, zipfile.BadZipFile) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise SessionError(f"The session file {path.name} is damaged and cannot be restored ({detail}).") from exc


def _member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """A member's bytes, refused by its declared size before it is inflated (a zip bomb)."""
    size = zf.getinfo(name).file_size
    if size > limit:
        raise ValueError(f"{name} declares {size:,} bytes, more than a session holds")
    return zf.read(name)


def _mask(data: bytes) -> np.ndarray:
    """The edited mask from its .npy bytes: uint8 (z, y, x), its header's size checked against its data."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise ValueError(f"edited_mask.npy is in .npy format {version}, which sessions are not written in")
    shape, fortran, dtype = read_header(stream)
    if dtype != np.uint8 or len(shape) != 3 or fortran:
        raise ValueError(f"edited_mask.npy holds {dtype} of shape {shape}, not a uint8 (z, y, x) mask")
    if int(np.prod(shape, dtype=np.int64)) != len(data) - stream.tell():
        raise ValueError(f"edited_mask.npy declares shape {shape} but holds {len(data) - stream.tell():,} bytes")
    return np.frombuffer(data, np.uint8, offset=stream.tell()).reshape(shape).copy()


def _fields(meta: dict) -> dict:
    """The session record's fields, each of the type it must have (ValueError / TypeError otherwise)."""
    review = meta.get("review", {})
    if not isinstance(review, dict) or not all(v in REVIEW_DECISIONS for v in review.values()):
        raise ValueError("its review is not a slice-by-slice record of confirmed or rejected")
    texts = {name: meta.get(name, "") for name in ("notes", "reviewer", "study_key")}
    wrong = [name for name, value in texts.items() if not isinstance(value, str)]
    if wrong:
        raise TypeError(f"its {wrong[0]} is not text")
    measurements = meta.get("measurements", [])
    if not isinstance(measurements, list):
        raise TypeError("its measurements are not a list")
    saved_at = meta.get("saved_at", 0.0)
    if isinstance(saved_at, bool) or not isinstance(saved_at, (int, float)):
        raise TypeError(f"saved_at {saved_at!r} is not a time")
    slices = [k for k in review if not str(k).isdigit()]
    if slices:
        raise ValueError(f"its review names slice {slices[0]!r}")
    return {"review": {int(k): v for k, v in review.items()}, **texts, "saved_at": float(saved_at),
            "measurements": list(measurements)}


class Scheduling(Protocol):
    """How the autosave waits and writes: the GUI gives its own (a Qt timer and its one worker abstraction,
    :class:`jcs_viewer.gui.workers.QtScheduling`); headless use takes :class:`ThreadScheduling`."""

    def later(self, delay_s: float, fn: Callable[[], None]) -> Callable[[], None]:
        """Run ``fn`` on the thread that owns the edited data after ``delay_s``; returns a cancel function."""

    def in_background(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` off the owner's thread."""


class ThreadScheduling:
    """:class:`Scheduling` on plain threads (no event loop): a timer thread hands ``fn`` to ``call_in_owner``
    (default: runs it on the timer thread), and writes run on a daemon thread."""

    def __init__(self, call_in_owner: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._call_in_owner = call_in_owner or (lambda fn: fn())

    def later(self, delay_s: float, fn: Callable[[], None]) -> Callable[[], None]:
        timer = threading.Timer(max(0.0, delay_s), self._call_in_owner, args=(fn,))
        timer.daemon = True
        timer.start()
        return timer.cancel

    def in_background(self, fn: Callable[[], None]) -> None:
        threading.Thread(target=fn, name="jcs-autosave", daemon=True).start()


class Autosaver:
    """Debounced background saving: call :meth:`changed` after every edit.

    A save happens once the reader pauses for ``delay_s``, and never later than ``max_wait_s`` after the
    first unsaved change, so steady editing (strokes less than ``delay_s`` apart) cannot postpone it
    forever. The snapshot is taken on the thread that owns the edited data (``call_in_owner`` hands it
    there, e.g. the GUI thread) and only the compression and writing run in the background.

    Args:
        snapshot: returns the current :class:`SessionState` as a copy (called through ``call_in_owner``).
        path: the session file.
        delay_s: quiet time before a save; each change restarts the wait, up to ``max_wait_s``.
        on_error: called with the :class:`SessionError` when a save fails.
        on_saved: called with the path after each successful save (on the saving thread).
        max_wait_s: longest time an edit waits for the disk.
        scheduling: the timer and the background writer (default: :class:`ThreadScheduling` with
            ``call_in_owner``).
        call_in_owner: for the default scheduling, ``call_in_owner(fn)`` runs ``fn`` on the owner thread, now or
            soon; default: call it directly (for owners that do not change the data while a timer thread reads it).
    """

    def __init__(self, snapshot, path: Path, delay_s: float = AUTOSAVE_DELAY_S, on_error=None,
                 on_saved=None, max_wait_s: float = AUTOSAVE_MAX_WAIT_S, scheduling: Scheduling | None = None,
                 call_in_owner=None) -> None:
        self._snapshot = snapshot
        self.path = Path(path)
        self.delay_s = delay_s
        self.max_wait_s = max(max_wait_s, delay_s)
        self._on_error = on_error
        self._on_saved = on_saved
        self._scheduling = scheduling or ThreadScheduling(call_in_owner)
        self._cancel_timer: Callable[[], None] | None = None
        self._pending_since: float | None = None  # monotonic time of the first unsaved change
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one write at a time, in change order
        self.saves = 0

    def changed(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._cancel_timer is not None:
                self._cancel_timer()
            if self._pending_since is None:
                self._pending_since = now
            wait = min(self.delay_s, self._pending_since + self.max_wait_s - now)
            self._cancel_timer = self._scheduling.later(max(0.0, wait), self._save_in_background)

    def _take(self) -> SessionState:
        with self._lock:
            if self._cancel_timer is not None:
                self._cancel_timer()
                self._cancel_timer = None
            self._pending_since = None
        return self._snapshot()

    def _save_in_background(self) -> None:
        """On the owner thread: snapshot now, compress and write on a worker thread."""
        state = self._take()
        self._scheduling.in_background(lambda: self._write(state))

    def flush(self) -> None:
        """Snapshot and save now, on the calling thread (the owner's)."""
        self._write(self._take())

    def _write(self, state: SessionState) -> None:
        with self._write_lock:
            try:
                save_session(state, self.path)
                self.saves += 1
            except SessionError as exc:
                if self._on_error is None:
                    raise
                self._on_error(exc)
                return
        if self._on_saved is not None:
            self._on_saved(self.path)

    def cancel(self) -> None:
        with self._lock:
            if self._cancel_timer is not None:
                self._cancel_timer()
                self._cancel_timer = None
            self._pending_since = None
