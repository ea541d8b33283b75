"""Batch augmentation and input normalisation in plain torch (no torchvision).

Geometry (flips, random crop/rescale, small rotations, shifts) is one affine warp
per sample through ``affine_grid``/``grid_sample``, so image and mask move
together at the cost of one resampling. Intensity jitter (contrast, brightness,
gamma, noise) acts on grey values in [0, 1] before ImageNet normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from jcs_viewer.vocabulary import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms (all sampled uniformly per sample)."""

    scale: tuple[float, float] = (0.8, 1.25)  # zoom factor: > 1 crops in, < 1 shows more
    aspect: float = 0.1  # +- relative stretch of one axis
    rotate_deg: float = 10.0
    shift: float = 0.08  # fraction of the half-size
    hflip: float = 0.5
    vflip: float = 0.0
    contrast: float = 0.15
    brightness: float = 0.08
    gamma: float = 0.2
    noise: float = 0.01


def normalize(grey: torch.Tensor, mean: tuple[float, float, float] = IMAGENET_MEAN,
              std: tuple[float, float, float] = IMAGENET_STD) -> torch.Tensor:
    """N x 1 x H x W grey in [0, 1] -> N x 3 x H x W normalised (grey replicated; ImageNet's mean/std by default)."""
    m = torch.tensor(mean, dtype=grey.dtype, device=grey.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=grey.dtype, device=grey.device).view(1, 3, 1, 1)
    return (grey.expand(-1, 3, -1, -1) - m) / s


def input_normalisation(model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) a network's inputs are normalised with: its pretrained encoder's, else ImageNet's."""
    from jcs_viewer.models.efficientnet import LITE_MEAN, LITE_STD, EfficientNetLite

    if isinstance(getattr(model, "encoder", None), EfficientNetLite):
        return LITE_MEAN, LITE_STD
    return IMAGENET_MEAN, IMAGENET_STD


