"""The analysis engine: preprocessing, staged runner (progress, cancel), lung mask,
quantification, patient decision and :class:`StudyResult`. Never imports Qt.

Importing this package does not import torch or SimpleITK; they load when a run starts.
"""

from jcs_viewer.pipeline.decision import patient_decision, slice_threshold
from jcs_viewer.pipeline.options import AnalysisOptions
from jcs_viewer.pipeline.progress import STAGES, CancelToken, ProgressEvent
from jcs_viewer.pipeline.quantify import Quantification, quantify
from jcs_viewer.pipeline.result import StudyResult
from jcs_viewer.pipeline.runner import LoadedModels, analyze, load_models

__all__ = [
    "STAGES", "AnalysisOptions", "CancelToken", "LoadedModels", "ProgressEvent", "Quantification",
    "StudyResult", "analyze", "load_models", "patient_decision", "quantify", "slice_threshold",
]
