"""One study being read: the AI result, the reader's edited lesion mask, review and notes (no Qt).

The AI layer and the edited layer are kept apart: :attr:`StudySession.labels` is the edited
mask (a copy of the AI mask to start with); :attr:`StudySession.ai_result` keeps what the
pipeline produced (its mask and numbers never change under the reader's brush).

:attr:`StudySession.result` is the very result object the caller passed in, adopted by the
session: its ``lesion_mask`` becomes the edited labels (live) and its ``quant`` the numbers
re-computed after every step, while every other field (scores, CAMs, lung mask...) stays as
is. So whatever shows "the result" (overlay, summary, strip, 3-D view) shows the reader's
mask without knowing about sessions, and code holding the result object keeps its identity.
The report takes ``ai_result`` plus ``edited_mask`` (see :meth:`StudySession.report_kwargs`).

Example:
    >>> session = StudySession(volume, ai_result, autosave_path=session_path(volume))
    >>> with session.labels.stroke("brush"):
    ...     session.labels.paint_disk(40, (200, 180), 6.0, 1)
    >>> session.result.quant.lesion_volume_ml["total"]  # already includes the stroke
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.session import tools
from jcs_viewer.session.labels import DEFAULT_UNDO_DEPTH, LabelLayer
from jcs_viewer.session.live_quant import LiveQuantifier
from jcs_viewer.session.review import ReviewState
from jcs_viewer.session.measurements import Measurement
from jcs_viewer.session.store import (AUTOSAVE_DELAY_S, Autosaver, Scheduling, SessionError, SessionState,
                                      check_study, study_key)

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.result import StudyResult

ChangeListener = Callable[[slice], None]
"""Called with the z-range that changed after every step, undo, redo, restore or re-run."""


def review_from_result(result: StudyResult) -> ReviewState:
    """A fresh review state listing the result's flagged (positive) slices with their scores."""
    positive = np.asarray(result.slice_positive, dtype=bool)
    flagged = np.flatnonzero(positive)
    return ReviewState(flagged.tolist(), np.asarray(result.slice_probability, dtype=float)[flagged].tolist())


