"""The noise of a study's soft tissue at the scale the nets read (``noise.noise_hu``) and the rule that will not read
a study whose grain is too heavy."""

from __future__ import annotations

import numpy as np
import pytest

from jcs_viewer.pipeline.assess import MAX_NOISE_HU, NOT_ASSESSABLE, coarse_reason, noise_reason
from jcs_viewer.pipeline.noise import SCALE_MM, noise_hu

cv2 = pytest.importorskip("cv2")


def body_slices(noise_sd: float, pixel_mm: float, n: int = 3, size: int = 320, seed: int = 0) -> np.ndarray:
    """Axial slices in HU: air around an elliptic body of fat and muscle (and a bone), white noise of ``noise_sd``
    per pixel added."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    c = size / 2
    image = np.full((size, size), -1000.0, np.float32)
    image[((yy - c) / 0.7) ** 2 + ((xx - c) / 0.9) ** 2 < (0.45 * size) ** 2] = -100.0  # fat
    image[((yy - c) / 0.6) ** 2 + ((xx - c) / 0.8) ** 2 < (0.42 * size) ** 2] = 50.0  # muscle
    image[(yy - c) ** 2 + (xx - c) ** 2 < (0.05 * size) ** 2] = 700.0  # bone
    rng = np.random.default_rng(seed)
    return np.stack([image + rng.normal(0, noise_sd, image.shape).astype(np.float32) for _ in range(n)])


@pytest.mark.parametrize("pixel_mm", [0.5, 0.8])
def test_white_noise_reads_as_its_standard_deviation_at_the_nets_scale(pixel_mm):
    """White noise of sd s per pixel, after a Gaussian of sigma g pixels, has sd s / (2 sqrt(pi) g): the figure
    is that (the mode of the windows' sd, not their mean, which the tissue edges and the bone would lift)."""
    sd = 150.0
    expected = sd / (2.0 * np.sqrt(np.pi) * (SCALE_MM / pixel_mm))
    measured = noise_hu(body_slices(sd, pixel_mm), (pixel_mm, pixel_mm))
    assert measured == pytest.approx(expected, rel=0.12), (measured, expected)
    # Twice the noise reads twice as high; none reads near nothing.
    assert noise_hu(body_slices(2 * sd, pixel_mm), (pixel_mm, pixel_mm)) == pytest.approx(2 * measured, rel=0.1)
    assert noise_hu(body_slices(0.0, pixel_mm), (pixel_mm, pixel_mm)) < 2.0


def test_no_soft_tissue_in_view_gives_no_figure():
    air = np.full((3, 128, 128), -1000.0, np.float32) + np.random.default_rng(1).normal(0, 20, (3, 128, 128))
    assert noise_hu(air, (0.7, 0.7)) is None


def test_the_rule_reads_clinical_noise_and_refuses_ultra_low_dose_grain():
    from jcs_viewer.io.volume import Volume

    volume = Volume(np.zeros((4, 64, 64), np.int16), (1.0, 0.7, 0.7))
    assert noise_reason(volume, 0.8 * MAX_NOISE_HU) is None and noise_reason(volume, None) is None
    reason = noise_reason(volume, MAX_NOISE_HU + 12)
    assert reason.startswith("The image is too noisy") and f"{MAX_NOISE_HU + 12:.0f} HU" in reason
    assert "no slice was scored" in reason and reason.endswith(".")
    # It is one of the reasons a study's slices cannot be read at all; a blur, where there is one, is said first.
    assert coarse_reason(volume, blur=None, noise=MAX_NOISE_HU + 12) == reason
    assert "blurrier" in coarse_reason(volume, blur=2.0, noise=MAX_NOISE_HU + 12)


def test_a_noisy_study_is_not_assessable_end_to_end(registered, tmp_path):
    """The phantom with heavy grain: no slice is scored, and the result keeps the figure."""
    from jcs_viewer.io import make_phantom
    from jcs_viewer.pipeline import AnalysisOptions, StudyResult, analyze

    volume = make_phantom(n_slices=16, size=256, seed=2).to_volume()
    sigma_px = SCALE_MM / volume.spacing[1]
    rng = np.random.default_rng(3)
    grain = np.stack([cv2.GaussianBlur(rng.normal(0, 1, volume.array.shape[1:]).astype(np.float32), (0, 0), sigma_px)
                      for _ in volume.array])
    volume.array[:] = np.clip(volume.array + grain * (90.0 / grain.std()), -1024, 3071).round().astype(np.int16)
    result = analyze(volume, AnalysisOptions(device="cpu"))
    assert result.decision == NOT_ASSESSABLE and "too noisy" in result.decision_reason
    assert result.noise_hu > MAX_NOISE_HU and not result.scored_slices.any()
    result.save(tmp_path)
    assert StudyResult.load(tmp_path).noise_hu == pytest.approx(result.noise_hu)
