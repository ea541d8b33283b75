"""Editable label volume with undo/redo stored as compressed deltas (no Qt).

An edit never copies the volume: each undo step keeps only the bounding box of the
voxels it changed and their previous values, zlib-compressed (ITK-SNAP's approach).
Undoing swaps the stored values with the current ones, so the same record serves redo.

Example:
    >>> layer = LabelLayer(np.zeros((4, 64, 64), np.uint8))
    >>> with layer.stroke("brush"):
    ...     layer.paint_disk(2, (32, 32), radius_px=5, value=1)
    >>> layer.undo()
    'brush'
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

Listener = Callable[[slice], None]
"""Called with the z-range that changed after every completed step, undo and redo."""

DEFAULT_UNDO_DEPTH = 100


@dataclass(frozen=True)
class Delta:
    """Previous values of one step inside its bounding box, compressed."""

    label: str
    box: tuple[slice, slice, slice]
    shape: tuple[int, int, int]
    payload: bytes

    @classmethod
    def capture(cls, label: str, data: np.ndarray, box: tuple[slice, slice, slice]) -> "Delta":
        region = np.ascontiguousarray(data[box])
        return cls(label, box, region.shape, zlib.compress(region.tobytes(), 1))

    def values(self, dtype: np.dtype) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self.payload), dtype=dtype).reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return len(self.payload)


def _changed_box(before: np.ndarray, after: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box (rows, cols) of the pixels that differ between two slices."""
    diff = before != after
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


