"""Grad-CAM on the classifier's layer4, batched.

For a global-average-pool + linear head the Grad-CAM channel weights are exactly
``fc.weight[target] / (h * w)`` (the gradient of the logit w.r.t. every layer4 position), so the map
needs no backward pass (``method="analytic"``; works under ``torch.inference_mode``). The general
autograd version (``method="autograd"``) gives the same map and is kept for other heads and as a check.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jcs_viewer.models.classifier import JCSClassifier


def gradcam(model: JCSClassifier, x: torch.Tensor, target_class: int = 1, out_size: tuple[int, int] | int | None = None,
            method: str = "analytic") -> tuple[torch.Tensor, torch.Tensor]:
    """Class probability and Grad-CAM map for a batch.

    Args:
        model: a :class:`JCSClassifier` (call ``model.eval()`` first).
        x: N x 3 x H x W ImageNet-normalised input.
        target_class: class whose evidence is mapped (1 = COVID).
        out_size: (H, W) or an int for the map; defaults to the input size.
        method: ``"analytic"`` (no backward, default) or ``"autograd"``.

    Returns:
        ``(probs, cams)``: ``probs`` float32 [N], softmax probability of ``target_class``; ``cams`` float32
        [N, H, W] in [0, 1]: ReLU(sum_c weight_c * A_c), bilinearly resized, min-max normalised per image
        (all zeros where the map is flat).
    """
    if out_size is None:
        out_size = tuple(x.shape[2:])
    elif isinstance(out_size, int):
        out_size = (out_size, out_size)
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
    probs = torch.softmax(logits.float(), dim=1)[:, target_class]
    cam = F.interpolate(torch.relu(raw.float())[:, None], size=out_size, mode="bilinear", align_corners=False)[:, 0]
    return probs, normalise_per_image(cam)


def classify_explained(model: JCSClassifier, x: torch.Tensor, target_class: int = 1,
                       out_size: tuple[int, int] | int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One forward pass for everything the pipeline shows: probability, Grad-CAM, lesion attributes.

    Returns:
        ``(probs, cams, attributes)`` as :func:`gradcam` (analytic) plus N x 5 attribute
        probabilities when the model has the LA-DNN head, else None.
    """
    if out_size is None:
        out_size = tuple(x.shape[2:])
    elif isinstance(out_size, int):
        out_size = (out_size, out_size)
    with torch.no_grad():
        feats = model.features(x)
        pooled = feats.mean(dim=(2, 3))
        probs = torch.softmax(model.fc(pooled).float(), dim=1)[:, target_class]
        raw = _analytic_map(model, feats, target_class)
        attr_head = getattr(model, "attr_head", None)
        attributes = torch.sigmoid(attr_head(pooled).float()) if attr_head is not None else None
    cam = F.interpolate(torch.relu(raw.float())[:, None], size=out_size, mode="bilinear", align_corners=False)[:, 0]
    return probs, normalise_per_image(cam), attributes


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
