"""Learned lung segmenter: an ImageNet EfficientNet-Lite encoder and a small U-Net decoder.

Why a network beside the HU threshold: consolidated and dense ground-glass lung is as bright as
soft tissue, so no air threshold keeps it, and an organ ringed by lung in one axial slice (the
diaphragm domes) looks like a hole to fill. A network trained on radiologists' lung masks that
include consolidation sees both. :mod:`jcs_viewer.pipeline.lungs` combines the two.

``forward`` returns N x 1 x H x W lung probabilities at the input size; ``forward_logits`` the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jcs_viewer.models.efficientnet import EfficientNetLite, LiteConfig
from jcs_viewer.models.layers import ConvBNReLU


@dataclass(frozen=True)
class LungConfig:
    """Configuration of :class:`LungSegNet`.

    Attributes:
        variant: EfficientNet-Lite variant of the encoder (0-4).
        decoder: channels of the decoder stages, coarsest first (strides 16, 8, 4, 2).
    """

    variant: int = 0
    decoder: tuple[int, ...] = (64, 48, 32, 24)


class LungSegNet(nn.Module):
    """Lung probability per pixel (both lungs one class; right/left is geometry, not learning)."""

    def __init__(self, config: LungConfig | None = None) -> None:
        super().__init__()
        self.config = config or LungConfig()
        self.encoder = EfficientNetLite(LiteConfig(variant=self.config.variant))
        enc = self.encoder.channels  # strides 2, 4, 8, 16, 32
        if len(self.config.decoder) != len(enc) - 1:
            raise ValueError(f"decoder needs {len(enc) - 1} widths, got {len(self.config.decoder)}")
        ups, cin = [], enc[-1]
        for skip, width in zip(reversed(enc[:-1]), self.config.decoder):
            ups.append(nn.Sequential(ConvBNReLU(cin + skip, width, 3, bias=False, norm="batch"),
                                     ConvBNReLU(width, width, 3, bias=False, norm="batch")))
            cin = width
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(cin, 1, 1)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder.features(x)
        y = feats[-1]
        for block, skip in zip(self.up, reversed(feats[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(x).float())


@dataclass(frozen=True)
class EffSegConfig:
    """Configuration of :class:`JCSSegEfficient`.

    Attributes:
        variant: EfficientNet-Lite variant of the encoder.
        top: channels the stride-32 features are projected to before the group-atrous blocks.
        decoder: decoder widths at strides 2, 4, 8, 16, 32 and the extra stride-64 level (even numbers).
    """

    variant: int = 0
    top: int = 96
    decoder: tuple[int, ...] = (32, 32, 48, 64, 96, 96)


class JCSSegEfficient(nn.Module):
    """JCS lesion segmentation on an ImageNet EfficientNet-Lite encoder.

    The JCS decoder ideas on a pretrained encoder: two group-atrous blocks (rates 1, 3, 6, 9 then
    1, 2, 3, 4; the paper's GAM) on the deepest features and one level below, the attentive top-down
    decoder (the paper's AFF) over six levels, and five deep-supervised side outputs. Same interface
    as :class:`~jcs_viewer.models.segmentation.JCSSegmentation`: ``forward`` -> N x 5 x H x W
    probabilities, channel 0 the finest side output.
    """

    def __init__(self, config: EffSegConfig | None = None) -> None:
        from jcs_viewer.models.segmentation import Decoder, GroupAtrousBlock

        super().__init__()
        self.config = config = config or EffSegConfig()
        self.encoder = EfficientNetLite(LiteConfig(variant=config.variant))
        enc = tuple(self.encoder.channels)
        if len(config.decoder) != len(enc) + 1 or any(c % 2 for c in config.decoder):
            raise ValueError(f"decoder needs {len(enc) + 1} even widths, got {config.decoder}")
        self.top = ConvBNReLU(enc[-1], config.top, 1, bias=False, norm="batch")
        self.gpd = GroupAtrousBlock(config.top, (1, 3, 6, 9))
        self.gpd1 = GroupAtrousBlock(config.top, (1, 2, 3, 4))
        self.fpn = Decoder(enc[:-1] + (config.top, config.top), tuple(config.decoder))
        self.heads = nn.ModuleList(nn.Conv2d(config.decoder[i], 1, 1) for i in range(5))

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """N x 5 x H x W side-output logits at the input size (channel 0 finest)."""
        size = x.shape[2:]
        feats = self.encoder.features(x)
        c5 = self.gpd(self.top(feats[-1]))
        c6 = self.gpd1(F.max_pool2d(c5, 2, 2, ceil_mode=True))
        dec = self.fpn(feats[:-1] + [c5, c6])
        return torch.cat([F.interpolate(h(d), size=size, mode="bilinear", align_corners=False)
                          for h, d in zip(self.heads, dec)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(x))
