"""Lite JCS networks: configs, outputs, Grad-CAM (localisation, analytic == autograd), BN folding, device helpers."""

from __future__ import annotations

import pytest
import torch

from jcs_viewer.errors import JCSError
from jcs_viewer.models import (
    build,
    config_for,
    fold_batchnorm,
    gradcam,
    inference_context,
    prepare_input,
    prepare_model,
    resolve_device,
)
from jcs_viewer.models.gradcam import normalise_per_image
from jcs_viewer.vocabulary import LESION_ATTRIBUTES


def test_lite_seg_outputs_and_overrides():
    model = build("jcs_seg_lite").eval()
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        logits = model.forward_logits(x)
        probs = model(x)
    assert logits.shape == probs.shape == (2, 5, 128, 96)
    torch.testing.assert_close(probs, torch.sigmoid(logits))
    wider = build("jcs_seg_lite", width=0.5, vgg_blocks=[2, 2, 2, 2, 2])
    assert sum(p.numel() for p in wider.parameters()) > sum(p.numel() for p in model.parameters())
    assert wider.vgg16.conv5_2 is not None
    with pytest.raises(ValueError, match="no config field"):
        build("jcs_seg_lite", depth=3)
    with pytest.raises(ValueError, match="unknown architecture"):
        build("jcs_unet")


def test_lite_joint_config_runs():
    model = build("jcs_seg_lite", joint=True, res2net_layers=(1, 1, 1, 1), res2net_width=0.25).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)


def test_lite_classifier_with_attributes():
    model = build("jcs_cls_lite", attributes=True).eval()
    assert len(LESION_ATTRIBUTES) == 5 and LESION_ATTRIBUTES[0].code == "GGO"
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        logits, attrs = model.forward_with_attributes(x)
        torch.testing.assert_close(model(x), logits)
    assert logits.shape == (3, 2) and attrs.shape == (3, 5)
    assert config_for("jcs_cls_lite").layers == (1, 1, 1, 1)
    with pytest.raises(RuntimeError, match="attribute head"):
        build("jcs_cls_lite").forward_with_attributes(x)


def test_output_stride_16_classifier_loads_a_stride_32_checkpoint_and_maps_twice_as_fine():
    torch.manual_seed(0)
    coarse = build("jcs_cls_lite", attributes=True, lesion_head=True)
    fine = build("jcs_cls_lite", attributes=True, lesion_head=True, output_stride=16)
    assert set(coarse.state_dict()) == set(fine.state_dict())
    fine.load_state_dict(coarse.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert coarse.eval().features(x).shape[-2:] == (7, 7)
        assert fine.eval().features(x).shape[-2:] == (14, 14)
        # The same stem..layer3: layer4 alone changes (no stride), so the logits move but stay finite.
        assert torch.isfinite(fine(x)).all() and not torch.allclose(fine(x), coarse(x))
    _, cams = gradcam(fine, x, out_size=(224, 224))
    assert cams.shape == (2, 224, 224)
    # Deeper layer4s dilate their later blocks rather than downsample.
    deep = build("jcs_cls_lite", layers=(1, 1, 1, 2), output_stride=16)
    assert deep.layer4[0].convs[0].dilation == (1, 1) and deep.layer4[1].convs[0].dilation == (2, 2)
    with pytest.raises(ValueError, match="output_stride"):
        build("jcs_cls_lite", output_stride=8)


def _randomise_bn(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("name", ["jcs_seg_lite", "jcs_cls_lite"])
def test_fold_batchnorm_keeps_outputs(name):
    torch.manual_seed(0)
    model = build(name, attributes=True) if name == "jcs_cls_lite" else build(name, joint=True, res2net_width=0.25,
                                                                               res2net_layers=(1, 1, 1, 1))
    _randomise_bn(model)
    model.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        ref = model(x)
        folded = fold_batchnorm(model)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), ref, rtol=1e-4, atol=1e-4)


def _blur_classifier() -> torch.nn.Module:
    """A lite classifier whose weights make layer4 a positive blur of the input brightness and class 1 its
    mean: bright regions are, by construction, the class-1 evidence."""
    model = build("jcs_cls_lite", width=0.25).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
        c = model.fc.weight.shape[1]
        model.fc.weight[0].fill_(-1.0 / c)
        model.fc.weight[1].fill_(1.0 / c)
    return model


def test_gradcam_peaks_on_the_class_evidence():
    size, side = 224, 48
    corners = [(32, 32), (32, 144), (144, 32), (144, 144)]  # one bright square per quadrant
    x = torch.full((4, 3, size, size), 0.1)
    for i, (r, c) in enumerate(corners):
        x[i, :, r:r + side, c:c + side] = 1.0
    model = _blur_classifier()
    probs, cams = gradcam(model, x, target_class=1)
    assert probs.shape == (4,) and cams.shape == (4, size, size)
    assert (probs > 0.5).all()
    for i, (r, c) in enumerate(corners):
        peak = int(cams[i].argmax())
        pr, pc = divmod(peak, size)
        assert r - 8 <= pr < r + side + 8 and c - 8 <= pc < c + side + 8, (i, pr, pc)
        inside = cams[i, r:r + side, c:c + side].mean()
        outside = cams[i].sum() - cams[i, r:r + side, c:c + side].sum()
        assert inside > 3 * outside / (size * size - side * side)
    # Class 0 has only negative evidence here: its map is all zero after the ReLU.
    _, cams0 = gradcam(model, x, target_class=0)
    assert torch.equal(cams0, torch.zeros_like(cams0))


