"""Grad-CAM on the classifier's layer4, batched.

For a global-average-pool + linear head the Grad-CAM channel weights are exactly
``fc.weight[target] / (h * w)`` (the gradient of the logit w.r.t. every layer4 position), so the map
needs no backward pass (``method="analytic"``; works under ``torch.inference_mode``). The general
autograd version (``method="autograd"``) gives the same map and is kept for other heads and as a check.

``mirror=True`` is left-right test-time augmentation: each image is also read mirrored, the two
probabilities averaged and the mirrored map (before its ReLU) flipped back and averaged with the
first. The mirrored pass runs after the first, so peak memory stays that of one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jcs_viewer.models.classifier import JCSClassifier


def gradcam(model: JCSClassifier, x: torch.Tensor, target_class: int = 1, out_size: tuple[int, int] | int | None = None,
            method: str = "analytic", mirror: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probability and Grad-CAM map for a batch.

    Args:
        model: a :class:`JCSClassifier` (call ``model.eval()`` first).
        x: N x 3 x H x W ImageNet-normalised input.
        target_class: class whose evidence is mapped (1 = COVID).
        out_size: (H, W) or an int for the map; defaults to the input size.
        method: ``"analytic"`` (no backward, default) or ``"autograd"``.
        mirror: also read each image left-right mirrored and average (see the module note).

    Returns:
        ``(probs, cams)``: ``probs`` float32 [N], softmax probability of ``target_class``; ``cams`` float32
        [N, H, W] in [0, 1]: ReLU(sum_c weight_c * A_c), bilinearly resized, min-max normalised per image
        (all zeros where the map is flat).
    """
    out_size = _size(x, out_size)

    def read(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _probs_and_raw(model, images, target_class, method)

    probs, raw = mirror_average(read, x) if mirror else read(x)
    return probs, _to_map(raw, out_size)


def _probs_and_raw(model: JCSClassifier, x: torch.Tensor, target_class: int, method: str
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probability [N] and Grad-CAM's weighted sum before its ReLU [N, h, w]."""
    if method == "analytic":
        with torch.no_grad():
            feats = model.features(x)
            logits = model.head(feats)
            raw = _analytic_map(model, feats, target_class)
    elif method == "autograd":
        if torch.is_inference_mode_enabled():
            raise RuntimeError("autograd Grad-CAM cannot run under torch.inference_mode; use method='analytic' "
                               "or inference_context(device, grad=True)")
        with torch.enable_grad():
            feats = model.features(x)
            if not feats.requires_grad:  # frozen trunk: make the activation a leaf we can differentiate
                feats = feats.detach().requires_grad_(True)
            logits = model.head(feats)
            # Samples are independent in eval mode, so the gradient of the sum is per-sample.
            (grads,) = torch.autograd.grad(logits[:, target_class].sum(), feats)
        weights = grads.mean(dim=(2, 3))
        raw = torch.einsum("nc,nchw->nhw", weights, feats.detach())
        logits = logits.detach()
    else:
        raise ValueError(f"unknown Grad-CAM method {method!r}")
    return torch.softmax(logits.float(), dim=1)[:, target_class], raw


def classify_explained(model: JCSClassifier, x: torch.Tensor, target_class: int = 1,
                       out_size: tuple[int, int] | int | None = None, mirror: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One forward pass (two with ``mirror``) for everything the pipeline shows: probability, Grad-CAM,
    lesion attributes.

    Returns:
        ``(probs, cams, attributes)`` as :func:`gradcam` (analytic) plus N x 5 attribute
        probabilities when the model has the LA-DNN head, else None.
    """
    out_size = _size(x, out_size)

    def read(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return _explain(model, images, target_class)

    probs, raw, attributes = mirror_average(read, x) if mirror else read(x)
    return probs, _to_map(raw, out_size), attributes


def class_probability(model: torch.nn.Module, x: torch.Tensor, target_class: int = 1, mirror: bool = False
                      ) -> torch.Tensor:
    """Softmax probability of ``target_class`` [N], averaged with the mirrored image's when ``mirror``."""
    def read(images: torch.Tensor) -> tuple[torch.Tensor]:
        with torch.no_grad():
            return (torch.softmax(model(images).float(), dim=1)[:, target_class],)

    return (mirror_average(read, x) if mirror else read(x))[0]


def _explain(model: JCSClassifier, x: torch.Tensor, target_class: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    with torch.no_grad():
        feats = model.features(x)
        pooled = feats.mean(dim=(2, 3))
        probs = torch.softmax(model.fc(pooled).float(), dim=1)[:, target_class]
        raw = _analytic_map(model, feats, target_class)
        attr_head = getattr(model, "attr_head", None)
        attributes = torch.sigmoid(attr_head(pooled).float()) if attr_head is not None else None
    return probs, raw, attributes


def mirror_average(read, x: torch.Tensor) -> tuple:
    """``read(x)`` averaged with ``read`` of the left-right mirror of ``x``; outputs with a spatial layout
    (3-D: maps) are flipped back first, ``None`` stays ``None``."""
    first = read(x)
    second = read(torch.flip(x, dims=(-1,)))
    return tuple(None if a is None else (a.float() + (torch.flip(b, dims=(-1,)) if a.dim() == 3 else b).float()) / 2
                 for a, b in zip(first, second))


def _size(x: torch.Tensor, out_size: tuple[int, int] | int | None) -> tuple[int, int]:
    if out_size is None:
        return tuple(x.shape[2:])
    return (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)


def _to_map(raw: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """ReLU, bilinear resize to ``out_size``, per-image min-max: the map shown."""
    cam = F.interpolate(torch.relu(raw.float())[:, None], size=out_size, mode="bilinear", align_corners=False)[:, 0]
    return normalise_per_image(cam)


def _analytic_map(model: JCSClassifier, feats: torch.Tensor, target_class: int) -> torch.Tensor:
    """Grad-CAM's weighted sum for a global-average-pool + linear head: weights are fc's row / (h * w)."""
    return model.cam_logits(feats, target_class) / (feats.shape[2] * feats.shape[3])


def normalise_per_image(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each [H, W] map of an N x H x W batch to [0, 1]; flat maps become zeros."""
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.min(dim=1).values[:, None, None]
    span = flat.max(dim=1).values[:, None, None] - lo
    ok = span > 1e-12 * torch.clamp(lo.abs(), min=1.0)
    return torch.where(ok, (maps - lo) / torch.where(ok, span, torch.ones_like(span)), torch.zeros_like(maps))
