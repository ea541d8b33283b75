"""Reading 8-bit training images as grey arrays, with errors users can act on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcs_viewer.errors import StudyLoadError


def read_grey(path: Path) -> np.ndarray:
    """An image file as a 2-D uint8 array (colour and alpha converted with PIL's ``L``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode == "P":
                img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise StudyLoadError(f"Cannot read the image {path}: {exc}.") from exc


def read_mask(path: Path) -> np.ndarray:
    """A mask file as a boolean array: palette indices or grey values above zero are lesion."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise StudyLoadError(f"Cannot read the mask {path}: {exc}.") from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise StudyLoadError(f"The mask {path} is not a 2-D image.")
    # {0,1} palette masks and {0,255} grey masks both exist; JPEG noise stays below half.
    return arr > (127 if arr.max() > 1 else 0)
