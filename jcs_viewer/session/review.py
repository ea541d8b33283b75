"""Per-slice review state: which flagged slices the reader confirmed or rejected.

Plain Python (no Qt): the GUI observes it through :meth:`ReviewState.subscribe`, the
report and the autosave read :meth:`ReviewState.to_dict`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any


class ReviewDecision(str, Enum):
    """The reader's verdict on one slice."""

    CONFIRMED = "confirmed"
    REJECTED = "rejected"


Listener = Callable[[int, "ReviewDecision | None"], None]


class ReviewState:
    """Review decisions for the slices the AI flagged.

    Args:
        flagged: indices of flagged slices (any order, duplicates ignored).
        scores: optional per-slice score for each flagged index, same order as ``flagged``.

    Decisions may be recorded on any slice (a reader may confirm a slice the AI missed);
    progress counts only flagged slices.
    """

    def __init__(self, flagged: Iterable[int] = (), scores: Iterable[float] | None = None) -> None:
        flagged = [int(z) for z in flagged]
        score_list = list(scores) if scores is not None else [float("nan")] * len(flagged)
        if len(score_list) != len(flagged):
            raise ValueError("scores must have one value per flagged slice")
        by_slice = dict(zip(flagged, (float(s) for s in score_list)))
        self.flagged: tuple[int, ...] = tuple(sorted(by_slice))
        self.scores: dict[int, float] = by_slice
        self._decisions: dict[int, ReviewDecision] = {}
        self._listeners: list[Listener] = []

    # --- observation -------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(slice, decision_or_None)`` after every change."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, z: int, decision: ReviewDecision | None) -> None:
        for listener in list(self._listeners):
            listener(z, decision)

    # --- decisions ---------------------------------------------------------------------
    def decision(self, z: int) -> ReviewDecision | None:
        return self._decisions.get(int(z))

    def set_decision(self, z: int, decision: ReviewDecision | str | None) -> None:
        """Record (or clear with ``None``) the decision for slice ``z``."""
        z = int(z)
        if z < 0:
            raise ValueError(f"slice index must be >= 0, got {z}")
        decision = None if decision is None else ReviewDecision(decision)
        if self._decisions.get(z) == decision:
            return
        if decision is None:
            self._decisions.pop(z, None)
        else:
            self._decisions[z] = decision
        self._emit(z, decision)

    def confirm(self, z: int) -> None:
        self.set_decision(z, ReviewDecision.CONFIRMED)

    def reject(self, z: int) -> None:
        self.set_decision(z, ReviewDecision.REJECTED)

    def clear(self, z: int) -> None:
        self.set_decision(z, None)

    def decisions(self) -> dict[int, ReviewDecision]:
        """A copy of all recorded decisions, slice -> decision."""
        return dict(sorted(self._decisions.items()))

    def slices_with(self, decision: ReviewDecision) -> list[int]:
        return [z for z, d in sorted(self._decisions.items()) if d == decision]

    # --- progress and navigation -------------------------------------------------------
    @property
    def total(self) -> int:
        return len(self.flagged)

    @property
    def reviewed(self) -> int:
        return sum(1 for z in self.flagged if z in self._decisions)

    def progress_text(self) -> str:
        """E.g. ``"12 of 31 reviewed"``."""
        return f"{self.reviewed} of {self.total} reviewed"

    def next_flagged(self, z: int, wrap: bool = True) -> int | None:
        """First flagged slice after ``z`` (wrapping to the first one), or None."""
        after = [f for f in self.flagged if f > z]
        if after:
            return after[0]
        return self.flagged[0] if wrap and self.flagged else None

    def previous_flagged(self, z: int, wrap: bool = True) -> int | None:
        """Last flagged slice before ``z`` (wrapping to the last one), or None."""
        before = [f for f in self.flagged if f < z]
        if before:
            return before[-1]
        return self.flagged[-1] if wrap and self.flagged else None

    def runs(self) -> list[tuple[int, int]]:
        """The flagged slices as runs of neighbours: (first, last) each, in order."""
        out: list[tuple[int, int]] = []
        for f in self.flagged:
            if out and f == out[-1][1] + 1:
                out[-1] = (out[-1][0], f)
            else:
                out.append((f, f))
        return out

    def next_run(self, z: int) -> int | None:
        """First slice of the next run of flagged slices after the one ``z`` is in (wrapping), or None."""
        starts = [first for first, _ in self.runs()]
        after = [s for s in starts if s > z]
        return after[0] if after else (starts[0] if starts else None)

    def previous_run(self, z: int) -> int | None:
        """First slice of the run before the one ``z`` is in (wrapping), or None; inside a run past its first
        slice, that run's first slice."""
        runs = self.runs()
        if not runs:
            return None
        before = [first for first, last in runs if last < z]
        inside = [first for first, last in runs if first < z <= last]
        if inside:
            return inside[0]
        return before[-1] if before else runs[-1][0]

    # --- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "flagged": list(self.flagged),
            "scores": [self.scores[z] for z in self.flagged],
            "decisions": {str(z): d.value for z, d in sorted(self._decisions.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReviewState":
        state = cls(data.get("flagged", ()), data.get("scores"))
        for z, value in data.get("decisions", {}).items():
            state._decisions[int(z)] = ReviewDecision(value)
        return state
