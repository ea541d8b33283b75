"""Res2Net-v1b (deep stem, average-pool shortcut) with configurable depth and width.

Official JCS backbone: Res2Net-101-v1b-26w-4s with frozen BN, no fc. Key names match the
released checkpoints (``conv1.0``, ``bn1``, ``layer{L}.{b}.convs.{i}`` ...).
"""

from __future__ import annotations

import torch
from torch import nn

from jcs_viewer.models.layers import make_norm


class Bottle2neck(nn.Module):
    """Res2Net bottleneck: 1x1 -> hierarchical 3x3 convs on ``scale`` groups -> 1x1, plus shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None,
                 base_width: int, scale: int, first: bool, norm: str, dilation: int = 1) -> None:
        super().__init__()
        width = planes * base_width // 64
        self.width, self.scale, self.first = width, scale, first
        self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = make_norm(norm, width * scale)
        nums = max(scale - 1, 1)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, stride, dilation, dilation=dilation, bias=False)
                                   for _ in range(nums))
        self.bns = nn.ModuleList(make_norm(norm, width) for _ in range(nums))
        # The first block of a layer pools its pass-through group to match the strided convs.
        self.pool = nn.AvgPool2d(3, stride, 1) if first and scale > 1 else None
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, 1, bias=False)
        self.bn3 = make_norm(norm, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        groups = torch.split(out, self.width, dim=1)
        outs = []
        sp = groups[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            sp = groups[i] if (i == 0 or self.first) else sp + groups[i]
            sp = self.relu(bn(conv(sp)))
            outs.append(sp)
        if self.scale > 1:
            rest = groups[len(self.convs)]
            outs.append(self.pool(rest) if self.pool is not None else rest)
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + shortcut)


class Res2Net(nn.Module):
    """Res2Net-v1b trunk. ``forward_features`` gives [stem, layer1, layer2, layer3, layer4].

    Args:
        layers: blocks per layer (101: 3, 4, 23, 3).
        width: multiplier on the stem (32/64) and layer planes (64, 128, 256, 512).
        base_width: Res2Net base width (26).
        scale: number of groups (4).
        norm: ``"frozen"`` (official) or ``"batch"``.
        output_stride: 32 (official) or 16: layer4 keeps layer3's resolution and dilates its later blocks
            instead of downsampling (DeepLab), so its map is twice as fine with the same parameters.
    """

    def __init__(self, layers: tuple[int, ...] = (3, 4, 23, 3), width: float = 1.0, base_width: int = 26,
                 scale: int = 4, norm: str = "frozen", output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, not {output_stride}")
        stem = _scaled(32, width)
        self.inplanes = _scaled(64, width)
        self.base_width, self.scale, self.norm = base_width, scale, norm
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, stem, 3, 2, 1, bias=False), make_norm(norm, stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, stem, 3, 1, 1, bias=False), make_norm(norm, stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, self.inplanes, 3, 1, 1, bias=False),
        )
        self.bn1 = make_norm(norm, self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes = [_scaled(p, width) for p in (64, 128, 256, 512)]
        self.channels = (self.inplanes,) + tuple(p * Bottle2neck.expansion for p in planes)
        self.layer1 = self._make_layer(planes[0], layers[0], 1)
        self.layer2 = self._make_layer(planes[1], layers[1], 2)
        self.layer3 = self._make_layer(planes[2], layers[2], 2)
        self.layer4 = self._make_layer(planes[3], layers[3], 2 if output_stride == 32 else 1,
                                       dilation=1 if output_stride == 32 else 2)

    def _make_layer(self, planes: int, blocks: int, stride: int, dilation: int = 1) -> nn.Sequential:
        out = planes * Bottle2neck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            # v1b "avg-down" shortcut: average pool, then a stride-1 1x1 conv.
            downsample = nn.Sequential(
                nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(self.inplanes, out, 1, bias=False),
                make_norm(self.norm, out),
            )
        mods = [Bottle2neck(self.inplanes, planes, stride, downsample, self.base_width, self.scale, True, self.norm)]
        self.inplanes = out
        # The first block keeps the incoming dilation (1), the rest dilate (torchvision's convention).
        mods += [Bottle2neck(out, planes, 1, None, self.base_width, self.scale, False, self.norm, dilation)
                 for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Deep stem up to bn1 + ReLU (stride 2, before the max-pool)."""
        return self.relu(self.bn1(self.conv1(x)))

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x0 = self.stem(x)
        x1 = self.layer1(self.maxpool(x0))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return [x0, x1, x2, x3, x4]

    def forward_layer4(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.stem(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(x)


def _scaled(channels: int, width: float) -> int:
    """Channels times a width multiplier, rounded to a multiple of 4 (at least 8)."""
    return max(8, int(round(channels * width / 4)) * 4)
