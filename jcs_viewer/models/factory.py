"""``build(name, **overrides)``: the official JCS networks and their lite configurations."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from jcs_viewer.models.classifier import ClsConfig, JCSClassifier
from jcs_viewer.models.effnet_cls import EffClsConfig, JCSClsEfficient
from jcs_viewer.models.lungnet import EffSegConfig, JCSSegEfficient, LungConfig, LungSegNet
from jcs_viewer.models.segmentation import JCSSegmentation, SegConfig

# name -> (family, base config). Lite models use trainable BN: they are trained from scratch on a few
# hundred images, where frozen identity statistics would leave the deep nets unnormalised.
# Lite seg: quarter width, 8 VGG convs instead of 13, first conv at stride 2 (works at half resolution,
# still takes and returns full-size maps); about 2.3 M parameters.
# Lite cls: Res2Net-v1b with one block per layer at half width (1024 layer4 channels); about 1.9 M.
ARCHITECTURES: dict[str, tuple[str, Any]] = {
    "jcs_seg": ("seg", SegConfig()),
    "jcs_joint": ("seg", SegConfig(joint=True)),
    "jcs_cls": ("cls", ClsConfig()),
    "jcs_seg_lite": ("seg", SegConfig(width=0.25, vgg_blocks=(1, 1, 2, 2, 2), norm="batch", input_stride=2)),
    "jcs_cls_lite": ("cls", ClsConfig(layers=(1, 1, 1, 1), width=0.5, norm="batch")),
    # Learned lungs: ImageNet EfficientNet-Lite0 encoder + U-Net decoder, about 3.9 M parameters.
    "lung_lite": ("lung", LungConfig()),
    # Lesions: JCS group-atrous blocks, attentive decoder and deep supervision on ImageNet EfficientNet-Lite0.
    "jcs_seg_effnet": ("seg", EffSegConfig()),
    # COVID classifier (LA-DNN attributes, lesion head) on ImageNet EfficientNet-Lite0, dilated to stride 16.
    "jcs_cls_effnet": ("cls", EffClsConfig()),
}


def config_for(name: str, **overrides: Any) -> SegConfig | ClsConfig | LungConfig | EffSegConfig | EffClsConfig:
    """The dataclass config of architecture ``name`` with field ``overrides`` applied."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    _, base = ARCHITECTURES[name]
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"{name} has no config field(s) {', '.join(sorted(unknown))}; "
                         f"fields: {', '.join(sorted(fields))}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}  # JSON lists
    return dataclasses.replace(base, **overrides)


def task_of(name: str) -> str:
    """``"seg"``, ``"cls"`` or ``"lung"``."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}")
    return ARCHITECTURES[name][0]


def build(name: str, **overrides: Any) -> nn.Module:
    """Build a JCS network with default (random / identity-BN) weights.

    Args:
        name: ``"jcs_seg"``, ``"jcs_joint"``, ``"jcs_cls"`` (official key sets), ``"jcs_seg_lite"``,
            ``"jcs_cls_lite"`` or a pretrained-encoder one (``"lung_lite"``, ``"jcs_seg_effnet"``,
            ``"jcs_cls_effnet"``).
        **overrides: fields of :class:`SegConfig` or :class:`ClsConfig`, e.g. ``attributes=True``,
            ``width=0.5``, ``layers=(2, 2, 2, 2)``.
    """
    config = config_for(name, **overrides)
    if isinstance(config, LungConfig):
        model: nn.Module = LungSegNet(config)
    elif isinstance(config, EffSegConfig):
        model = JCSSegEfficient(config)
    elif isinstance(config, EffClsConfig):
        model = JCSClsEfficient(config)
    else:
        model = JCSSegmentation(config) if isinstance(config, SegConfig) else JCSClassifier(config)
    model.arch_name = name  # type: ignore[attr-defined]
    return model