def test_gradcam_analytic_equals_autograd():
    torch.manual_seed(0)
    model = build("jcs_cls_lite", attributes=True)
    _randomise_bn(model)
    with torch.no_grad():  # mixed-sign weights, mostly positive: a non-trivial map for every image
        model.fc.weight[1] = model.fc.weight[1].abs() - 0.2 * model.fc.weight[1].abs().mean()
    model.eval()
    x = torch.randn(3, 3, 160, 160)
    probs, cams = gradcam(model, x)
    assert float(cams.amax(dim=(1, 2)).min()) == 1.0  # real, non-flat maps
    p2, cams2 = gradcam(model, x, method="autograd")
    torch.testing.assert_close(cams2, cams, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(p2, probs)
    with torch.inference_mode():
        p3, small = gradcam(model, x[:2], out_size=(40, 50))
        with pytest.raises(RuntimeError, match="inference_mode"):
            gradcam(model, x[:1], method="autograd")
    with inference_context("cpu", grad=True):
        _, cams4 = gradcam(model, x, method="autograd")
    torch.testing.assert_close(cams4, cams, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(p3, probs[:2])
    assert small.shape == (2, 40, 50) and 0 <= float(small.min()) and float(small.max()) <= 1


def test_cam_normalisation_flat_maps_are_zero():
    maps = torch.stack([torch.full((4, 4), 3.0), torch.arange(16.0).view(4, 4)])
    out = normalise_per_image(maps)
    assert torch.equal(out[0], torch.zeros(4, 4))
    assert out[1].min() == 0 and out[1].max() == 1


def test_device_helpers():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(JCSError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(JCSError):
        resolve_device("tpu")
    model = prepare_model(build("jcs_cls_lite"), "cpu")
    x = prepare_input(torch.randn(2, 3, 64, 64), "cpu")
    assert x.is_contiguous(memory_format=torch.channels_last)
    with inference_context("cpu"):
        out = model(x)
    assert out.shape == (2, 2) and not out.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_amp_matches_fp32():
    torch.manual_seed(0)
    seg = prepare_model(build("jcs_seg_lite"), "cuda")
    cls = prepare_model(build("jcs_cls_lite"), "cuda")
    x = prepare_input(torch.randn(2, 3, 256, 256), "cuda")
    with inference_context("cuda", amp=False):
        s32, (p32, c32) = seg(x), gradcam(cls, x)
    with inference_context("cuda", amp=True):
        s16, (p16, c16) = seg(x), gradcam(cls, x)
    assert (s32 - s16.float()).abs().max() < 0.05
    assert (p32 - p16).abs().max() < 0.05
    assert c16.dtype == torch.float32 and c16.shape == (2, 256, 256)
    assert (c32 - c16).abs().max() < 0.1


def test_one_pass_explanation_matches_gradcam_and_the_attribute_head():
    from jcs_viewer.models.gradcam import classify_explained

    torch.manual_seed(0)
    model = build("jcs_cls_lite", attributes=True).eval()
    x = torch.randn(3, 3, 96, 96)
    probs, cams, attrs = classify_explained(model, x, out_size=48)
    p_ref, cam_ref = gradcam(model, x, out_size=48)
    with torch.no_grad():
        _, attr_logits = model.forward_with_attributes(x)
    torch.testing.assert_close(probs, p_ref)
    torch.testing.assert_close(cams, cam_ref)
    torch.testing.assert_close(attrs, torch.sigmoid(attr_logits))
    assert classify_explained(build("jcs_cls_lite").eval(), x)[2] is None


def test_mirror_reading_averages_each_image_with_its_mirror_and_flips_the_map_back():
    """``mirror=True``: probability and attributes are the mean of the image's and its mirror's; the map is
    Grad-CAM of the mean of the two weighted sums (the mirror's flipped back), so a lesion on the left stays
    on the left, and the reading is exactly mirror-equivariant (a strided net alone is not)."""
    from jcs_viewer.models.gradcam import class_probability, classify_explained

    torch.manual_seed(0)
    model = build("jcs_cls_lite", attributes=True).eval()
    x = torch.randn(2, 3, 96, 96)
    flipped = torch.flip(x, dims=(-1,))
    with torch.no_grad():
        feats, feats_m = model.features(x), model.features(flipped)
        logits, attr_logits = model.forward_with_attributes(x)
        logits_m, attr_logits_m = model.forward_with_attributes(flipped)
        raw = (model.cam_logits(feats) + torch.flip(model.cam_logits(feats_m), dims=(-1,))) / 2
    expected_p = (torch.softmax(logits, 1)[:, 1] + torch.softmax(logits_m, 1)[:, 1]) / 2
    expected_cam = normalise_per_image(torch.nn.functional.interpolate(
        torch.relu(raw)[:, None], size=(48, 48), mode="bilinear", align_corners=False)[:, 0])

    probs, cams, attrs = classify_explained(model, x, out_size=48, mirror=True)
    torch.testing.assert_close(probs, expected_p)
    torch.testing.assert_close(cams, expected_cam)
    torch.testing.assert_close(attrs, (torch.sigmoid(attr_logits) + torch.sigmoid(attr_logits_m)) / 2)
    p_ref, cam_ref = gradcam(model, x, out_size=48, mirror=True)
    torch.testing.assert_close(p_ref, probs)
    torch.testing.assert_close(cam_ref, cams)
    torch.testing.assert_close(class_probability(model, x, mirror=True), probs)
    assert not torch.allclose(classify_explained(model, x, out_size=48)[1], cams, atol=1e-3)  # it does change

    p_f, cams_f, attrs_f = classify_explained(model, flipped, out_size=48, mirror=True)
    torch.testing.assert_close(p_f, probs)
    torch.testing.assert_close(attrs_f, attrs)
    torch.testing.assert_close(cams_f, torch.flip(cams, dims=(-1,)))
