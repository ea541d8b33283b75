"""Official JCS networks: exact state_dict keys/shapes, strict checkpoint loading, hostile files, forward shapes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from jcs_viewer.errors import ModelLoadError
from jcs_viewer.models import FrozenBatchNorm2d, build, gradcam, load_official_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "jcs_state_dict_keys.txt"
SECTIONS = {"jcs_seg": "seg-only", "jcs_joint": "joint", "jcs_cls": "classifier"}
COUNTS = {"jcs_seg": (218, 42_518_319), "jcs_joint": (1_183, 117_981_930), "jcs_cls": (861, 43_300_204)}


@pytest.fixture(scope="module")
def official() -> dict[str, torch.nn.Module]:
    """One instance of each official model (construction is the slow part; share it)."""
    torch.manual_seed(0)
    return {name: build(name).eval() for name in COUNTS}


def _reference_sections() -> dict[str, dict[str, list[int]]]:
    if not REFERENCE.is_file():
        pytest.skip(f"reference key list not present: {REFERENCE}")
    out: dict[str, dict[str, list[int]]] = {}
    current = None
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("# SECTION"):
            current = out.setdefault(line.split()[2].rstrip(":"), {})
        elif line and not line.startswith("#"):
            key, shape = line.split()
            current[key] = [int(t) for t in shape.strip("[]").split(",") if t]
    return out


@pytest.mark.parametrize("name", list(COUNTS))
def test_state_dict_counts(official, name):
    sd = official[name].state_dict()
    assert (len(sd), sum(t.numel() for t in sd.values())) == COUNTS[name]


def test_state_dict_equals_reference_keys_and_shapes(official):
    ref = _reference_sections()
    for name, section in SECTIONS.items():
        mine = {k: list(v.shape) for k, v in official[name].state_dict().items()}
        assert mine == ref[section], name
        assert list(mine) == list(ref[section]), f"{name}: registration order differs"


def test_attribute_head_only_when_asked(official):
    assert not any(k.startswith("attr_head") for k in official["jcs_cls"].state_dict())
    with_attr = build("jcs_cls_lite", attributes=True)
    assert {"attr_head.weight", "attr_head.bias"} <= set(with_attr.state_dict())


def test_frozen_bn_is_buffers_without_epsilon(official):
    bns = [m for m in official["jcs_joint"].modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(bns) == 13 + 172  # every VGG and Res2Net BN is frozen
    assert all(not list(m.parameters(recurse=False)) for m in bns)
    bn = FrozenBatchNorm2d(3)
    bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1e-6, 4.0, 0.25]))  # tiny variance: an eps would change the result
    x = torch.randn(2, 3, 4, 4)
    expected = (x - bn.running_mean.view(1, 3, 1, 1)) / bn.running_var.sqrt().view(1, 3, 1, 1)
    expected = expected * bn.weight.view(1, 3, 1, 1) + bn.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(bn(x), expected, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(bn(x), torch.nn.functional.batch_norm(
        x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, 1e-5), atol=1.0)


def _randomise(model: torch.nn.Module) -> None:
    """Give every float tensor (buffers included) distinct, well-scaled values, so a round trip checks real
    data and a forward pass through the full depth stays finite."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if t.dim() >= 2:  # conv / linear weights: fan-in scaling keeps activations bounded
                t.copy_(torch.randn(t.shape, generator=g) * (t[0].numel() ** -0.5))
            elif name.endswith(("running_var", "bn.weight")) or ".bns." in name or "bn1.weight" in name:
                t.copy_(0.75 + 0.5 * torch.rand(t.shape, generator=g))
            else:
                t.copy_(0.1 * (torch.rand(t.shape, generator=g) - 0.5))


@pytest.fixture(scope="module")
def saved(official, tmp_path_factory) -> dict[str, Path]:
    """One file per official layout: joint bare (as joint.pth is loaded upstream), seg with DataParallel
    ``module.`` prefixes, classifier nested under ``state_dict`` with prefixes (train script style)."""
    root = tmp_path_factory.mktemp("ckpt")
    for model in official.values():
        _randomise(model)
    files = {"joint": root / "joint.pth", "seg": root / "seg_dp.pth", "cls": root / "res2net_cls.pth"}
    torch.save(official["jcs_joint"].state_dict(), files["joint"])
    torch.save({"module." + k: v for k, v in official["jcs_seg"].state_dict().items()}, files["seg"])
    cls = {"module." + k: v for k, v in official["jcs_cls"].state_dict().items()}
    torch.save({"epoch": 3, "state_dict": cls, "best": 0.9}, files["cls"])
    return files


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_nested_prefixed_classifier(official, saved):
    model = load_official_checkpoint(saved["cls"], "jcs_cls")
    _assert_same(model, official["jcs_cls"])
    assert not model.training


