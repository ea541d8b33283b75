"""EfficientNet-Lite0 in plain torch: strict ImageNet loading, the lung and lesion nets built on it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from jcs_viewer.errors import ModelLoadError
from jcs_viewer.models import build, fold_batchnorm
from jcs_viewer.models.efficientnet import EfficientNetLite, LiteConfig, imagenet_weights_file, load_imagenet_weights


def _imagenet_file():
    try:
        return imagenet_weights_file(0)
    except ModelLoadError as exc:
        pytest.skip(str(exc))


def test_lite0_loads_the_wheel_weights_strictly_and_every_tensor_lands():
    path = _imagenet_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = load_imagenet_weights(EfficientNetLite(LiteConfig(head=True)))
    own = model.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        assert own[key].shape == value.shape
        assert torch.equal(own[key], value), key
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # EfficientNet-Lite0's published 4.7 M


def test_lite0_imagenet_head_gives_a_peaked_distribution_for_a_natural_like_image():
    _imagenet_file()
    model = load_imagenet_weights(EfficientNetLite(LiteConfig(head=True))).eval()
    # A smooth random image: genuine weights answer with finite logits; random weights give near-uniform
    # softmax over 1000 classes, trained ones concentrate far more mass on their top class.
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 14, 14, generator=gen), size=224, mode="bilinear")
    with torch.no_grad():
        prob = torch.softmax(model((x - 0.5) / 0.5), dim=1)
        random_prob = torch.softmax(EfficientNetLite(LiteConfig(head=True)).eval()((x - 0.5) / 0.5), dim=1)
    assert torch.isfinite(prob).all()
    assert prob.max() > 20 * random_prob.max()


def test_a_wrong_state_dict_is_refused():
    model = EfficientNetLite()
    state = model.state_dict()
    state.pop("_blocks.3._depthwise_conv.weight")
    with pytest.raises(RuntimeError, match="_blocks.3._depthwise_conv.weight"):
        model.load_state_dict(state, strict=True)


def test_encoder_taps_strides_and_channels():
    model = EfficientNetLite().eval()
    feats = model.features(torch.zeros(1, 3, 256, 256))
    assert [f.shape[1] for f in feats] == [16, 24, 40, 112, 320]
    assert [256 // f.shape[-1] for f in feats] == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("arch, channels", [("lung_lite", 1), ("jcs_seg_effnet", 5)])
def test_nets_on_the_encoder_keep_the_input_size_and_fold_exactly(arch, channels):
    model = build(arch).eval()
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():  # non-trivial BN statistics, so folding has something to do
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
    x = torch.randn(2, 3, 160, 192, generator=gen)
    with torch.no_grad():
        out = model(x)
        folded = fold_batchnorm(copy.deepcopy(model))(x)
    assert out.shape == (2, channels, 160, 192)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fold_batchnorm(copy.deepcopy(model)).modules())
    np.testing.assert_allclose(folded.numpy(), out.numpy(), atol=1e-4)


def test_output_stride_16_dilates_the_last_stage_with_the_same_weights():
    coarse, fine = EfficientNetLite().eval(), EfficientNetLite(LiteConfig(output_stride=16)).eval()
    assert set(coarse.state_dict()) == set(fine.state_dict())
    fine.load_state_dict(coarse.state_dict(), strict=True)
    feats = fine.features(torch.zeros(1, 3, 256, 256))
    assert [256 // f.shape[-1] for f in feats] == [2, 4, 8, 16, 16]
    with pytest.raises(ValueError, match="output_stride"):
        EfficientNetLite(LiteConfig(output_stride=8))


def test_effnet_classifier_takes_the_imagenet_encoder_and_head_and_maps_at_stride_16():
    path = _imagenet_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build("jcs_cls_effnet", attributes=True, lesion_head=True).load_imagenet().eval()
    assert torch.equal(model.conv_head.weight, state["_conv_head.weight"])
    assert torch.equal(model.bn_head.running_var, state["_bn1.running_var"])
    assert torch.equal(model.encoder._blocks[10]._depthwise_conv.weight, state["_blocks.10._depthwise_conv.weight"])
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    logits, attrs, lesions = model.forward_train(x)
    assert logits.shape == (2, 2) and attrs.shape == (2, 5) and lesions.shape == (2, 1, 14, 14)


def test_effnet_classifier_gradcam_analytic_equals_autograd():
    from jcs_viewer.models import gradcam

    torch.manual_seed(2)
    model = build("jcs_cls_effnet", attributes=True).eval()
    with torch.no_grad():
        model.fc.weight.abs_()  # COVID evidence somewhere on the map (random weights may give none: a flat map)
    gen = torch.Generator().manual_seed(2)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=gen)
    x = torch.randn(3, 3, 128, 128, generator=gen)
    p1, c1 = gradcam(model, x)
    p2, c2 = gradcam(model, x, method="autograd")
    assert c1.shape == (3, 128, 128)
    torch.testing.assert_close(p1, p2)
    torch.testing.assert_close(c1, c2, atol=1e-4, rtol=1e-4)
    assert float(c1.max()) == pytest.approx(1.0)
    folded = fold_batchnorm(copy.deepcopy(model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    p3, c3 = gradcam(folded, x)
    torch.testing.assert_close(p3, p1, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(c3, c1, atol=1e-4, rtol=1e-4)
