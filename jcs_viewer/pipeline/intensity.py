"""The CT-Seg intensity transform: what the lung segmenter was trained on, reproduced from any slice.

The COVID-19-CT-Seg slices (``../shared/data/covid19_ct_seg20_slices``) were made by their source as:
min-max normalised over the slice, resized to 256 x 256 (cubic), then CLAHE with clip limit 7 and
8 x 8 tiles (OpenCV). Contrast-limited equalisation makes the result nearly independent of the input's
window, so the same steps serve HU studies and 8-bit slice stacks alike. HU slices are first clipped
to [-1024, 2000] HU: padding outside the scanner's field of view (-2048, -3024) and metal would
otherwise squeeze the body into a few grey levels before equalisation.
"""

from __future__ import annotations

import numpy as np

CLAHE_CLIP = 7.0
CLAHE_TILES = (8, 8)
HU_RANGE = (-1024.0, 2000.0)


def ctseg_clahe(slices: np.ndarray, is_hu: bool, size: int = 256) -> np.ndarray:
    """``(N, H, W)`` slices (HU or 0..255) -> ``(N, size, size)`` uint8 CT-Seg-style images."""
    import cv2

    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=CLAHE_TILES)
    out = np.empty((slices.shape[0], size, size), dtype=np.uint8)
    for i, image in enumerate(slices):
        x = image.astype(np.float32)
        if is_hu:
            np.clip(x, *HU_RANGE, out=x)
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
        if x.shape != (size, size):
            x = cv2.resize(x, (size, size), interpolation=cv2.INTER_CUBIC)
        out[i] = clahe.apply(np.clip(x, 0, 255).astype(np.uint8))
    return out