# The official input is 512 px; the nets are fully convolutional, so 256 px runs every layer at a quarter of
# the cost (the 512-px forward is in the slow run).
@pytest.mark.parametrize("size", [256, pytest.param(512, marks=pytest.mark.slow)])
def test_round_trip_prefixed_seg_and_bare_joint_then_forward(official, saved, size):
    for name, key in (("jcs_seg", "seg"), ("jcs_joint", "joint")):
        loaded = load_official_checkpoint(saved[key], name)
        _assert_same(loaded, official[name])
        del loaded
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        for name in ("jcs_seg", "jcs_joint"):
            probs = official[name](x)
            assert probs.shape == (1, 5, size, size), name
            assert torch.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1


def test_classifier_forward_and_cam_224(official):
    model = official["jcs_cls"]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        logits = model(x)
        probs, cams = gradcam(model, x)
    assert logits.shape == (1, 2)
    torch.testing.assert_close(probs, torch.softmax(logits, 1)[:, 1])
    assert probs.shape == (1,) and cams.shape == (1, 224, 224)
    assert cams.min() >= 0 and cams.max() <= 1


def test_imagenet_extras_are_tolerated_but_imagenet_backbone_is_not(official, tmp_path):
    sd = dict(official["jcs_cls"].state_dict())
    bn_names = [k[: -len("running_var")] for k in sd if k.endswith("running_var")]
    with_counters = dict(sd, **{p + "num_batches_tracked": torch.tensor(7) for p in bn_names})
    path = tmp_path / "res2net_segloss.pth"
    torch.save(with_counters, path)
    _assert_same(load_official_checkpoint(path, "jcs_cls"), official["jcs_cls"])
    imagenet = dict(with_counters, **{"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})
    torch.save(imagenet, tmp_path / "res2net101_v1b_26w_4s.pth")
    with pytest.raises(ModelLoadError, match="ImageNet"):
        load_official_checkpoint(tmp_path / "res2net101_v1b_26w_4s.pth", "jcs_cls")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_and_wrong_checkpoints(saved, tmp_path):
    joint_like = tmp_path / "joint_small.pth"
    torch.save({"vgg16.conv1_1.conv.weight": torch.zeros(1), "res2net.conv1.0.weight": torch.zeros(1),
                "fuse.cat_modules.0.conv.weight": torch.zeros(1)}, joint_like)
    with pytest.raises(ModelLoadError, match=r"joint_small\.pth is a jcs_joint checkpoint, not jcs_cls"):
        load_official_checkpoint(joint_like, "jcs_cls")
    with pytest.raises(ModelLoadError, match=r"res2net_cls\.pth is a jcs_cls checkpoint, not jcs_seg"):
        load_official_checkpoint(saved["cls"], "jcs_seg")

    truncated = tmp_path / "truncated.pth"
    data = saved["cls"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    random_bytes = tmp_path / "random.pth"
    random_bytes.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                           dtype=torch.uint8).numpy().tobytes())
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": _Evil(marker)}, evil)
    old_pickle = tmp_path / "old.pth"
    old_pickle.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 1}, empty)
    wrong_shape = tmp_path / "lite.pth"
    torch.save(build("jcs_cls_lite", norm="frozen").state_dict(), wrong_shape)
    for path, phrase in [(truncated, "truncated"), (random_bytes, "not a"),
                         (text, "neither torch's zip format nor a pickle"), (evil, "refused"),
                         (old_pickle, "refused|not"), (empty, "no model weights"), (wrong_shape, "wrong shape"),
                         (tmp_path / "absent.pth", "no such")]:
        with pytest.raises(ModelLoadError, match=phrase) as info:
            load_official_checkpoint(path, "jcs_cls")
        message = str(info.value)
        assert path.name in message and "\n" not in message
    assert not marker.exists(), "the pickle's code ran"
