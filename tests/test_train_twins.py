"""Lesion-free twins of MedSeg slices, lesions drawn as consolidation, crop labels from masks, weighted mixup
loss, the lesion head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jcs_viewer.train.augment import consolidate_dependent, densify_lesions, dependent_consolidation
from jcs_viewer.train.crops import MIN_LESION_PX, MedSegTwins, erase_lesions, crop_labels


def _chest_slice(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit lung-window slice: bright body, two dark noisy lungs, a bright blob lesion in one."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size), 20.0)
    image[((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.47 * size)) ** 2 < 1] = 235.0
    for cx in (0.3, 0.7):
        lung = ((yy - size / 2) / (0.3 * size)) ** 2 + ((xx - cx * size) / (0.15 * size)) ** 2 < 1
        image[lung] = 85.0 + rng.normal(0, 4, lung.sum())
    lesion = ((yy - 0.45 * size) ** 2 + (xx - 0.3 * size) ** 2) < (0.06 * size) ** 2
    image[lesion] = 170.0 + rng.normal(0, 4, lesion.sum())
    return np.clip(image, 0, 255).astype(np.uint8), lesion.astype(np.uint8)


def test_twin_replaces_the_lesion_with_surrounding_lung_and_keeps_the_rest():
    image, lesion = _chest_slice()
    twin = erase_lesions(image, lesion, seed=1)
    assert twin.dtype == np.uint8 and twin.shape == image.shape
    inside = lesion > 0
    assert image[inside].mean() > 160 and abs(twin[inside].mean() - 85.0) < 8  # now lung, not lesion
    assert twin[inside].std() > 0.5  # textured, not a flat patch
    far = np.ones_like(inside)
    far[80:160, 30:130] = False  # everything away from the lesion and its soft edge
    np.testing.assert_array_equal(twin[far], image[far])
    np.testing.assert_array_equal(erase_lesions(image, np.zeros_like(lesion)), image)
    np.testing.assert_array_equal(erase_lesions(image, lesion, seed=1), twin)  # deterministic


def test_densified_lesions_turn_soft_tissue_dense_and_nothing_else_moves():
    image, lesion = _chest_slice()
    vessel = (slice(120, 124), slice(70, 74))  # a bright vessel inside the lesion
    image[vessel] = 250
    with_lesion = torch.from_numpy(np.stack([image, image])).float().div(255.0)[:, None]
    masks = torch.from_numpy(np.stack([lesion, np.zeros_like(lesion)])).float()[:, None]
    dense = densify_lesions(with_lesion, masks, 1.0, torch.Generator().manual_seed(0))
    inside = torch.from_numpy(lesion > 0)
    core = torch.nn.functional.max_pool2d(1 - masks[:1], 5, stride=1, padding=2)[0, 0] == 0  # past the ramp
    soft_tissue = torch.quantile(with_lesion[0].flatten(), 0.9)  # the body's grey (235 / 255 here)
    assert abs(dense[0, 0][core & ~torch.from_numpy(image >= 250)].mean() - soft_tissue) < 0.03
    assert (dense[0, 0][inside] >= with_lesion[0, 0][inside]).all()  # never darker: vessels stay bright
    assert dense[0, 0][vessel].min() == pytest.approx(250 / 255)
    ring = torch.nn.functional.max_pool2d(masks[:1], 7, stride=1, padding=3)[0, 0] > 0
    torch.testing.assert_close(dense[0, 0][~ring], with_lesion[0, 0][~ring])  # outside the lesion: unchanged
    torch.testing.assert_close(dense[1], with_lesion[1])  # no lesion: nothing to densify
    untouched = densify_lesions(with_lesion, masks, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(untouched, with_lesion)


def test_dependent_lobes_are_the_posterior_lung_drawn_dense_and_the_label_stays():
    image, _ = _chest_slice()
    lungs = torch.from_numpy((image > 50) & (image < 120)).float()[None, None].repeat(12, 1, 1, 1)  # the lungs
    lungs[11] = 0  # a slice without lung gets nothing
    grey = torch.from_numpy(image).float().div(255.0)[None, None].repeat(12, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    dense = dependent_consolidation(lungs, 1.0, gen)
    assert dense[11].sum() == 0 and (dense[:11].flatten(1).sum(1) > 0).all()
    assert ((dense > 0) <= (lungs > 0)).all()  # only lung turns dense
    rows = torch.arange(image.shape[0]).view(1, 1, -1, 1).float()
    for i in range(11):
        lung_rows = rows.expand_as(lungs)[i][lungs[i] > 0]
        dense_rows = rows.expand_as(lungs)[i][dense[i] > 0]
        assert dense_rows.mean() > lung_rows.mean()  # the dependent (posterior, lower in the image) part
        assert 0.05 < dense[i].sum() / lungs[i].sum() < 0.8  # part of the lungs, never all of them
    sides = {(bool(d[0, :, :128].any()), bool(d[0, :, 128:].any())) for d in dense[:11]}
    assert sides >= {(True, False), (False, True), (True, True)}  # right, left or both lungs
    drawn = consolidate_dependent(grey, lungs, 1.0, torch.Generator().manual_seed(0))
    core = torch.nn.functional.max_pool2d(1 - dense, 5, stride=1, padding=2) == 0
    soft_tissue = torch.quantile(grey[0].flatten(), 0.9)
    assert abs(drawn[core].mean() - soft_tissue) < 0.03
    far = torch.nn.functional.max_pool2d(dense, 7, stride=1, padding=3) == 0
    torch.testing.assert_close(drawn[far], grey[far])
    torch.testing.assert_close(consolidate_dependent(grey, lungs, 0.0, gen), grey)


def test_basal_crescents_get_no_consolidated_lobe():
    """A lung base wrapped around the diaphragm dome: a dense 'lobe' there would look like the liver."""
    yy, xx = np.mgrid[:256, :256]
    crescents = np.zeros((256, 256), bool)
    for cx in (70, 186):
        outer = ((yy - 150) / 70) ** 2 + ((xx - cx) / 50) ** 2 < 1
        dome = ((yy - 170) / 62) ** 2 + ((xx - cx) / 42) ** 2 < 1
        crescents |= outer & ~dome
    lungs = torch.from_numpy(crescents).float()[None, None].repeat(6, 1, 1, 1)
    assert dependent_consolidation(lungs, 1.0, torch.Generator().manual_seed(0)).sum() == 0


def test_crop_labels_follow_the_warped_mask():
    masks = torch.zeros(4, 1, 32, 32)
    masks[1, 0, :1, :MIN_LESION_PX - 1] = 1  # a few pixels at the edge: ambiguous
    masks[2, 0, :4, :4] = 1  # 16 pixels: COVID
    masks[3] = 1
    labels, weights = crop_labels(masks)
    assert labels.tolist() == [0, 0, 1, 1] and weights.tolist() == [1.0, 0.0, 1.0, 1.0]


def test_weighted_mixup_ignores_unknown_samples_and_matches_the_plain_loss():
    from jcs_viewer.train.losses import mixup_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(6, 2, requires_grad=True)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    partner = torch.arange(5, -1, -1)
    ones = torch.ones(6)
    plain = mixup_cross_entropy(logits, y, y[partner], 0.7)
    assert mixup_cross_entropy(logits, y, y[partner], 0.7, ones, ones[partner]).item() == pytest.approx(plain.item())
    w = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])  # sample 2 unknown, so is its partner's second term
    mixup_cross_entropy(logits, y, y[partner], 1.0, w, w[partner]).backward()
    assert torch.all(logits.grad[2] == 0) and torch.any(logits.grad[0] != 0)


def test_twins_of_a_medseg_folder(tmp_path):
    from PIL import Image

    from jcs_viewer.train.splits import medseg_image_name, medseg_mask_name, medseg_split

    (tmp_path / "tr_im").mkdir()
    (tmp_path / "tr_mask_new").mkdir()
    for i in medseg_split("val"):
        image, lesion = _chest_slice(seed=i)
        Image.fromarray(image).save(tmp_path / "tr_im" / medseg_image_name(i))
        Image.fromarray(lesion).save(tmp_path / "tr_mask_new" / medseg_mask_name(i))
    twins = MedSegTwins.load(tmp_path, "val", 128)
    n = len(medseg_split("val"))
    assert len(twins) == 2 * n and twins.labels.tolist() == [1] * n + [0] * n
    assert twins.images_u8.shape == (2 * n, 128, 128) and len(twins.data_hash) == 64
    lesion = twins.masks[0, 0] > 0
    assert twins.grey[0, 0][lesion].mean() > twins.grey[n, 0][lesion].mean() + 0.2


def test_lesion_head_is_optional_and_stays_out_of_the_official_keys():
    from jcs_viewer.models import build

    plain = build("jcs_cls_lite", attributes=True)
    headed = build("jcs_cls_lite", attributes=True, lesion_head=True)
    assert set(headed.state_dict()) - set(plain.state_dict()) == {"lesion_head.weight", "lesion_head.bias"}
    assert not any(k.startswith("lesion_head") for k in build("jcs_cls").state_dict())
    logits, attrs, lesions = headed.forward_train(torch.zeros(2, 3, 160, 160))
    assert logits.shape == (2, 2) and attrs.shape == (2, 5) and lesions.shape == (2, 1, 5, 5)
    assert plain.forward_train(torch.zeros(1, 3, 64, 64))[2] is None


def test_cam_logits_are_the_grad_cam_map_before_its_relu():
    from jcs_viewer.models import build, gradcam
    from jcs_viewer.models.gradcam import normalise_per_image

    model = build("jcs_cls_lite", attributes=True).eval()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cells = model.cam_logits(model.features(x))
    _, cams = gradcam(model, x, out_size=cells.shape[-2:], method="autograd")
    assert torch.allclose(normalise_per_image(torch.relu(cells)), cams, atol=1e-5)


def test_cam_localisation_loss_rewards_a_map_on_the_lesion_and_teaches_it_there():
    from jcs_viewer.train.losses import cam_localisation_loss

    share = torch.zeros(2, 6, 6)
    share[0, 1, 4] = 0.6  # image 0: one lesion cell top right; image 1: no lesion (adds nothing)
    on_lesion, elsewhere = torch.zeros(2, 6, 6), torch.zeros(2, 6, 6)
    on_lesion[:, 1, 4], elsewhere[:, 4, 1] = 8.0, 8.0
    assert cam_localisation_loss(on_lesion, share) < 0.1 < 2.0 < cam_localisation_loss(elsewhere, share)
    assert cam_localisation_loss(elsewhere, torch.zeros(2, 6, 6)) == 0.0

    # Gradient descent on a map that starts on the heart moves its peak, and its positive mass, to the lesion.
    cam = elsewhere[:1].clone().requires_grad_(True)
    optim = torch.optim.SGD([cam], lr=1.0)
    for _ in range(200):
        optim.zero_grad()
        cam_localisation_loss(cam, share[:1]).backward()
        optim.step()
    final = cam.detach()[0]
    assert divmod(int(final.argmax()), 6) == (1, 4)
    positive = torch.relu(final)
    near = torch.zeros(6, 6, dtype=torch.bool)
    near[0:3, 3:6] = True
    assert positive[~near].sum() < 0.05 * positive.sum()
