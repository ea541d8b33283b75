"""Training losses: deep-supervised BCE + Dice (segmentation), mixup CE + attribute BCE (classification)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 − soft Dice computed over the whole batch at once (stable on lesion-free slices)."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    return 1.0 - (2.0 * inter + smooth) / (prob.sum() + target.sum() + smooth)


def deep_supervision_loss(side_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over side outputs of BCE + (1 − Dice), equal weights (JCS recipe).

    Args:
        side_logits: N x K x H x W logits, one channel per side output.
        target: N x 1 x H x W binary mask.
    """
    total = side_logits.new_zeros(())
    for k in range(side_logits.shape[1]):
        logit = side_logits[:, k : k + 1]
        total = total + F.binary_cross_entropy_with_logits(logit, target) + soft_dice_loss(logit, target)
    return total


def mixup_cross_entropy(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float,
                        w_a: torch.Tensor | None = None, w_b: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against a mixup pair: λ·CE(y_a) + (1 − λ)·CE(y_b).

    ``w_a``/``w_b`` are optional per-sample weights of each side (0 = label unknown): the loss is
    then the weighted mean, each sample's two terms weighted by their share and weight.
    """
    if w_a is None or w_b is None:
        return lam * F.cross_entropy(logits, y_a) + (1.0 - lam) * F.cross_entropy(logits, y_b)
    ce_a = F.cross_entropy(logits, y_a, reduction="none")
    ce_b = F.cross_entropy(logits, y_b, reduction="none")
    share_a, share_b = lam * w_a.to(ce_a.dtype), (1.0 - lam) * w_b.to(ce_b.dtype)
    return (share_a * ce_a + share_b * ce_b).sum() / (share_a + share_b).sum().clamp_min(1e-6)


def masked_attribute_bce(
    attr_logits: torch.Tensor, attrs: torch.Tensor, known: torch.Tensor
) -> torch.Tensor:
    """BCE of attribute logits, averaged over samples whose attributes are known.

    Args:
        attr_logits: N x 5 logits.
        attrs: N x 5 0/1 targets (ignored where unknown).
        known: N weights: 1 where the sample has lesion labels, 0 otherwise (mixup passes λ).
    """
    per_sample = F.binary_cross_entropy_with_logits(attr_logits, attrs, reduction="none").mean(dim=1)
    weight = known.to(per_sample.dtype)
    return (per_sample * weight).sum() / weight.sum().clamp_min(1.0)


def mixup_attribute_bce(
    attr_logits: torch.Tensor,
    attrs_a: torch.Tensor,
    known_a: torch.Tensor,
    attrs_b: torch.Tensor,
    known_b: torch.Tensor,
    lam: float,
) -> torch.Tensor:
    """Attribute BCE against a mixup pair, each side weighted by its share and known-ness."""
    return lam * masked_attribute_bce(attr_logits, attrs_a, known_a) + (1.0 - lam) * masked_attribute_bce(
        attr_logits, attrs_b, known_b
    )


def cam_localisation_loss(cam_logits: torch.Tensor, lesion_share: torch.Tensor, min_share: float = 0.02
                          ) -> torch.Tensor:
    """Make the classifier's own evidence map sit on the lesions (LA-DNN's masks as attention targets).

    Two terms, averaged over the images that hold a lesion (the rest add nothing):

    * pointing: ``−log`` of the spatial softmax's mass on the lesion cells, so the map's peak is a lesion;
    * spread: the share of the map's positive part (what Grad-CAM draws) outside the lesion cells and
      their 8 neighbours, so the rest of the chest (heart, wall, table) carries no evidence.

    Args:
        cam_logits: N x h x w, each cell's share of the COVID logit (``model.cam_logits``).
        lesion_share: N x h x w, the fraction of each cell covered by lesion (the mask average-pooled
            to the grid; mixup pairs already mixed in).
        min_share: a cell holding at least this much lesion counts as a lesion cell.
    """
    region = lesion_share >= min_share
    has = region.flatten(1).any(dim=1)
    if not bool(has.any()):
        return cam_logits.new_zeros(())
    flat, cells = cam_logits[has].flatten(1), region[has]
    log_p = torch.log_softmax(flat.float(), dim=1)
    pointing = -torch.logsumexp(log_p.masked_fill(~cells.flatten(1), float("-inf")), dim=1)
    near = F.max_pool2d(cells[:, None].float(), kernel_size=3, stride=1, padding=1)[:, 0].flatten(1)
    positive = torch.relu(flat.float())
    spread = (positive * (1.0 - near)).sum(dim=1) / positive.sum(dim=1).clamp_min(1e-6)
    return (pointing + spread).mean()
