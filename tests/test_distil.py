"""Distillation targets: alignment by image, calibration of the teacher's logits, the two loss terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.train.distil import TeacherTargets, feature_loss, platt_scaling, soft_target_loss


def test_platt_scaling_recovers_the_slope_and_offset_that_generated_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, 20000)
    labels = (rng.random(len(logits)) < 1.0 / (1.0 + np.exp(-(0.5 * logits - 1.0)))).astype(float)
    scale, shift = platt_scaling(logits, labels)
    assert scale == pytest.approx(0.5, abs=0.05) and shift == pytest.approx(-1.0, abs=0.08)


def test_targets_follow_the_training_sets_order_and_a_missing_image_is_named(tmp_path):
    rng = np.random.default_rng(1)
    keys = np.asarray([f"{k % 2}/image{k}.png" for k in range(40)])
    logits = rng.normal(size=40).astype(np.float32) + 3.0 * (np.arange(40) % 2) - 1.5
    features = rng.normal(size=(40, 6)).astype(np.float32)
    path = tmp_path / "teacher.npz"
    np.savez(path, keys=keys, logits=logits, features=features)
    order = rng.permutation(40)
    labels = np.arange(40)[order] % 2
    targets = TeacherTargets.load(path, keys[order].tolist(), labels)
    # Calibration is monotonic: the probabilities keep the teacher's ranking, in the training set's order.
    assert np.array_equal(np.argsort(targets.probability.numpy()), np.argsort(logits[order]))
    assert 0.0 < float(targets.probability.min()) and float(targets.probability.max()) < 1.0
    standard = (features - features.mean(0)) / features.std(0)
    np.testing.assert_allclose(targets.features.numpy(), standard[order], atol=1e-5)
    with pytest.raises(StudyLoadError, match="no target for 1/other.png"):
        TeacherTargets.load(path, ["1/other.png", *keys[:3].tolist()], np.array([1, 0, 1, 0]))


def test_soft_target_loss_is_the_binary_cross_entropy_of_the_logit_difference():
    logits = torch.tensor([[0.2, 1.5], [2.0, -1.0], [0.0, 0.0]])
    probability = torch.tensor([0.9, 0.2, 0.5])
    expected = F.binary_cross_entropy_with_logits(logits[:, 1] - logits[:, 0], probability)
    assert float(soft_target_loss(logits, probability)) == pytest.approx(float(expected), rel=1e-6)
    # Hard targets give the ordinary cross-entropy.
    hard = torch.tensor([1.0, 0.0, 1.0])
    assert float(soft_target_loss(logits, hard)) == pytest.approx(float(F.cross_entropy(logits, hard.long())))


def test_feature_loss_ignores_scale_and_is_largest_for_opposite_directions():
    target = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    assert float(feature_loss(3.0 * target, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(feature_loss(-target, target)) == pytest.approx(2.0, abs=1e-6)
