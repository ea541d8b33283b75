"""Atomic file writes: every file the app writes appears whole or not at all.

Writers write a hidden temporary sibling of the target (same folder, so the final ``os.replace``
is a rename on one file system), flush it to disk, and rename it over the target. A failure or
an interruption leaves the old file (or nothing) and no temporary behind.

Permissions: outputs meant to be shared (exports, reports, results, weights, logs) get the usual
``0666 & ~umask``; ``private=True`` files (sessions, which hold a reader's edits and notes on a
patient's study) stay ``0600``, as ``mkstemp`` creates them.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _process_umask() -> int:
    """The umask, read without changing it where the OS allows (``os.umask`` alone must set one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # at import: no other thread is writing files yet
    os.umask(mask)
    return mask


_UMASK = _process_umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, private: bool = False, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed.

    Args:
        path: the target file. Its folder must exist (callers decide whether to create it).
        private: keep the file readable by its owner only (0600).
        suffix: the temporary file's ending; defaults to the target's (writers that choose a format
            by file name, such as SimpleITK or Qt, then see the right one).

    Raises:
        OSError: the temporary file cannot be created or renamed (the caller words the message).
    """
    path = Path(path)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.chmod(tmp, 0o600 if private else 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path, private=private) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, private: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), private=private)


def _flush_to_disk(path: Path) -> None:
    """fsync a file the writer has closed, so the rename never exposes unwritten data after a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