def resize(grey: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of N x C x H x W to size x size (antialiased when shrinking)."""
    if grey.shape[-2:] == (size, size):
        return grey
    shrink = grey.shape[-1] > size or grey.shape[-2] > size
    return F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def random_affine(
    grey: torch.Tensor,
    size: int,
    cfg: AugmentConfig,
    gen: torch.Generator,
    mask: torch.Tensor | None = None,
    crop: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Warp a batch (and its masks) by random flips, zoom, stretch, rotation, shift and crop.

    Args:
        grey: N x 1 x H x W in [0, 1].
        size: side length the whole image is shown at (the model's input size).
        crop: output side length; a random ``crop``-pixel window of the ``size`` view
            (training on crops costs (crop/size)^2 of a full view; the nets are fully convolutional).
        cfg: transform ranges.
        gen: random generator (seeded by the caller for reproducibility).
        mask: optional N x 1 x H x W float masks, warped identically and re-binarised.
    """
    n = grey.shape[0]
    crop = crop or size
    fov = crop / size  # fraction of the field of view the crop covers

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    # Zoom is sampled in log space so that in and out are equally likely.
    zoom = torch.exp(uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    stretch = 1.0 + uniform(-cfg.aspect, cfg.aspect)
    angle = uniform(-cfg.rotate_deg, cfg.rotate_deg) * math.pi / 180.0
    sx = torch.where(torch.rand(n, generator=gen) < cfg.hflip, -1.0, 1.0) / (zoom * stretch)
    sy = torch.where(torch.rand(n, generator=gen) < cfg.vflip, -1.0, 1.0) / (zoom / stretch)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx * fov, -sin * sy * fov
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx * fov, cos * sy * fov
    reach = cfg.shift + (1.0 - fov)
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-reach, reach), uniform(-reach, reach)
    theta = theta.to(grey.dtype)
    src = resize(grey, max(size, min(grey.shape[-1], int(size * 1.25))))
    grid = F.affine_grid(theta, [n, 1, crop, crop], align_corners=False)
    out = F.grid_sample(src, grid.to(src.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    warped_mask = None
    if mask is not None:
        m = resize(mask, src.shape[-1])
        warped_mask = (F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False) > 0.5).to(
            grey.dtype
        )
    return out, warped_mask


def jitter_intensity(grey: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Random contrast (about mid-grey), brightness, gamma and Gaussian noise; clipped to [0, 1]."""
    n = grey.shape[0]
    shape = (n, 1, 1, 1)
    contrast = 1.0 + (2 * torch.rand(shape, generator=gen) - 1) * cfg.contrast
    bright = (2 * torch.rand(shape, generator=gen) - 1) * cfg.brightness
    gamma = torch.exp((2 * torch.rand(shape, generator=gen) - 1) * cfg.gamma)
    out = ((grey - 0.5) * contrast + 0.5 + bright).clamp(0, 1) ** gamma
    if cfg.noise > 0:
        out = out + cfg.noise * torch.randn(grey.shape, generator=gen)
    return out.clamp(0, 1)


def densify_lesions(grey: torch.Tensor, masks: torch.Tensor, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Render the lesions of a random ``fraction`` of the samples as consolidation (soft-tissue dense).

    Filled alveoli are as dense as the chest wall, so consolidated lung looks like soft tissue in any
    window; the training slices hold mostly ground glass, and nets trained on them leave white lung
    out (the MedSeg test slice with both lower lobes consolidated: Dice 0.30-0.40). Inside the mask
    each pixel is raised to the image's soft-tissue level (its 90th grey percentile, with a little
    texture), bright vessels kept, the edge ramped over a few pixels; the mask stays the label.

    Args:
        grey: N x 1 x H x W grey values in [0, 1].
        masks: N x 1 x H x W lesion masks (0/1) of the same samples.
        fraction: probability that a sample with a lesion is densified.
        gen: random generator.
    """
    n = grey.shape[0]
    pick = (torch.rand(n, generator=gen) < fraction) & (masks.flatten(1).sum(1) > 0)
    if not pick.any():
        return grey
    out = grey.clone()
    out[pick] = _render_dense(grey[pick], masks[pick], gen)
    return out


def _render_dense(x: torch.Tensor, m: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``x`` with the pixels of mask ``m`` raised to its soft-tissue level (90th grey percentile, a little texture;
    bright vessels kept, the edge ramped over a few pixels)."""
    level = torch.quantile(x.flatten(1), 0.9, dim=1).view(-1, 1, 1, 1)
    texture = F.avg_pool2d(torch.randn(x.shape, generator=gen), 3, stride=1, padding=1) * 0.03
    ramp = F.avg_pool2d(m, 5, stride=1, padding=2)  # 1 inside, falling to 0 across a 5-px band at the edge
    dense = (level * (0.96 + 0.04 * torch.rand(level.shape, generator=gen)) + texture).clamp(0, 1)
    return torch.maximum(x, x + ramp * (dense - x))


#: least share of its bounding box a lung must fill to get a consolidated lobe (mid-chest lungs fill 0.52-0.71
#: of it, the crescents of the lung bases about 0.3: CT-Seg training masks, quartiles and 5 %).
LOBE_MIN_FILL = 0.5


def dependent_consolidation(lungs: torch.Tensor, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Masks of whole dependent lobes to draw consolidated: for a random ``fraction`` of the samples, the posterior
    part of one lung or both (below a tilted, gently waving line through 15-65 % of its height), unless the lung
    is a basal crescent (fills less than ``LOBE_MIN_FILL`` of its bounding box).

    The lung masks' own lesions are patches; a lobe consolidated throughout fills the lung out to the chest wall,
    and a lung net that never saw one leaves it out (MedSeg ``tr_im_0023``: both lower lobes, a quarter of them
    called lung). Drawn over a lung the net must still call lung, it learns the lung's outline from the chest wall
    and the rest of the thorax rather than from air. Anterior is up (training slices are not flipped vertically).

    Args:
        lungs: N x 1 x H x W lung masks (0/1) of the slices it is drawn on.
        fraction: probability that a sample with lung gets a consolidated lobe.
        gen: random generator.

    Returns:
        N x 1 x H x W masks (0/1) of the lung to draw dense; empty for the samples not picked.
    """
    n, _, h, w = lungs.shape
    out = torch.zeros_like(lungs)
    pick = (torch.rand(n, generator=gen) < fraction) & (lungs.flatten(1).sum(1) > 0)
    rows = torch.arange(h, dtype=torch.float32).view(h, 1)
    cols = torch.arange(w, dtype=torch.float32).view(1, w)
    for i in torch.nonzero(pick).flatten().tolist():
        lung = lungs[i, 0] > 0.5
        xs = torch.nonzero(lung)[:, 1].float()
        middle = float(xs.min() + xs.max()) / 2  # between the two lungs (or inside the only one)
        sides = [cols < middle, cols >= middle]
        choice = int(torch.randint(0, 3, (1,), generator=gen))  # right, left or both
        for k, side in enumerate(sides):
            if choice != 2 and choice != k:
                continue
            part = lung & side
            ys = torch.nonzero(part)
            if len(ys) < 50:
                continue
            top, bottom = float(ys[:, 0].min()), float(ys[:, 0].max())
            box = (bottom - top + 1) * float(ys[:, 1].max() - ys[:, 1].min() + 1)
            if len(ys) < LOBE_MIN_FILL * box:
                continue  # a basal crescent around the diaphragm dome: drawn dense, it would teach "liver is lung"
            centre = float(ys[:, 1].float().mean())
            depth = 0.15 + 0.5 * float(torch.rand(1, generator=gen))
            level = bottom - depth * (bottom - top)
            tilt = (2 * float(torch.rand(1, generator=gen)) - 1) * 0.35
            phase = float(torch.rand(1, generator=gen)) * 2 * math.pi
            period = 20 + 40 * float(torch.rand(1, generator=gen))  # pixels per wave of the line
            wave = 0.04 * (bottom - top) * torch.sin(cols / period * 2 * math.pi + phase)
            line = level + tilt * (cols - centre) + wave
            out[i, 0] = torch.maximum(out[i, 0], (part & (rows >= line)).to(out.dtype))
    return out


def consolidate_dependent(grey: torch.Tensor, lungs: torch.Tensor, fraction: float,
                          gen: torch.Generator) -> torch.Tensor:
    """``grey`` with whole dependent lobes drawn consolidated (:func:`dependent_consolidation`); labels unchanged."""
    dense = dependent_consolidation(lungs, fraction, gen)
    pick = dense.flatten(1).sum(1) > 0
    if not pick.any():
        return grey
    out = grey.clone()
    out[pick] = _render_dense(grey[pick], dense[pick], gen)
    return out