class LabelLayer:
    """A uint8 label volume ``(z, y, x)`` edited in undoable steps.

    Args:
        data: the labels; edited in place (the layer owns it from now on).
        undo_depth: maximum number of undo steps kept; the oldest is dropped first.
    """

    def __init__(self, data: np.ndarray, undo_depth: int = DEFAULT_UNDO_DEPTH) -> None:
        if data.ndim != 3 or data.dtype != np.uint8:
            raise ValueError(f"labels must be a 3-D uint8 array, got {data.dtype} {data.shape}")
        self.data = data
        self._undo: deque[Delta] = deque(maxlen=max(1, int(undo_depth)))
        self._redo: list[Delta] = []
        self._listeners: list[Listener] = []
        self._pending: dict[int, np.ndarray] | None = None  # z -> slice before the open stroke
        self._pending_label = ""
        self.revision = 0  # bumps on every change; autosave and caches key on it

    # -- observers -----------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, zs: slice) -> None:
        self.revision += 1
        for listener in list(self._listeners):
            listener(zs)

    # -- history ---------------------------------------------------------------------
    @property
    def undo_depth(self) -> int:
        return self._undo.maxlen or 0

    @undo_depth.setter
    def undo_depth(self, depth: int) -> None:
        self._undo = deque(self._undo, maxlen=max(1, int(depth)))

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def history_nbytes(self) -> int:
        """Memory held by the undo and redo records (compressed payloads)."""
        return sum(d.nbytes for d in self._undo) + sum(d.nbytes for d in self._redo)

    def clear_history(self) -> None:
        """Forget every undo and redo step (a restored session starts a fresh history)."""
        self._undo.clear()
        self._redo.clear()

    def load(self, values: np.ndarray) -> None:
        """Replace the whole volume without an undo step and clear the history (session restore)."""
        if self._pending is not None:
            raise RuntimeError("cannot load labels while a stroke is open")
        if values.shape != self.data.shape:
            raise ValueError(f"shape {values.shape} does not match the layer's {self.data.shape}")
        self.data[...] = values
        self.clear_history()
        self._notify(slice(0, self.data.shape[0]))

    def next_undo_label(self) -> str | None:
        """Label of the step :meth:`undo` would revert ("brush", "clear slice", ...), or None."""
        return self._undo[-1].label if self._undo else None

    def next_redo_label(self) -> str | None:
        """Label of the step :meth:`redo` would re-apply, or None."""
        return self._redo[-1].label if self._redo else None

    def undo_labels(self) -> list[str]:
        """Labels of the undo steps, oldest first."""
        return [d.label for d in self._undo]

    def _swap(self, delta: Delta) -> Delta:
        current = Delta.capture(delta.label, self.data, delta.box)
        self.data[delta.box] = delta.values(self.data.dtype)
        self._notify(delta.box[0])
        return current

    def undo(self) -> str | None:
        """Revert the last step; returns its label, or None when there is nothing to undo."""
        if not self._undo:
            return None
        delta = self._undo.pop()
        self._redo.append(self._swap(delta))
        return delta.label

    def redo(self) -> str | None:
        """Re-apply the last undone step; returns its label, or None."""
        if not self._redo:
            return None
        delta = self._redo.pop()
        self._undo.append(self._swap(delta))
        return delta.label

    def _record(self, delta: Delta) -> None:
        self._undo.append(delta)
        self._redo.clear()
        self._notify(delta.box[0])

    # -- steps -----------------------------------------------------------------------
    @contextmanager
    def stroke(self, label: str = "brush") -> Iterator["LabelLayer"]:
        """Group every change made inside the block into one undo step.

        Slices are snapshotted the first time the stroke touches them, so a stroke costs
        one temporary slice copy per touched slice and, once closed, only its delta.
        """
        if self._pending is not None:
            raise RuntimeError("a stroke is already open")
        self._pending, self._pending_label = {}, label
        try:
            yield self
        finally:
            pending, self._pending = self._pending, None
            self._close_stroke(label, pending)

    def _touch(self, z: int) -> None:
        if self._pending is not None and z not in self._pending:
            self._pending[z] = self.data[z].copy()

    def _close_stroke(self, label: str, before: dict[int, np.ndarray]) -> None:
        boxes = {z: _changed_box(old, self.data[z]) for z, old in before.items()}
        boxes = {z: b for z, b in boxes.items() if b is not None}
        if not boxes:
            return
        z0, z1 = min(boxes), max(boxes) + 1
        r0 = min(b[0].start for b in boxes.values())
        r1 = max(b[0].stop for b in boxes.values())
        c0 = min(b[1].start for b in boxes.values())
        c1 = max(b[1].stop for b in boxes.values())
        box = (slice(z0, z1), slice(r0, r1), slice(c0, c1))
        # Previous values: the snapshot where a slice was touched, the current data elsewhere.
        old = self.data[box].copy()
        for z, snapshot in before.items():
            if z0 <= z < z1:
                old[z - z0] = snapshot[r0:r1, c0:c1]
        self._record(Delta(label, box, old.shape, zlib.compress(old.tobytes(), 1)))

    def replace_region(self, box: tuple[slice, slice, slice], values: np.ndarray, label: str) -> bool:
        """Write ``values`` into ``box`` as one undoable step; returns whether anything changed."""
        if np.array_equal(self.data[box], values):
            return False
        delta = Delta.capture(label, self.data, box)
        self.data[box] = values
        self._record(delta)
        return True

    def replace_all(self, values: np.ndarray, label: str) -> bool:
        """Replace the whole volume (accept the AI result, re-run) as one undoable step."""
        if values.shape != self.data.shape:
            raise ValueError(f"shape {values.shape} does not match the layer's {self.data.shape}")
        diff_z = np.flatnonzero((self.data != values).any(axis=(1, 2)))
        if diff_z.size == 0:
            return False
        box = (slice(diff_z[0], diff_z[-1] + 1), slice(None), slice(None))
        return self.replace_region(box, values[box].astype(np.uint8, copy=False), label)

    # -- drawing primitives (used inside `stroke`) -------------------------------------
    def paint_disk(
        self,
        z: int,
        center_yx: tuple[float, float],
        radius_px: tuple[float, float] | float,
        value: int,
        allowed: np.ndarray | None = None,
    ) -> None:
        """Paint a filled ellipse (a circle in mm when radii follow the pixel spacing).

        Args:
            z: slice index.
            center_yx: centre in pixel coordinates (row, column).
            radius_px: radius in pixels, or (row radius, column radius) for anisotropic pixels.
            value: label written (0 erases).
            allowed: optional boolean slice; only pixels where it is True change (HU-range limit).
        """
        if not 0 <= z < self.data.shape[0]:
            return
        ry, rx = (radius_px, radius_px) if np.isscalar(radius_px) else radius_px
        ry, rx = max(float(ry), 0.5), max(float(rx), 0.5)
        cy, cx = center_yx
        h, w = self.data.shape[1:]
        r0, r1 = max(int(np.floor(cy - ry)), 0), min(int(np.ceil(cy + ry)) + 1, h)
        c0, c1 = max(int(np.floor(cx - rx)), 0), min(int(np.ceil(cx + rx)) + 1, w)
        if r0 >= r1 or c0 >= c1:
            return
        yy, xx = np.ogrid[r0:r1, c0:c1]
        disk = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        if allowed is not None:
            disk &= allowed[r0:r1, c0:c1]
        self._paint(z, (slice(r0, r1), slice(c0, c1)), disk, value)

    def paint_mask(self, z: int, mask: np.ndarray, value: int) -> None:
        """Set ``value`` wherever the boolean slice ``mask`` is True."""
        self._paint(z, (slice(None), slice(None)), mask, value)

    def _paint(self, z: int, box: tuple[slice, slice], mask: np.ndarray, value: int) -> None:
        if self._pending is None:
            with self.stroke("paint"):
                self._paint(z, box, mask, value)
            return
        self._touch(z)
        self.data[z][box][mask] = value
