"""Progress events and cancellation shared by the runner, the CLI and the GUI worker.

Standard library only, so any layer (including the Qt worker) can import it cheaply.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from jcs_viewer.errors import Cancelled


@dataclass(frozen=True)
class Stage:
    """One named stage of the analysis.

    Attributes:
        name: the name its :class:`ProgressEvent` s carry.
        label: what a reader sees while it runs (the GUI's progress bar, the CLI's).
        per_slice: it reports slices done (batches); otherwise one step, 0/1 then 1/1.
    """

    name: str
    label: str
    per_slice: bool = False


#: The analysis stages in the order the runner goes through them (:mod:`jcs_viewer.pipeline.runner`).
ANALYSIS_STAGES = (
    Stage("load models", "Loading the models"),
    Stage("lungs", "Finding the lungs"),
    Stage("classify", "Classifying slices", per_slice=True),
    Stage("segment", "Segmenting lesions", per_slice=True),
    Stage("quantify", "Measuring the lesions"),
)
STAGES = tuple(stage.name for stage in ANALYSIS_STAGES)
STAGE_LABELS = {stage.name: stage.label for stage in ANALYSIS_STAGES}


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report.

    Attributes:
        stage: one of :data:`STAGES`.
        done: units finished in this stage (slices for classify/segment, steps otherwise).
        total: units in this stage (``done == total`` marks the stage finished).
        message: a short human-readable sentence, may be empty.
    """

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Completed fraction of this stage, 0..1."""
        return 1.0 if self.total <= 0 else min(1.0, max(0.0, self.done / self.total))


class CancelToken:
    """Thread-safe cancellation flag checked by the runner between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the running analysis to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`jcs_viewer.errors.Cancelled` when :meth:`cancel` was called."""
        if self._event.is_set():
            raise Cancelled("The analysis was cancelled; no result was kept.")