class StudySession:
    """The reader's work on one analysed study.

    Args:
        volume: the :class:`~jcs_viewer.io.volume.Volume` (HU reference and geometry).
        ai_result: the pipeline's :class:`~jcs_viewer.pipeline.result.StudyResult`; kept unchanged as
            :attr:`ai_result` (its lesion mask seen read-only). :attr:`result` is the edited view beside it:
            the same study result with the edited ``lesion_mask`` and live ``quant``.
        review: review state to use (default: one listing the result's flagged slices).
        undo_depth: undo steps kept (setting ``undo_depth``).
        autosave_path: session file; None turns autosave off.
        autosave_delay_s: quiet time after the last change before the file is written.
        on_autosave_error: called with a :class:`SessionError` when an autosave fails.
        on_autosaved: called with the path after each autosave (on the saving thread).
        scheduling: the autosave's timer and background writer (:class:`~jcs_viewer.session.store.Scheduling`);
            its timer runs on the thread that edits this session (the GUI's), so the snapshot never reads a mask
            half-way through a stroke. Default: threads.
        reviewer: the reader's name, stored in the session file.
    """

    def __init__(self, volume: Volume, ai_result: StudyResult, *, review: ReviewState | None = None,
                 undo_depth: int = DEFAULT_UNDO_DEPTH, autosave_path: Path | None = None,
                 autosave_delay_s: float = AUTOSAVE_DELAY_S,
                 on_autosave_error: Callable[[SessionError], None] | None = None, reviewer: str = "",
                 on_autosaved: Callable[[Path], None] | None = None,
                 scheduling: Scheduling | None = None) -> None:
        shape = tuple(volume.array.shape)
        if tuple(ai_result.lesion_mask.shape) != shape or tuple(ai_result.lung_mask.shape) != shape:
            raise ValueError(f"the result's masks {ai_result.lesion_mask.shape} do not match the study {shape}")
        self.volume = volume
        self.ai_result = _frozen(ai_result)  # the AI's own mask and numbers; never written to
        self.notes = ""
        self.measurements: list[Measurement] = []  # the reader's rulers and ellipse ROIs, in drawing order
        self.reviewer = reviewer
        self.study_key = study_key(volume) if hasattr(volume, "info") else ""
        self._listeners: list[ChangeListener] = []
        self._count_listeners: list[Callable[[], None]] = []
        self._measure_listeners: list[Callable[[], None]] = []
        self.labels = LabelLayer(np.ascontiguousarray(ai_result.lesion_mask, dtype=np.uint8).copy(), undo_depth)
        self._edited = np.zeros(shape[0], dtype=bool)  # per slice: differs from the AI mask
        self._quant = self._new_quantifier(ai_result)
        self._quant.update(self.labels.data, np.flatnonzero(self.labels.data.reshape(shape[0], -1).any(axis=1)))
        self._quant.recount(self.labels.data, force=True)
        self.result = dataclasses.replace(ai_result, lesion_mask=self.labels.data, quant=self._quant.quantification())
        self.review = review if review is not None else review_from_result(ai_result)
        self.review.subscribe(self._on_review)
        self.labels.add_listener(self._on_labels)
        self._dirty = False  # changed since the last save
        self.autosaver: Autosaver | None = None
        if autosave_path is not None:
            self.autosaver = Autosaver(self._snapshot_for_save, Path(autosave_path), autosave_delay_s,
                                       on_autosave_error, on_autosaved, scheduling=scheduling)

    def _new_quantifier(self, result: StudyResult) -> LiveQuantifier:
        v = self.volume
        return LiveQuantifier(v.array, np.asarray(result.lung_mask), v.spacing, getattr(v, "direction", None),
                              bool(getattr(v, "is_hu", True)), result.quant.min_lesion_voxels)

    # ------------------------------------------------------------------ observers
    def add_listener(self, listener: ChangeListener) -> None:
        """``listener(z_range)`` after every change of the edited mask (quant already updated)."""
        self._listeners.append(listener)

    def add_count_listener(self, listener: Callable[[], None]) -> None:
        """Called when a deferred 3-D lesion count lands (see :meth:`lesion_count_job`)."""
        self._count_listeners.append(listener)

    def _on_labels(self, zs: slice) -> None:
        start, stop, _ = zs.indices(self.labels.data.shape[0])
        touched = range(start, stop)
        self._quant.update(self.labels.data, touched)
        self._quant.recount(self.labels.data)
        ai = self.ai_result.lesion_mask
        for z in touched:
            self._edited[z] = not np.array_equal(self.labels.data[z], ai[z])
        self.result.quant = self._quant.quantification()
        for listener in list(self._listeners):
            listener(zs)
        self.changed()

    def _on_review(self, z: int, decision: Any) -> None:
        self.changed()

    def changed(self) -> None:
        """Something worth saving changed (edits, review, notes): re-arm the autosave."""
        self._dirty = True
        if self.autosaver is not None:
            self.autosaver.changed()

    def use_review(self, review: ReviewState) -> None:
        """Adopt ``review`` (e.g. the viewer's), carrying over the decisions recorded so far."""
        if review is self.review:
            return
        for z, decision in self.review.decisions().items():
            review.set_decision(z, decision)
        self.review.unsubscribe(self._on_review)
        self.review = review
        review.subscribe(self._on_review)

    # ------------------------------------------------------------------ queries
    @property
    def quant(self):
        """The live :class:`~jcs_viewer.pipeline.quantify.Quantification` of the edited mask."""
        return self.result.quant

    @property
    def lesion_count_stale(self) -> bool:
        """True while the 3-D lesion count waits for :meth:`lesion_count_job` (large lesion boxes)."""
        return self._quant.count_stale

    def lesion_count_job(self) -> tuple[Callable[[], int], int]:
        """``(job, revision)``: run ``job()`` on any thread, then pass both to :meth:`set_lesion_count`."""
        return self._quant.count_job(self.labels.data), self.labels.revision

    def set_lesion_count(self, count: int, revision: int) -> bool:
        """Store a count computed by a job; ignored when the mask changed since (returns False)."""
        if revision != self.labels.revision:
            return False
        self._quant.lesion_count, self._quant.count_stale = int(count), False
        self.result.quant.lesion_count = int(count)
        for listener in list(self._count_listeners):
            listener()
        return True

    def edited_slices(self) -> list[int]:
        """Slices whose edited mask differs from the AI mask, ascending."""
        return np.flatnonzero(self._edited).tolist()

    @property
    def has_edits(self) -> bool:
        return bool(self._edited.any())

    # ------------------------------------------------------------------ editing
    def add_measurement(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        self._measured()

    def remove_measurement(self, index: int) -> None:
        del self.measurements[index]
        self._measured()

    def _measured(self) -> None:
        for listener in list(self._measure_listeners):
            listener()
        self.changed()

    def add_measure_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` after a measurement was added or removed."""
        self._measure_listeners.append(listener)

    def remove_measure_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._measure_listeners:
            self._measure_listeners.remove(listener)

    def set_notes(self, text: str) -> None:
        if text != self.notes:
            self.notes = text
            self.changed()

    def accept_ai(self) -> bool:
        """Make the edited mask the AI mask again on every slice (one undoable step)."""
        return self.labels.replace_all(np.asarray(self.ai_result.lesion_mask, dtype=np.uint8), "accept AI result")

    def reset_slice_to_ai(self, z: int) -> bool:
        """Replace slice ``z`` of the edited mask by the AI's (one undoable step)."""
        return tools.reset_slice(self.labels, int(z), self.ai_result.lesion_mask)

    def apply_new_ai_result(self, result: StudyResult, keep_edits: bool) -> None:
        """Adopt a re-run's result. The caller decides what happens to manual edits (never silently).

        Args:
            result: the new :class:`StudyResult` for the same study.
            keep_edits: True keeps the reader's mask on every edited slice and takes the new AI
                mask elsewhere; False replaces the whole edited mask by the new AI mask. Either
                way the change of the edited mask is one undoable step ("re-run analysis").

        Review decisions are kept per slice; the flagged list follows the new result.
        """
        if tuple(result.lesion_mask.shape) != self.labels.data.shape:
            raise ValueError(f"the new result's mask {result.lesion_mask.shape} does not match the study")
        if result is self.result:  # the edited view came back: its AI layer is the one we keep
            result = dataclasses.replace(self.result, lesion_mask=self.ai_result.lesion_mask,
                                         quant=self.ai_result.quant)
        new_ai = np.asarray(result.lesion_mask, dtype=np.uint8)
        target = new_ai
        edited = self.edited_slices()
        if keep_edits and edited:
            target = new_ai.copy()
            target[edited] = self.labels.data[edited]
        decisions = self.review.decisions()
        self.ai_result = _frozen(result)
        self._quant = self._new_quantifier(result)
        self._quant.update(self.labels.data, range(self.labels.data.shape[0]))
        self._quant.recount(self.labels.data, force=True)
        # Edit flags after the step (compared with the new AI mask).
        self._edited[:] = (target != new_ai).reshape(len(self._edited), -1).any(axis=1)
        self.result = dataclasses.replace(result, lesion_mask=self.labels.data, quant=self._quant.quantification())
        review = review_from_result(result)
        for z, decision in decisions.items():
            review.set_decision(z, decision)
        self.review.unsubscribe(self._on_review)
        self.review = review
        review.subscribe(self._on_review)
        label = "re-run analysis (edits kept)" if keep_edits and edited else "re-run analysis"
        if not self.labels.replace_all(target, label):
            # Nothing to undo, but the AI reference changed: tell the listeners.
            self._on_labels(slice(0, self.labels.data.shape[0]))

    def report_kwargs(self) -> dict[str, Any]:
        """Arguments for :func:`jcs_viewer.report.write_report` (after ``volume`` and the path)."""
        return {"result": self.ai_result, "edited_mask": self.labels.data,
                "review": {z: d.value for z, d in self.review.decisions().items()},
                "notes": self.notes, "reviewer": self.reviewer, "measurements": list(self.measurements)}

    # ------------------------------------------------------------------ persistence
    def snapshot(self) -> SessionState:
        """What the session file holds (a copy: safe to save from another thread)."""
        return SessionState(edited_mask=self.labels.data.copy(),
                            review={z: d.value for z, d in self.review.decisions().items()},
                            notes=self.notes, reviewer=self.reviewer, study_key=self.study_key,
                            saved_at=time.time(), measurements=[m.to_dict() for m in self.measurements])

    def _snapshot_for_save(self) -> SessionState:
        self._dirty = False
        return self.snapshot()

    def restore(self, state: SessionState) -> None:
        """Bring back a saved session: edited mask (fresh undo history), review decisions, notes.

        Raises:
            SessionError: the file belongs to another study or its mask does not fit this one.
        """
        if self.study_key:  # a study without identity (made in memory) has nothing to check against
            check_study(state, self.study_key)
        if state.edited_mask is not None:
            mask = np.asarray(state.edited_mask)
            if mask.shape != self.labels.data.shape or mask.dtype != np.uint8:
                raise SessionError(f"The session's mask {mask.shape} does not fit this study "
                                   f"{self.labels.data.shape} and was not restored.")
            self.labels.load(mask)
        for z, decision in state.review.items():
            if 0 <= int(z) < self.labels.data.shape[0]:
                self.review.set_decision(int(z), decision)
        self.notes = state.notes
        self.measurements = restored_measurements(state, self.labels.data.shape[0])
        if self.measurements:
            self._measured()
        if state.reviewer and not self.reviewer:
            self.reviewer = state.reviewer

    def flush(self) -> None:
        """Write the session file now (on close); no-op without autosave."""
        if self.autosaver is not None:
            self.autosaver.flush()

    def close(self, save: bool = True) -> None:
        """Stop autosaving, writing pending changes first when ``save``."""
        if self.autosaver is None:
            return
        self.autosaver.cancel()
        if save and self._dirty:
            self.autosaver.flush()
        self.autosaver = None


def _frozen(result: StudyResult) -> Any:
    """A shallow copy of an AI result whose lesion mask is a read-only view (the session never writes it)."""
    mask = np.asarray(result.lesion_mask).view()
    mask.flags.writeable = False
    return dataclasses.replace(result, lesion_mask=mask)


def restored_measurements(state: SessionState, n_slices: int) -> list[Measurement]:
    """The session file's measurements that fit the study (a damaged entry is left out, not fatal)."""
    out = []
    for entry in state.measurements:
        try:
            measurement = Measurement.from_dict(entry)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):  # OverflowError: z 1e400
            continue
        if 0 <= measurement.z < n_slices:
            out.append(measurement)
    return out
