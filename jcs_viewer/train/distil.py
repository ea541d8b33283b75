"""Distillation targets for the classifier: a stronger teacher's view of each COVID-CT training image.

The teacher is the CT trunk's probe (:mod:`jcs_viewer.train.ct_trunk`, ``--teacher-out``), too large to ship; its
cross-fitted logits and pooled features are written once and read here. ``jcs-viewer train cls --distil NPZ``
then adds two terms to the classifier's loss on the COVID-CT part of each batch:

* the teacher's COVID probability as a soft target (Hinton et al. 2015), its logits Platt-scaled on the training
  images first (cross-fitted, so honest) so that the target is a calibrated probability, not the probe's confidence;
* with ``--distil-features W``, the student's pooled features, through a linear projector used in training only,
  pointed at the teacher's standardised features (cosine; FitNets-style representation transfer), so that the
  student learns more of the teacher than one number per image.

Mixup mixes the targets with the same λ as the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jcs_viewer.errors import StudyLoadError


def teacher_keys(images) -> list[str]:
    """``label/name`` of each image of a :class:`~jcs_viewer.train.datasets.ClsSet` (names repeat across labels)."""
    return [f"{label}/{name}" for label, name in zip(images.labels, images.names)]


@dataclass
class TeacherTargets:
    """Per training image, in the training set's order: the soft COVID target and the standardised features."""

    probability: torch.Tensor  # [N]
    features: torch.Tensor  # [N, D]

    @classmethod
    def load(cls, path: Path, keys: list[str], labels: np.ndarray) -> "TeacherTargets":
        """The targets of the images ``keys`` (``label/name``, :func:`teacher_keys`).

        Raises:
            StudyLoadError: the file lacks one of the images (it was written for another training set).
        """
        with np.load(path) as data:
            where = {key: k for k, key in enumerate(data["keys"].tolist())}
            missing = [key for key in keys if key not in where]
            if missing:
                raise StudyLoadError(f"The teacher file {path} has no target for {missing[0]} "
                                     f"({len(missing)} training images missing).")
            order = [where[key] for key in keys]
            logits, features = data["logits"][order].astype(np.float64), data["features"][order]
        scale, shift = platt_scaling(logits, np.asarray(labels, np.float64))
        probability = 1.0 / (1.0 + np.exp(-(scale * logits + shift)))
        features = (features - features.mean(0)) / features.std(0).clip(1e-6)
        return cls(torch.from_numpy(probability).float(), torch.from_numpy(features).float())


def platt_scaling(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` such that ``sigmoid(a * logit + b)`` is calibrated on these labels: a 1-D logistic regression (the
    probe's fit, its L2 penalty made negligible)."""
    from jcs_viewer.train.ct_trunk import fit_probe

    layer = fit_probe(np.asarray(logits, np.float64)[:, None, None], np.asarray(labels), c=1e6)
    return float(layer.weight), float(layer.bias)


def soft_target_loss(logits: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of two-class ``logits`` [N, 2] against a COVID probability [N] (mean over the batch)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(probability * log_p[:, 1] + (1.0 - probability) * log_p[:, 0]).mean()


def feature_loss(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − cosine similarity of projected student features and the teacher's, averaged over the batch."""
    return (1.0 - F.cosine_similarity(projected.float(), target, dim=1)).mean()
