"""JCS networks (official and lite configurations), checkpoint loading, weights registry, Grad-CAM.

Plain torch, no torchvision. Importing this package imports torch.

- ``build(name, **overrides)``: ``jcs_seg``, ``jcs_joint``, ``jcs_cls`` (official key sets),
  ``jcs_seg_lite``, ``jcs_cls_lite`` (same classes, smaller :class:`SegConfig` / :class:`ClsConfig`).
  Segmentation: ``forward`` -> N x 5 x H x W sigmoid probabilities, ``forward_logits`` -> logits,
  channel 0 is the prediction. Classifier: ``forward`` -> N x 2 logits (class 1 = COVID),
  ``forward_with_attributes`` with ``attributes=True`` -> (logits, N x 5 in the order
  of :data:`jcs_viewer.vocabulary.LESION_ATTRIBUTES`).
- ``gradcam(model, x)`` -> (class-1 probabilities [N], maps [N, H, W] in [0, 1]).
- ``load_official_checkpoint(path, kind)``: strict, ``weights_only`` loading of the released ``.pth``.
- ``load(name_or_path, device)``, ``list_weights``, ``get_weights``, ``default_weights``: the registry
  (``weights/manifest.json``, see :mod:`jcs_viewer.models.registry` for the schema and HU windowing).
- ``resolve_device``, ``inference_context``, ``prepare_model``, ``prepare_input``: CPU/CUDA, AMP, channels-last.
"""

from jcs_viewer.models.checkpoints import detect_kind, load_official_checkpoint
from jcs_viewer.models.classifier import ClsConfig, JCSClassifier
from jcs_viewer.models.device import inference_context, prepare_input, prepare_model, resolve_device
from jcs_viewer.models.factory import ARCHITECTURES, build, config_for, task_of
from jcs_viewer.models.gradcam import gradcam
from jcs_viewer.models.inference import fold_batchnorm
from jcs_viewer.models.layers import FrozenBatchNorm2d
from jcs_viewer.models.registry import (
    WeightsEntry,
    add_manifest_entry,
    add_weights_dir,
    default_weights,
    get_weights,
    list_weights,
    load,
    save_weights,
    sha256_of,
    weights_dirs,
)
from jcs_viewer.models.segmentation import JCSSegmentation, SegConfig

__all__ = [
    "ARCHITECTURES", "add_manifest_entry", "add_weights_dir",
    "fold_batchnorm", "sha256_of", "ClsConfig", "FrozenBatchNorm2d", "JCSClassifier", "JCSSegmentation",
    "SegConfig", "WeightsEntry", "build", "config_for", "default_weights", "detect_kind", "get_weights",
    "gradcam", "inference_context", "list_weights", "load", "load_official_checkpoint", "prepare_input",
    "prepare_model", "resolve_device", "save_weights", "task_of", "weights_dirs",
]
