"""The classifier's view of a slice: the square around its lungs, not the whole field of view.

A whole 512-pixel slice shown to a 224-pixel classifier spends most of its pixels (and most cells of
its 7 x 7 activation map) on the table, the chest wall and the heart; the lungs cover 14-29 % of the
frame on the real test slices and about half of the square around them. Weights entries with
``crop = "lungs"`` are trained and read on that square: each slice is cut to the bounding box of its
lung mask, widened by :data:`MARGIN` on every side and made square about its centre (the aspect
ratio is kept; what lies outside the slice reads as air), then resized to the net's input. The
activation map is pasted back into the slice's frame, zero outside the square.

Boxes are fractions of the slice's height and width, ``(top, left, bottom, right)``, so one box serves
the slice at any resolution. A slice with too little lung keeps the whole frame.
"""

from __future__ import annotations

import numpy as np

#: The box grows by this fraction of its longer side on every side.
MARGIN = 0.06
#: A slice whose lung covers less than this share of the frame keeps the whole frame.
MIN_LUNG_SHARE = 0.003
#: Share of the lung pixels ignored at each end of the box (specks, not lung).
TRIM = 0.002
FULL_FRAME = (0.0, 0.0, 1.0, 1.0)


def lung_boxes(masks: np.ndarray, margin: float = MARGIN, min_share: float = MIN_LUNG_SHARE) -> np.ndarray:
    """``(N, 4)`` float32 boxes ``(top, left, bottom, right)`` as fractions of each ``(N, H, W)`` mask's frame.

    The square is centred on the lungs' bounding box and as long as its longer side plus the margin; a
    square larger than the frame is the frame (then centred on it along that axis).
    """
    masks = np.asarray(masks, dtype=bool)
    n, height, width = masks.shape
    boxes = np.tile(np.asarray(FULL_FRAME, np.float32), (n, 1))
    share = masks.reshape(n, -1).mean(axis=1)
    for k in np.flatnonzero(share >= min_share):
        top, bottom = _extent(masks[k].sum(axis=1))
        left, right = _extent(masks[k].sum(axis=0))
        # In pixels, so that the square stays square on a non-square slice.
        side = max(bottom - top, right - left) * (1.0 + 2.0 * margin)
        (y0, y1), (x0, x1) = _span((top + bottom) / 2.0, side, height), _span((left + right) / 2.0, side, width)
        boxes[k] = (y0, x0, y1, x1)
    return boxes


def _extent(profile: np.ndarray) -> tuple[int, int]:
    """[start, end) of a mask's row or column counts, without the outer :data:`TRIM` of its pixels on
    either side: a stray speck far from the lungs does not stretch the box."""
    cum = np.cumsum(profile, dtype=np.float64)
    total = cum[-1]
    return int(np.searchsorted(cum, TRIM * total, side="right")), int(np.searchsorted(cum, (1 - TRIM) * total)) + 1


def _span(center: float, side: float, length: int) -> tuple[float, float]:
    """(start, end) as fractions of ``length``: ``side`` about ``center``, shifted into the frame when it fits."""
    if side >= length:
        start = center - side / 2.0
    else:
        start = min(max(center - side / 2.0, 0.0), length - side)
    return start / length, (start + side) / length


def _theta(boxes, dtype, device):
    """Affine maps from output coordinates (-1..1) into the box's place in the frame (``align_corners=False``)."""
    import torch

    b = torch.as_tensor(np.asarray(boxes, np.float32), dtype=dtype, device=device)
    top, left, bottom, right = b.unbind(1)
    theta = torch.zeros(len(b), 2, 3, dtype=dtype, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = right - left, right + left - 1.0
    theta[:, 1, 1], theta[:, 1, 2] = bottom - top, bottom + top - 1.0
    return theta


def crop_boxes(x, boxes, size_hw: tuple[int, int]):
    """Each ``(N, C, H, W)`` image's box, resampled (bilinear) to ``size_hw``; outside the image reads 0."""
    import torch.nn.functional as F

    theta = _theta(boxes, x.dtype, x.device)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], *size_hw], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def paste_boxes(maps, boxes, frame_hw: tuple[int, int]):
    """The inverse: ``(N, C, h, w)`` maps of the boxes laid back into ``frame_hw`` frames, 0 outside the boxes."""
    import torch
    import torch.nn.functional as F

    theta = _theta(boxes, torch.float32, maps.device)
    scale = theta[:, :, :2].diagonal(dim1=1, dim2=2)  # (N, 2): x, y
    inverse = torch.zeros_like(theta)
    inverse[:, 0, 0], inverse[:, 1, 1] = 1.0 / scale[:, 0], 1.0 / scale[:, 1]
    inverse[:, :, 2] = -theta[:, :, 2] / scale
    grid = F.affine_grid(inverse.to(maps.dtype), [maps.shape[0], maps.shape[1], *frame_hw], align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def crop_images(images: np.ndarray, boxes, size: int) -> np.ndarray:
    """``(N, H, W)`` uint8 images cut to their boxes and resized to ``size`` (training and evaluation)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float()[:, None]
    out = crop_boxes(x, boxes, (size, size))[:, 0]
    return out.round_().clamp_(0, 255).to(torch.uint8).numpy()
