"""A fast synthetic study and a matching :class:`StudyResult` for the GUI benchmark and GUI tests.

The result is built from the known masks with the pipeline's own ``quantify`` and decision
rule, so every panel has real numbers to show without running a network.
"""

from __future__ import annotations

import numpy as np

from jcs_viewer.io.volume import StudyInfo, Volume


def synthetic_volume(n_slices: int = 300, size: int = 512, seed: int = 0) -> tuple[Volume, np.ndarray, np.ndarray]:
    """A chest-like int16 HU volume with its lung (1 right, 2 left) and lesion masks.

    Returns:
        ``(volume, lung_mask, lesion_mask)``; masks are uint8 ``(z, y, x)``.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    body = ((xx - 0.5) / 0.45) ** 2 + ((yy - 0.5) / 0.33) ** 2 <= 1.0
    hu = np.full((n_slices, size, size), -1000, dtype=np.int16)
    lung = np.zeros((n_slices, size, size), dtype=np.uint8)
    lesion = np.zeros((n_slices, size, size), dtype=np.uint8)
    t = np.linspace(-1.0, 1.0, n_slices)
    blobs = [(rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.42), rng.uniform(0.42, 0.6), rng.uniform(0.03, 0.07))
             for _ in range(6)]
    for z in range(n_slices):
        scale = max(0.0, 1.0 - t[z] ** 2) ** 0.5  # lungs shrink towards apex and base
        hu[z][body] = 40
        for label, cx in ((1, 0.3), (2, 0.7)):
            inside = ((xx - cx) / (0.15 * scale + 1e-6)) ** 2 + ((yy - 0.47) / (0.22 * scale + 1e-6)) ** 2 <= 1.0
            lung[z][inside] = label
        hu[z][lung[z] > 0] = -850
        for zc, cx, cy, r in blobs:
            dz = abs(t[z] - (zc * 2 - 1))
            if dz < 0.15:
                rr = r * (1.0 - dz / 0.15) ** 0.5
                spot = ((xx - cx) ** 2 + (yy - cy) ** 2 <= rr * rr) & (lung[z] > 0)
                lesion[z][spot] = 1
                hu[z][spot] = -500
    hu += rng.normal(0.0, 15.0, hu.shape).astype(np.int16)
    spacing = (320.0 / n_slices, 358.4 / size, 358.4 / size)
    volume = Volume(array=hu, spacing=spacing, origin=(-179.0, -179.0, -310.0), is_hu=True,
                    info=StudyInfo(modality="CT", series_description="Synthetic chest"), source_format="synthetic")
    return volume, lung, lesion


def synthetic_result(volume: Volume, lung_mask: np.ndarray, lesion_mask: np.ndarray, cam_size: int = 32,
                     with_attributes: bool = True):
    """A :class:`~jcs_viewer.pipeline.result.StudyResult` whose scores follow the lesion area."""
    from jcs_viewer.pipeline.decision import patient_decision, slice_threshold
    from jcs_viewer.pipeline.quantify import quantify
    from jcs_viewer.pipeline.result import StudyResult

    n, ny, nx = volume.array.shape
    area = lesion_mask.reshape(n, -1).sum(axis=1).astype(np.float64)
    prob = (1.0 / (1.0 + np.exp(-(area - 40.0) / 25.0))).astype(np.float32)
    positive = prob >= 0.5
    threshold, rule = slice_threshold(n, volume.spacing[0])
    decision, count = patient_decision(positive, threshold)
    # Activation maps: block means of the lesion mask, reduced like a Grad-CAM grid.
    rows = np.linspace(0, ny, cam_size + 1).astype(int)
    cols = np.linspace(0, nx, cam_size + 1).astype(int)
    cams = np.add.reduceat(np.add.reduceat(lesion_mask.astype(np.float32), rows[:-1], axis=1), cols[:-1], axis=2)
    cams /= max(1.0, float(cams.max()))
    cams = (255 * np.sqrt(cams)).astype(np.uint8)
    attributes = None
    if with_attributes:
        attributes = np.stack([prob * w for w in (0.9, 0.3, 0.2, 0.1, 0.15)], axis=1).astype(np.float32)
    quant = quantify(volume, lung_mask, lesion_mask)
    return StudyResult(
        n_slices=n, spacing=volume.spacing, origin=volume.origin, direction=volume.direction,
        slice_probability=prob, slice_cutoff=0.5, slice_positive=positive, positive_slices=count,
        threshold=threshold, threshold_rule=rule, decision=decision, cams=cams,
        lesion_probability=(lesion_mask * 255).astype(np.uint8), lesion_mask=lesion_mask.astype(np.uint8),
        segmented_slices=positive.copy(), lung_mask=lung_mask, attributes=attributes, quant=quant,
        models={"classification": {"name": "synthetic", "arch": "none", "sha256": "0" * 64}},
        timings={"classify": 0.0, "segment": 0.0}, messages=["Synthetic result built from known masks."],
    )
