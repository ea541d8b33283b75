"""JCS classifier: Res2Net-v1b + fc 2048->2 without bias (class 1 = COVID), optional LA-DNN head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jcs_viewer.models.res2net import Res2Net
from jcs_viewer.vocabulary import LESION_ATTRIBUTES


@dataclass(frozen=True)
class ClsConfig:
    """Configuration of :class:`JCSClassifier`; defaults are the official Res2Net-101-v1b-26w-4s.

    Attributes:
        layers: Bottle2neck blocks per layer.
        width: multiplier on stem and layer widths (official 1.0 -> 2048 features).
        base_width: Res2Net base width (26).
        scale: Res2Net scale (4).
        norm: ``"frozen"`` (official) or ``"batch"`` (trainable, lite models trained from scratch).
        num_classes: 2 (class 1 = COVID).
        attributes: add the LA-DNN head ``attr_head`` (five lesion-attribute logits). Off by
            default so official checkpoints load strictly.
        dropout: dropout before the heads while training (0 = none; the official model has none).
        lesion_head: add ``lesion_head``, a 1x1 convolution on layer4 predicting where lesions are
            (coarse lesion logits, one per layer4 cell). It is trained from segmentation masks so
            that layer4, the Grad-CAM layer, localises lesions; inference does not use it. Off by
            default (not in the official checkpoints).
        output_stride: 32 (official: a 7 x 7 Grad-CAM map at 224 px) or 16 (layer4 dilated instead of
            strided: a 14 x 14 map from the same parameters, so a stride-32 checkpoint loads strictly).
    """

    layers: tuple[int, ...] = (3, 4, 23, 3)
    width: float = 1.0
    base_width: int = 26
    scale: int = 4
    norm: str = "frozen"
    num_classes: int = 2
    attributes: bool = False
    dropout: float = 0.0
    lesion_head: bool = False
    output_stride: int = 32


class ClassifierHeads:
    """The heads every JCS classifier shares, on top of its ``features(x)`` (the Grad-CAM layer).

    The class using it provides ``features``, ``config`` (``attributes``, ``lesion_head``), ``drop``, ``fc``
    and, when configured, ``attr_head`` and ``lesion_head``.
    """

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Class logits from the Grad-CAM layer's features (global average pool, ``fc``)."""
        return self.fc(self.drop(feats.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x num_classes logits."""
        return self.head(self.features(x))

    def forward_with_attributes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N x 2 class logits, N x 5 attribute logits in :data:`~jcs_viewer.vocabulary.LESION_ATTRIBUTES` order)."""
        if not self.config.attributes:
            raise RuntimeError("this classifier was built without the attribute head (attributes=False)")
        pooled = self.drop(self.features(x).mean(dim=(2, 3)))
        return self.fc(pooled), self.attr_head(pooled)

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(class logits, attribute logits or None, N x 1 x h x w lesion logits or None) in one pass."""
        return self.heads_train(self.features(x))

    def heads_train(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """:meth:`forward_train` from the Grad-CAM layer's features (a loss on the map needs them too)."""
        pooled = self.drop(feats.mean(dim=(2, 3)))
        attrs = self.attr_head(pooled) if self.config.attributes else None
        lesions = self.lesion_head(feats) if self.config.lesion_head else None
        return self.fc(pooled), attrs, lesions

    def cam_logits(self, feats: torch.Tensor, target_class: int = 1) -> torch.Tensor:
        """N x h x w: each cell's share of the class logit (``fc`` row · features), the map Grad-CAM draws
        (up to the 1 / (h * w) of the average pool, before its ReLU)."""
        return torch.einsum("c,nchw->nhw", self.fc.weight[target_class].to(feats.dtype), feats)


class JCSClassifier(ClassifierHeads, Res2Net):
    """Res2Net-v1b trunk, global average pool of layer4, ``fc`` (no bias); keys as the official files."""

    def __init__(self, config: ClsConfig | None = None) -> None:
        config = config or ClsConfig()
        super().__init__(config.layers, config.width, config.base_width, config.scale, config.norm,
                         config.output_stride)
        self.config = config
        feat = self.channels[-1]
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(feat, config.num_classes, bias=False)
        if config.attributes:
            self.attr_head = nn.Linear(feat, len(LESION_ATTRIBUTES))
        if config.lesion_head:
            self.lesion_head = nn.Conv2d(feat, 1, kernel_size=1)

    @property
    def feature_channels(self) -> int:
        return self.channels[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """layer4 activation, N x C x h x w (the Grad-CAM layer)."""
        return self.forward_layer4(x)
