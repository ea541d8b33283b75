"""VGG-16-BN encoder of the JCS segmentation network (frozen BN, conv5 at stride 8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jcs_viewer.models.layers import ConvBNReLU


class VGGEncoder(nn.Module):
    """Five stages of 3x3 ConvBNReLU blocks named ``conv{stage}_{index}``.

    As upstream, pool1-pool3 halve the resolution and pool4 is skipped, so conv5 reads conv4 at
    stride 8. Returns the last feature of each stage.

    Args:
        channels: output channels of stages 1-5 (official: 64, 128, 256, 512, 512).
        blocks: conv blocks per stage (official: 2, 2, 3, 3, 3).
        norm: ``"frozen"`` (official) or ``"batch"``.
        input_stride: stride of conv1_1 (official 1; 2 for lite models working at half resolution).
    """

    def __init__(self, channels: tuple[int, ...] = (64, 128, 256, 512, 512),
                 blocks: tuple[int, ...] = (2, 2, 3, 3, 3), norm: str = "frozen", input_stride: int = 1) -> None:
        super().__init__()
        self.stage_names: list[list[str]] = []
        in_ch = 3
        for stage, (out_ch, n) in enumerate(zip(channels, blocks, strict=True), start=1):
            names = []
            for j in range(1, n + 1):
                name = f"conv{stage}_{j}"
                stride = input_stride if (stage, j) == (1, 1) else 1
                self.add_module(name, ConvBNReLU(in_ch, out_ch, 3, stride=stride, norm=norm))
                names.append(name)
                in_ch = out_ch
            self.stage_names.append(names)
        self.channels = tuple(channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage, names in enumerate(self.stage_names):
            if 1 <= stage <= 3:  # pool1..pool3; conv5 reads conv4 directly (no pool4)
                x = F.max_pool2d(x, 2, 2)
            for name in names:
                x = getattr(self, name)(x)
            feats.append(x)
        return feats
