"""The lungs of 8-bit training and evaluation images, found by the shipped lung net, and their boxes.

Classifiers with ``crop = "lungs"`` (:mod:`jcs_viewer.pipeline.lung_crop`) are trained, validated and
evaluated on the square around each image's lungs. The app finds a study's lungs with the learned lung
net joined with the HU method; 2-D images (COVID-CT figures, MedSeg and CT-Seg slices) have no HU and
no volume, so here the lung net's own mask (probability ≥ 0.5) gives the box. The zoom of the training
augmentation covers the difference.
"""

from __future__ import annotations

import functools

import numpy as np

#: Images are read at this side before their lung square is cut (the square then keeps its detail).
READ_SIZE = 512

#: The lung net's probability from which a pixel is lung.
LUNG_THRESHOLD = 0.5


@functools.lru_cache(maxsize=2)
def cached_lung_net(weights: str | None):
    """The lung net and its entry, loaded once per process (a training run cuts several sets)."""
    from jcs_viewer.train.evaluate import load_model

    model, entry = load_model(weights, "lung")
    return model.eval(), entry


def image_lungs(images: np.ndarray, batch: int = 16, weights: str | None = None) -> np.ndarray:
    """``(N, S, S)`` bool lung masks of ``(N, S, S)`` uint8 images (the default lung net, on the CPU)."""
    import torch

    from jcs_viewer.pipeline.preprocess import prepare_batch, resize

    model, entry = cached_lung_net(weights)
    out = np.zeros(images.shape, dtype=bool)
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            chunk = np.ascontiguousarray(images[start : start + batch]).astype(np.int16)
            prob = model(prepare_batch(chunk, entry, False, "cpu"))[:, :1].float()
            out[start : start + batch] = resize(prob, images.shape[-2:])[:, 0].numpy() >= LUNG_THRESHOLD
    return out


def image_lung_boxes(images: np.ndarray, weights: str | None = None) -> np.ndarray:
    """``(N, 4)`` lung boxes (:func:`~jcs_viewer.pipeline.lung_crop.lung_boxes`) of uint8 images."""
    from jcs_viewer.pipeline.lung_crop import lung_boxes

    return lung_boxes(image_lungs(images, weights=weights))


def crop_to_lungs(images: np.ndarray, size: int, boxes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(images cut to their lung squares at size x size, boxes)``; ``boxes`` found when not given."""
    from jcs_viewer.pipeline.lung_crop import crop_images

    if boxes is None:
        boxes = image_lung_boxes(images)
    return crop_images(images, boxes, size), boxes


def lung_squares(images: list[np.ndarray], size: int) -> np.ndarray:
    """Images of any size as a ``crop = "lungs"`` classifier reads them: each resized to
    :data:`READ_SIZE` (as the training loads them), then cut to its lung square at ``size``."""
    from jcs_viewer.train.datasets import _resize_u8

    return crop_to_lungs(np.stack([_resize_u8(img, READ_SIZE) for img in images]), size)[0]
