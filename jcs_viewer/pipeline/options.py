"""User-facing analysis options (what the CLI flags and the GUI dialog set)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: How a slice's score is made (see :mod:`jcs_viewer.pipeline.slice_score`).
SLICE_SCORES = ("joint", "classifier")


@dataclass
class AnalysisOptions:
    """How to run the pipeline.

    Attributes:
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        seg_weights: registry name or path of the segmentation weights (``None``: the default).
        cls_weights: registry name or path of the classification weights (``None``: the default).
        batch_size: slices per forward pass; ``None`` picks one for the device.
        segment_all_slices: with ``slice_score="classifier"``, segment every slice instead of only
            the slices the classifier calls positive (the joint score always segments every slice).
        slice_score: ``"joint"`` (classifier probability and the segmenter's lesion evidence,
            averaged) or ``"classifier"`` (the paper's flow); see
            :mod:`jcs_viewer.pipeline.slice_score`.
        threshold: patient threshold in slices; ``None`` derives it from the study
            (see :func:`jcs_viewer.pipeline.decision.slice_threshold`).
        slice_cutoff: probability at or above which a slice counts as positive.
        lesion_cutoff: lesion probability at or above which a pixel is lesion.
        amp: mixed precision (autocast) on CUDA; ignored on CPU, which always runs fp32.
        compute_cams: compute Grad-CAM activation maps (the classify stage then needs gradients).
        learned_lungs: combine the learned lung segmenter with the HU lungs when lung weights are
            installed (False: HU threshold only).
        lung_weights: registry name or path of the lung weights (``None``: the default).
    """

    device: str = "auto"
    seg_weights: str | None = None
    cls_weights: str | None = None
    batch_size: int | None = None
    segment_all_slices: bool = False
    slice_score: str = "joint"
    threshold: int | None = None
    slice_cutoff: float = 0.5
    lesion_cutoff: float = 0.5
    amp: bool = True
    compute_cams: bool = True
    learned_lungs: bool = True
    lung_weights: str | None = None

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {self.device!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.threshold is not None and self.threshold < 0:
            raise ValueError("threshold must be zero or more slices")
        if self.slice_score not in SLICE_SCORES:
            raise ValueError(f"slice_score must be one of {SLICE_SCORES}, not {self.slice_score!r}")
        for name in ("slice_cutoff", "lesion_cutoff"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in 0..1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AnalysisOptions":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
