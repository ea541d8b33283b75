"""Small convolutional heads on a trunk cut's feature maps: a partner to measure beside the shipped classifier.

A linear probe of the cut trunk's *pooled* features (``python -m jcs_viewer.train.ct_trunk --cut-after 2``) throws
away where in the image the evidence sits. A head of two small convolutions on the unpooled maps, mean- and
max-pooled, keeps it at the cost of the same trunk pass (about 9 ms an image at 112 px on two cores); trained
only on cached maps of augmented views, a head fits in about a minute, so several seeds are averaged. ``ct_trunk
--map-heads N`` measures it; the figures are in ``weights/README.md``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jcs_viewer.train.augment import AugmentConfig, jitter_intensity, random_affine
from jcs_viewer.train.metrics import auc


class MapHead(nn.Module):
    """Feature maps [N, C, h, w] -> COVID logits [N]: standardised per channel (constants of the training maps),
    a 1 x 1 and a 3 x 3 convolution of ``width`` channels, mean and max pooled, one linear layer."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, width: int = 64) -> None:
        super().__init__()
        channels = mean.numel()
        self.register_buffer("mean", mean.reshape(1, channels, 1, 1).float())
        self.register_buffer("std", std.reshape(1, channels, 1, 1).float())
        self.convs = nn.Sequential(
            nn.Dropout2d(0.2),
            nn.Conv2d(channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        )
        self.fc = nn.Linear(2 * width, 1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        h = self.convs((maps.float() - self.mean) / self.std)
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)
        return self.fc(F.dropout(pooled, 0.3, self.training)).squeeze(1)


@torch.inference_mode()
def view_maps(maps_of: nn.Module, images: np.ndarray, *, views: int = 2, augment: AugmentConfig | None = None,
              seed: int = 0, batch: int = 16) -> np.ndarray:
    """Maps [N, V, C, h, w] (float16) of 8-bit images [N, S, S]: view 0 the image, view 1 its mirror, the other
    ``views - 2`` drawn through ``augment`` (geometry and intensity). ``maps_of`` takes grey images scaled to 0-1."""
    if views > 2 and augment is None:
        raise ValueError("Views beyond the image and its mirror need an augmentation.")
    gen, size, out = torch.Generator().manual_seed(seed), images.shape[-1], []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).float().div_(255.0)[:, None]
        drawn = [x, x.flip(-1)]
        for _ in range(views - 2):
            warped, _ = random_affine(x, size, augment, gen)
            drawn.append(jitter_intensity(warped, augment, gen))
        out.append(torch.stack([maps_of(v) for v in drawn], dim=1).half().numpy())
    return np.concatenate(out)


@torch.no_grad()
def head_scores(head: MapHead, maps: np.ndarray, batch: int = 64) -> np.ndarray:
    """Each image's logit: ``head`` on each of its views' maps [N, V, C, h, w], averaged."""
    head.eval()
    x = torch.from_numpy(maps)
    return np.concatenate([torch.stack([head(part[:, v]) for v in range(x.shape[1])], 1).mean(1).numpy()
                           for part in x.split(batch)])


def fit_map_head(maps: np.ndarray, labels: np.ndarray, val_maps: np.ndarray, val_labels: np.ndarray, *,
                 seed: int = 0, epochs: int = 40, lr: float = 1e-2, width: int = 64, batch: int = 32
                 ) -> tuple[MapHead, int, float]:
    """A :class:`MapHead` trained on maps [N, V, C, h, w] (each step one random view of each image), the epoch
    with the best validation AUC kept. AdamW (weight decay 0.05), labels smoothed by 0.1.

    Returns:
        The head, its epoch (1-based) and its validation AUC.
    """
    torch.manual_seed(seed)  # the head's initialisation and dropout
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(maps), torch.from_numpy(np.asarray(labels, np.float32)) * 0.9 + 0.05
    plain = x[:, :2].float()  # the image and its mirror: the statistics the head standardises with
    head = MapHead(plain.mean((0, 1, 3, 4)), plain.std((0, 1, 3, 4)).clamp_min(1e-4), width)
    del plain
    optim = torch.optim.AdamW(head.parameters(), lr, weight_decay=0.05)
    best: tuple[float, int, dict] = (-1.0, 0, {})
    for epoch in range(1, epochs + 1):
        head.train()
        for index in torch.randperm(len(x), generator=gen).split(batch):
            view = torch.randint(0, x.shape[1], (len(index),), generator=gen)
            loss = F.binary_cross_entropy_with_logits(head(x[index, view]), y[index])
            optim.zero_grad()
            loss.backward()
            optim.step()
        val = auc(head_scores(head, val_maps), val_labels)
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(head.state_dict()))
    head.load_state_dict(best[2])
    return head.eval(), best[1], best[0]
