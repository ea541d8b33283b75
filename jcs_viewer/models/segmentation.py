"""JCS segmentation networks: seg-only (VGG-16-BN) and joint (VGG-16-BN + Res2Net fused).

Structure as described in ``reference/JCS_ARCHITECTURE.md`` sections 3-4; attribute names give
the official state_dict keys. ``forward`` returns N x 5 x H x W sigmoid probabilities (channel 0,
the finest side output, is the prediction); ``forward_logits`` returns the same before the sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jcs_viewer.models.layers import ConvBNReLU, SEBlock
from jcs_viewer.models.res2net import Res2Net
from jcs_viewer.models.vgg import VGGEncoder


@dataclass(frozen=True)
class SegConfig:
    """Configuration of :class:`JCSSegmentation`; defaults are the official seg-only model.

    Attributes:
        width: multiplier on the VGG channels (64, 128, 256, 512, 512); decoder widths follow.
        vgg_blocks: 3x3 conv blocks per VGG stage (official 2, 2, 3, 3, 3).
        norm: ``"frozen"`` (official, BN as fixed buffers) or ``"batch"`` (trainable, from scratch).
        gpd_expansion: width of the atrous groups together, in multiples of C (official 2: 512 -> 1024
            split into 4 groups of 256; upstream's "expansion 4" is the group count).
        gpd_rates / gpd1_rates: dilation per group of the two group-atrous blocks.
        se_reduction: reduction of the SE block inside the group-atrous blocks (4).
        decoder_width: multiplier on the decoder widths relative to the encoder's (official 1.0).
        input_stride: stride of the first conv (official 1). 2 makes a lite model work at half
            resolution inside while still taking and returning full-size maps (heads upsample).
        joint: add the Res2Net branch and the five-stage fusion (official joint model).
        res2net_layers / res2net_width: depth and width multiplier of that branch.
    """

    width: float = 1.0
    vgg_blocks: tuple[int, ...] = (2, 2, 3, 3, 3)
    norm: str = "frozen"
    gpd_expansion: int = 2
    gpd_rates: tuple[int, ...] = (1, 3, 6, 9)
    gpd1_rates: tuple[int, ...] = (1, 2, 3, 4)
    se_reduction: int = 4
    decoder_width: float = 1.0
    input_stride: int = 1
    joint: bool = False
    res2net_layers: tuple[int, ...] = (3, 4, 23, 3)
    res2net_width: float = 1.0

    @property
    def vgg_channels(self) -> tuple[int, ...]:
        # Multiples of 8 keep the decoder's half-width laterals and the 4 atrous groups integral.
        return tuple(_round8(c * self.width) for c in (64, 128, 256, 512, 512))

    @property
    def decoder_channels(self) -> tuple[int, ...]:
        enc = self.vgg_channels
        return tuple(_round8(c * self.decoder_width) for c in enc + (enc[4],))


def _round8(c: float) -> int:
    return max(8, int(round(c / 8)) * 8)


class GroupAtrousBlock(nn.Module):
    """Official ``GPD`` (paper: GAM): 1x1 expand, grouped dilated 3x3, SE, 1x1 reduce, 3x3."""

    def __init__(self, channels: int, rates: tuple[int, ...], expansion: int = 2, se_reduction: int = 4) -> None:
        super().__init__()
        wide = channels * expansion
        if wide % len(rates):
            raise ValueError(f"{wide} expanded channels do not split into {len(rates)} atrous groups")
        self.group = wide // len(rates)
        self.expand_conv = ConvBNReLU(channels, wide, 1)
        self.reduce_conv = ConvBNReLU(wide, channels, 1)
        self.end_conv = ConvBNReLU(channels, channels, 3)
        self.se_block = SEBlock(wide, wide // se_reduction)
        self.dilation_convs = nn.ModuleList(
            nn.Conv2d(self.group, self.group, 3, padding=r, dilation=r) for r in rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(self.expand_conv(x), self.group, dim=1)
        x = torch.relu(torch.cat([conv(p) for conv, p in zip(self.dilation_convs, parts)], dim=1))
        return self.end_conv(self.reduce_conv(self.se_block(x)))


class FuseModule(nn.Module):
    """Attentive fusion (paper: AFF) of a lateral and a top-down map, each ``channels/2`` wide."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = channels + channels // 2
        self.se1 = SEBlock(channels, 1)
        self.conv1 = ConvBNReLU(channels, channels, 3)
        self.se2 = SEBlock(mid, 1)
        self.reduce_conv = ConvBNReLU(mid, channels, 1)
        self.conv2 = ConvBNReLU(channels, channels, 3)

    def forward(self, lateral: torch.Tensor, top_down: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.se1(torch.cat([lateral, top_down], dim=1)))
        x = self.se2(torch.cat([x, top_down], dim=1))
        return self.conv2(self.reduce_conv(x))


class Decoder(nn.Module):
    """Official ``ImprovedDecoder``: top-down pass over six levels with attentive fusion."""

    def __init__(self, enc_channels: tuple[int, ...], dec_channels: tuple[int, ...]) -> None:
        super().__init__()
        n = len(enc_channels)
        self.inners_a = nn.ModuleList(
            [ConvBNReLU(enc_channels[i], dec_channels[i] // 2, 1) for i in range(n - 1)]
            + [ConvBNReLU(enc_channels[-1], dec_channels[-1], 1)])
        self.inners_b = nn.ModuleList(
            ConvBNReLU(dec_channels[i + 1], dec_channels[i] // 2, 1) for i in range(n - 1))
        self.fuse = nn.ModuleList(
            [FuseModule(dec_channels[i]) for i in range(n - 1)] + [ConvBNReLU(dec_channels[-1], dec_channels[-1], 3)])

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        top = self.fuse[-1](self.inners_a[-1](feats[-1]))
        outs = [top]
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.inners_a[i](feats[i])
            top_down = F.interpolate(self.inners_b[i](top), size=lateral.shape[2:], mode="bilinear",
                                     align_corners=False)
            top = self.fuse[i](lateral, top_down)
            outs.insert(0, top)
        return outs


class FuseNet(nn.Module):
    """Joint model fusion: VGG map resized to the Res2Net map, concatenated, three 3x3 ConvBNReLU."""

    def __init__(self, vgg_channels: tuple[int, ...], res_channels: tuple[int, ...]) -> None:
        super().__init__()
        self.cat_modules = nn.ModuleList(
            ConvBNReLU(v + r, v, 3, norm="batch") for v, r in zip(vgg_channels, res_channels, strict=True))
        self.se_modules = nn.ModuleList(ConvBNReLU(v, v, 3, norm="batch") for v in vgg_channels)
        self.fuse_modules = nn.ModuleList(ConvBNReLU(v, v, 3, norm="batch") for v in vgg_channels)

    def forward(self, vgg_feats: list[torch.Tensor], res_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, (v, r) in enumerate(zip(vgg_feats, res_feats)):
            v = F.interpolate(v, size=r.shape[2:], mode="bilinear", align_corners=False)
            x = self.cat_modules[i](torch.cat([v, r], dim=1))
            out.append(self.fuse_modules[i](self.se_modules[i](x)))
        return out


class JCSSegmentation(nn.Module):
    """JCS segmentation network (seg-only, or joint when ``config.joint``).

    Input: N x 3 x H x W, ImageNet-normalised (H, W multiples of 32 recommended).
    """

    def __init__(self, config: SegConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SegConfig()
        ch = config.vgg_channels
        self.vgg16 = VGGEncoder(ch, config.vgg_blocks, config.norm, config.input_stride)
        if config.joint:
            self.res2net = Res2Net(config.res2net_layers, config.res2net_width, norm=config.norm)
            self.fuse = FuseNet(ch, self.res2net.channels)
        self.gpd = GroupAtrousBlock(ch[4], config.gpd_rates, config.gpd_expansion, config.se_reduction)
        self.gpd1 = GroupAtrousBlock(ch[4], config.gpd1_rates, config.gpd_expansion, config.se_reduction)
        dec = config.decoder_channels
        self.fpn = Decoder(ch + (ch[4],), dec)
        for i in range(5):
            self.add_module(f"cls{i + 1}", nn.Conv2d(dec[i], 1, 1))

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """N x 5 x H x W side-output logits at the input size (channel 0 finest)."""
        size = x.shape[2:]
        c1, c2, c3, c4, c5 = self.vgg16(x)
        # The decoder's level 4 is gpd(conv5), as the joint model's fusion stage 4 shows (the reference
        # describes the seg-only level 4 only as "conv5"; the key set cannot tell these apart).
        c5 = self.gpd(c5)
        c6 = self.gpd1(F.max_pool2d(c5, 2, 2))
        feats = [c1, c2, c3, c4, c5]
        if self.config.joint:
            feats = self.fuse(feats, self.res2net.forward_features(x))
        dec = self.fpn(feats + [c6])
        heads = (self.cls1, self.cls2, self.cls3, self.cls4, self.cls5)
        return torch.cat([F.interpolate(h(d), size=size, mode="bilinear", align_corners=False)
                          for h, d in zip(heads, dec)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x 5 x H x W probabilities (sigmoid of :meth:`forward_logits`), as the official model."""
        return torch.sigmoid(self.forward_logits(x))

