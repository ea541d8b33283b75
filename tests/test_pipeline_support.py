"""Shared helpers for the pipeline tests: tiny real JCS models and a registered weights folder.

Random-initialised lite networks (fixed seed) stand in until trained weights ship; they are
the real model classes at small input sizes so the tests stay fast on two cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLS_INPUT = 64
SEG_INPUT = 64


def tiny_models(cls_overrides: dict | None = None, seg_overrides: dict | None = None):
    """``LoadedModels`` with random lite networks (seed 0) and matching entries."""
    import torch

    from jcs_viewer.models import WeightsEntry, build
    from jcs_viewer.models.inference import fold_batchnorm
    from jcs_viewer.pipeline import LoadedModels

    torch.manual_seed(0)
    cls_cfg = {"width": 0.25, **(cls_overrides or {})}
    seg_cfg = {"width": 0.125, **(seg_overrides or {})}
    # Folded like registry.load() does: the same function, fewer passes over the activations.
    cls = fold_batchnorm(build("jcs_cls_lite", **cls_cfg))
    seg = fold_batchnorm(build("jcs_seg_lite", **seg_cfg))
    cls_entry = WeightsEntry(name="test-cls", task="cls", arch="jcs_cls_lite", file="", config=cls_cfg,
                             input_size=CLS_INPUT, window=(-600.0, 1500.0))
    seg_entry = WeightsEntry(name="test-seg", task="seg", arch="jcs_seg_lite", file="", config=seg_cfg,
                             input_size=SEG_INPUT, window=(-600.0, 1500.0))
    return LoadedModels(cls, cls_entry, seg, seg_entry)


def register_tiny_weights(folder: Path) -> dict[str, str]:
    """Save the tiny models as safetensors with a manifest in ``folder``; returns task -> name."""
    import dataclasses

    from jcs_viewer.models.registry import add_manifest_entry, save_weights

    import torch

    from jcs_viewer.models import build

    torch.manual_seed(0)
    models = tiny_models()
    # Saved unfolded (the registry folds on load): rebuild with the same seed for the state_dict keys.
    torch.manual_seed(0)
    models.cls_model = build("jcs_cls_lite", **models.cls_entry.config)
    models.seg_model = build("jcs_seg_lite", **models.seg_entry.config)
    names = {}
    pairs = (("cls", models.cls_model, models.cls_entry), ("seg", models.seg_model, models.seg_entry))
    for task, model, entry in pairs:
        file = f"{entry.name}.safetensors"
        digest = save_weights(model, folder / file)
        add_manifest_entry(dataclasses.replace(entry, file=file, sha256=digest, default=True, root=folder), folder)
        names[task] = entry.name
    return names


def small_phantom(n_slices: int = 16, size: int = 128, seed: int = 0):
    from jcs_viewer.io.phantom import make_phantom

    return make_phantom(n_slices, size, seed=seed)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


def test_tiny_models_are_real_jcs_networks():
    from jcs_viewer.models import JCSClassifier, JCSSegmentation

    models = tiny_models()
    assert isinstance(models.cls_model, JCSClassifier)
    assert isinstance(models.seg_model, JCSSegmentation)
