"""Small convolutional heads on a trunk cut's feature maps (jcs_viewer.train.map_head)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jcs_viewer.train import ct_trunk
from jcs_viewer.train.augment import AugmentConfig
from jcs_viewer.train.map_head import MapHead, fit_map_head, head_scores, view_maps
from jcs_viewer.train.metrics import auc


def _spot_maps(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Maps [n, 2, 8, 6, 6] of noise; in class 1 one channel is raised at one random place of each view.

    Mean-pooled, the spot is 1/36 of its height and drowns in the pooled noise; a head that looks at the maps
    before pooling them finds it.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    maps = rng.normal(size=(n, 2, 8, 6, 6)).astype(np.float32)
    for image, label in zip(maps, labels):
        for view in image:
            if label:
                view[2, rng.integers(6), rng.integers(6)] += 4.0
    return maps.astype(np.float16), labels


def test_head_finds_what_pooling_first_loses():
    train, train_labels = _spot_maps(240, seed=0)
    val, val_labels = _spot_maps(80, seed=1)
    test, test_labels = _spot_maps(120, seed=2)
    head, epoch, val_auc = fit_map_head(train, train_labels, val, val_labels, epochs=15, lr=1e-2)
    assert 1 <= epoch <= 15 and val_auc == auc(head_scores(head, val), val_labels)
    assert auc(head_scores(head, test), test_labels) > 0.9
    pooled = {k: m.astype(np.float32).mean((3, 4)) for k, m in (("train", train), ("test", test))}
    probe = ct_trunk.fit_probe(pooled["train"], train_labels, c=1.0)
    assert auc(ct_trunk.view_scores(probe, pooled["test"]), test_labels) < 0.8


def test_head_is_reproducible_by_seed_and_its_standardisation_is_the_training_maps():
    train, labels = _spot_maps(40, seed=3)
    first, *_ = fit_map_head(train, labels, train, labels, seed=1, epochs=2)
    again, *_ = fit_map_head(train, labels, train, labels, seed=1, epochs=2)
    other, *_ = fit_map_head(train, labels, train, labels, seed=2, epochs=2)
    assert np.array_equal(head_scores(first, train), head_scores(again, train))
    assert not np.array_equal(head_scores(first, train), head_scores(other, train))
    channel_means = train.astype(np.float32).mean((0, 1, 3, 4))
    assert np.allclose(first.mean.flatten().numpy(), channel_means, atol=1e-3)


def test_head_scores_average_the_views():
    head = MapHead(torch.zeros(8), torch.ones(8), width=4).eval()
    maps, _ = _spot_maps(5, seed=4)
    with torch.no_grad():
        each = [head(torch.from_numpy(maps[:, v])).numpy() for v in range(2)]
    assert np.allclose(head_scores(head, maps), (each[0] + each[1]) / 2, atol=1e-6)


def test_views_are_the_image_its_mirror_and_seeded_draws():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 16, 16)).astype(np.uint8)
    images[:, :, :4] = 255  # a bright left edge, so that the mirror differs

    def maps_of(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 4)  # [N, 1, 4, 4]: "feature maps" that keep the geometry

    augment = AugmentConfig(scale=(0.9, 1.1), aspect=0.0, rotate_deg=10.0, shift=0.05, hflip=0.5,
                            contrast=0.1, brightness=0.1, gamma=0.0, noise=0.0)
    maps = view_maps(maps_of, images, views=4, augment=augment, seed=7, batch=2)
    assert maps.shape == (3, 4, 1, 4, 4) and maps.dtype == np.float16
    shown = torch.from_numpy(images).float()[:, None] / 255.0
    assert np.allclose(maps[:, 0], maps_of(shown).numpy(), atol=1e-3)
    assert np.allclose(maps[:, 1], maps_of(shown.flip(-1)).numpy(), atol=1e-3)
    assert not np.allclose(maps[:, 2], maps[:, 0], atol=1e-2)
    assert np.array_equal(view_maps(maps_of, images, views=4, augment=augment, seed=7, batch=2), maps)
    with pytest.raises(ValueError):
        view_maps(maps_of, images, views=3)
