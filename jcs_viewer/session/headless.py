"""A saved session applied to a fresh analysis, for ``jcs-viewer analyze --session FILE`` (no Qt).

The reader's edited mask replaces the AI mask in every output and the numbers are
re-quantified from it; review decisions, notes and the reviewer's name come along for the
CSV and the report. The AI's own result is kept for the report's "edited" comparison.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jcs_viewer.session.measurements import Measurement
from jcs_viewer.session.store import SessionError, check_study, load_session, study_key
from jcs_viewer.session.study_session import restored_measurements
from jcs_viewer.vocabulary import counted

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.result import StudyResult


@dataclass
class EditedOutputs:
    """What ``analyze --session`` writes from: the edited result and the reader's work."""

    result: StudyResult  # StudyResult whose lesion_mask and quant come from the edited mask
    ai_result: StudyResult  # the pipeline's own result (AI mask and numbers)
    review: dict[int, str] = field(default_factory=dict)
    notes: str = ""
    reviewer: str = ""
    edited_slices: list[int] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)

    def report_kwargs(self) -> dict[str, Any]:
        """Arguments for :func:`jcs_viewer.report.write_report` after ``volume`` and the path."""
        return {"result": self.ai_result, "edited_mask": self.result.lesion_mask, "review": self.review,
                "notes": self.notes, "reviewer": self.reviewer, "measurements": self.measurements}


def apply_session_file(result: StudyResult, volume: Volume, path: str | Path) -> EditedOutputs:
    """Combine a fresh analysis of ``volume`` with the session saved in ``path``.

    Raises:
        SessionError: the file is missing or damaged, belongs to another study, or its mask
            does not fit the study.
    """
    from jcs_viewer.pipeline.quantify import quantify

    path = Path(path)
    state = load_session(path)
    check_study(state, study_key(volume), path.name)
    review = {int(z): str(d) for z, d in state.review.items() if 0 <= int(z) < volume.n_slices}
    measurements = restored_measurements(state, volume.n_slices)
    if state.edited_mask is None:
        return EditedOutputs(result, result, review, state.notes, state.reviewer, measurements=measurements)
    mask = np.asarray(state.edited_mask)
    if mask.shape != tuple(volume.array.shape) or mask.dtype != np.uint8:
        raise SessionError(f"The session file {path.name} holds a {mask.shape} mask, which does not fit the "
                           f"{tuple(volume.array.shape)} study.")
    ai = np.asarray(result.lesion_mask) > 0
    differs = (ai != (mask > 0)).reshape(mask.shape[0], -1).any(axis=1)
    edited = np.flatnonzero(differs).tolist()
    quant = quantify(volume, result.lung_mask, mask, min_lesion_voxels=result.quant.min_lesion_voxels)
    note = (f"Lesion mask edited by the reader on {counted(len(edited), 'slice')} "
            f"(session {path.name}); lesion numbers are computed from the edited mask.")
    options = dict(result.options)
    options["session"] = {"file": path.name, "edited_slices": edited, "reviewer": state.reviewer}
    edited_result = dataclasses.replace(result, lesion_mask=mask, quant=quant,
                                        messages=[*result.messages, note], options=options)
    return EditedOutputs(edited_result, result, review, state.notes, state.reviewer, edited, measurements)
