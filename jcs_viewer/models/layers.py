"""Small building blocks shared by the JCS networks.

Names of attributes follow the official JCS code (``conv``, ``bn``, ``linear1`` ...) because
the state_dict keys of the released checkpoints are derived from them.
"""

from __future__ import annotations

import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms, all stored as buffers.

    Matches the official JCS layer exactly: ``y = x * w / sqrt(var) + (b - mean * w / sqrt(var))``
    with **no epsilon**, and no ``num_batches_tracked``.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:  # noqa: ANN001
        # ImageNet Res2Net files carry a meaningless counter for every BN; drop it.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * self.running_var.rsqrt()
        shift = self.bias - self.running_mean * scale
        # Cast to the activation dtype so autocast (fp16/bf16) stays in half precision.
        return x * scale.to(x.dtype).view(1, -1, 1, 1) + shift.to(x.dtype).view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps=0 (frozen)"


def make_norm(kind: str, channels: int) -> nn.Module:
    """``"frozen"`` (official checkpoints) or ``"batch"`` (trainable, for lite models trained from scratch)."""
    if kind == "frozen":
        return FrozenBatchNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm kind {kind!r}; expected 'frozen' or 'batch'")


class ConvBNReLU(nn.Module):
    """Conv (bias on by default, as upstream) -> optional norm -> optional ReLU.

    Key names: ``conv.weight``, ``conv.bias``, ``bn.*``.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, padding: int | None = None,
                 dilation: int = 1, bias: bool = True, norm: str | None = None, relu: bool = True) -> None:
        super().__init__()
        if padding is None:
            padding = dilation * (kernel // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation=dilation, bias=bias)
        self.bn = make_norm(norm, out_ch) if norm else None
        self.act = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


class SEBlock(nn.Module):
    """Squeeze-and-excitation: global mean -> Linear -> ReLU -> Linear -> sigmoid -> channel scale."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(channels, hidden)
        self.linear2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3))
        w = torch.sigmoid(self.linear2(torch.relu(self.linear1(w))))
        return x * w[:, :, None, None].to(x.dtype)
