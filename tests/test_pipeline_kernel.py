"""The in-plane Gaussian the HU path's nets read slices through (``harmonise_kernel``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jcs_viewer.pipeline.preprocess import KERNEL_SIGMA_MM, harmonise_kernel, prepare_batch


def _spread_px(image: np.ndarray, axis: int) -> float:
    profile = image.sum(axis=1 - axis)
    x = np.arange(profile.size)
    mean = (profile * x).sum() / profile.sum()
    return float(np.sqrt((profile * (x - mean) ** 2).sum() / profile.sum()))


@pytest.mark.parametrize("pixel_mm", [(0.5, 0.5), (0.7, 1.2)])
def test_the_gaussian_has_the_same_width_in_mm_at_any_pixel_size(pixel_mm):
    point = np.zeros((1, 41, 41), dtype=np.int16)
    point[0, 20, 20] = 1000
    out = harmonise_kernel(point, pixel_mm)[0]
    assert out.sum() == pytest.approx(1000, rel=1e-4)  # nothing lost
    # within 10 %: a Gaussian of half a pixel (1.2 mm pixels) is sampled a little narrower
    assert _spread_px(out, 0) * pixel_mm[0] == pytest.approx(KERNEL_SIGMA_MM, rel=0.1)
    assert _spread_px(out, 1) * pixel_mm[1] == pytest.approx(KERNEL_SIGMA_MM, rel=0.1)


def test_flat_regions_and_8bit_images_are_left_as_they_are():
    flat = np.full((2, 16, 16), -850, dtype=np.int16)
    np.testing.assert_allclose(harmonise_kernel(flat, (0.7, 0.7)), flat)
    entry = type("Entry", (), {"input_size": 16, "window": (-600.0, 1500.0)})()
    grey = np.random.default_rng(0).integers(0, 256, (1, 16, 16)).astype(np.int16)
    with_pixel = prepare_batch(grey, entry, False, "cpu", pixel_mm=(0.7, 0.7))
    assert torch.equal(with_pixel, prepare_batch(grey, entry, False, "cpu"))  # grey levels: the nets' own images
    hu = (grey * 6 - 1350).astype(np.int16)
    assert not torch.equal(prepare_batch(hu, entry, True, "cpu", pixel_mm=(0.7, 0.7)),
                           prepare_batch(hu, entry, True, "cpu"))
