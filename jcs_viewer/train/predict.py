"""Batched inference on 8-bit grey images, preprocessed exactly as in training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from jcs_viewer.models.gradcam import class_probability, mirror_average
from jcs_viewer.train.augment import IMAGENET_MEAN, IMAGENET_STD, input_normalisation, normalize
from jcs_viewer.train.datasets import _resize_u8


def _to_input(images: list[np.ndarray], size: int, norm=(IMAGENET_MEAN, IMAGENET_STD)) -> torch.Tensor:
    batch = np.stack([img if img.shape == (size, size) else _resize_u8(img, size) for img in images])
    return normalize(torch.from_numpy(batch).float().div_(255.0).unsqueeze(1), *norm)


@torch.inference_mode()
def predict_seg(model: torch.nn.Module, images: list[np.ndarray], size: int, batch: int = 4) -> list[np.ndarray]:
    """Lesion probability (side output 0) per image, resized back to the image's own shape."""
    model.eval()
    norm = input_normalisation(model)
    probs: list[np.ndarray] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        logits = model.forward_logits(_to_input(chunk, size, norm).contiguous(memory_format=torch.channels_last))[:, :1]
        for img, logit in zip(chunk, logits):
            prob = torch.sigmoid(logit.float()).unsqueeze(0)
            if img.shape != (size, size):
                prob = F.interpolate(prob, size=img.shape, mode="bilinear", align_corners=False)
            probs.append(prob[0, 0].numpy())
    return probs


@torch.inference_mode()
def predict_cls(
    model: torch.nn.Module, images: list[np.ndarray], size: int, batch: int = 32, mirror: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """(COVID probability per image, N x 5 attribute probabilities or None); ``mirror``: each averaged with
    the left-right mirrored image's, as the app reads weights with ``test_mirror``."""
    model.eval()
    probs, attrs = [], []
    with_attrs = bool(getattr(getattr(model, "config", None), "attributes", False))
    norm = input_normalisation(model)

    def read(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if with_attrs:
            logits, attr_logits = model.forward_with_attributes(x)
            return torch.softmax(logits.float(), dim=1)[:, 1], torch.sigmoid(attr_logits.float())
        return class_probability(model, x), None

    for start in range(0, len(images), batch):
        x = _to_input(images[start : start + batch], size, norm).contiguous(memory_format=torch.channels_last)
        prob, attr = mirror_average(read, x) if mirror else read(x)
        probs.append(prob.numpy())
        if attr is not None:
            attrs.append(attr.numpy())
    return np.concatenate(probs), (np.concatenate(attrs) if attrs else None)
