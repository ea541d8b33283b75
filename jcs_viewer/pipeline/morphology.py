"""Fast in-plane binary morphology on (z, y, x) boolean volumes with numpy.

SimpleITK's ball-kernel morphology takes seconds on a 300 x 512 x 512 volume on two cores;
separable square (box) kernels built from shifted ORs take a fraction of that. All
operations are slice-wise (no mixing along z) unless stated.
"""

from __future__ import annotations

import numpy as np


def _segments(radius: int) -> list[int]:
    """Half-lengths 1, 2, 4, ... (and what remains) whose windows, applied one after another, make the window
    -radius..radius: the Minkowski sum of [-a, a] and [-b, b] is [-(a + b), a + b]."""
    steps, total, step = [], 0, 1
    while total + step <= radius:
        steps.append(step)
        total, step = total + step, 2 * step
    if total < radius:
        steps.append(radius - total)
    return steps


def _shift_or(mask: np.ndarray, radius: int, axis: int, op) -> np.ndarray:
    """``op`` (OR: dilation, AND: erosion) of each pixel with its neighbours up to ``radius`` along ``axis``;
    beyond the edge nothing takes part. In log2(radius) passes of growing windows, not ``radius`` passes."""
    out, source = mask.copy(), mask
    for k, step in enumerate(_segments(min(radius, mask.shape[axis] - 1))):
        if k:  # a later pass reads the previous pass's result, not the pixels it is rewriting
            source = out.copy()
        lo = [slice(None)] * mask.ndim
        hi = [slice(None)] * mask.ndim
        lo[axis], hi[axis] = slice(step, None), slice(None, -step)
        op(out[tuple(lo)], source[tuple(hi)], out=out[tuple(lo)])
        op(out[tuple(hi)], source[tuple(lo)], out=out[tuple(hi)])
    return out


def _square(mask: np.ndarray, radius: int, op) -> np.ndarray:
    """``op`` over each pixel's (2r+1)^2 in-plane square, computed in the box of ``mask`` grown by ``radius``.

    Exact for both operations: a dilation reaches nothing beyond that box, an erosion keeps nothing outside
    ``mask``, and every pixel of ``mask`` sees its whole square inside the box (or the image's edge, as before).
    """
    out = np.zeros(mask.shape, dtype=mask.dtype)  # not zeros_like: untouched pages stay unwritten
    box = bounding_box(mask, margin=radius)
    if box is not None:
        out[box] = _shift_or(_shift_or(mask[box], radius, -1, op), radius, -2, op)
    return out


def dilate_xy(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilation with a (2r+1)^2 in-plane square."""
    if radius <= 0:
        return mask.copy()
    return _square(mask, radius, np.logical_or)


def erode_xy(mask: np.ndarray, radius: int) -> np.ndarray:
    """Erosion with a (2r+1)^2 in-plane square (pixels beyond the edge count as foreground)."""
    if radius <= 0:
        return mask.copy()
    return _square(mask, radius, np.logical_and)


def close_xy(mask: np.ndarray, radius: int) -> np.ndarray:
    """Closing (dilation then erosion) with a (2r+1)^2 in-plane square; padded so edges do not stick."""
    if radius <= 0:
        return mask.copy()
    padded = np.pad(mask, ((0, 0), (radius, radius), (radius, radius)))
    closed = erode_xy(dilate_xy(padded, radius), radius)
    return closed[:, radius:-radius, radius:-radius]


def fill_holes_xy(mask: np.ndarray) -> np.ndarray:
    """Fill, slice by slice, background regions not connected to the slice border."""
    import SimpleITK as sitk

    out = mask.copy()
    box = bounding_box(mask, margin=1)
    if box is None:
        return out
    crop = mask[box]
    # Background of every slice, with zero slices in between so nothing connects along z;
    # one 3-D labelling is far faster than a SimpleITK call per slice.
    spaced = np.zeros((2 * crop.shape[0] - 1,) + crop.shape[1:], dtype=np.uint8)
    spaced[::2] = ~crop
    image = sitk.ConnectedComponent(sitk.GetImageFromArray(spaced), False)
    labels = sitk.GetArrayViewFromImage(image)[::2]  # a view: ``image`` must stay alive while it is used
    edges = np.concatenate([labels[:, 0, :].ravel(), labels[:, -1, :].ravel(),
                            labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])
    outside = np.zeros(int(labels.max()) + 1, dtype=bool)
    outside[np.unique(edges)] = True
    outside[0] = True
    out[box] |= ~outside[labels]
    del labels, image
    return out


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice] | None:
    """Index box of the nonzero voxels grown by ``margin`` in-plane (None when empty)."""
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if zs.size == 0:
        return None
    ys, xs = np.nonzero(mask[zs[0] : zs[-1] + 1].any(axis=0))
    return (
        slice(int(zs[0]), int(zs[-1]) + 1),
        slice(max(int(ys.min()) - margin, 0), min(int(ys.max()) + 1 + margin, mask.shape[1])),
        slice(max(int(xs.min()) - margin, 0), min(int(xs.max()) + 1 + margin, mask.shape[2])),
    )


def components_touching(candidates: np.ndarray, seeds: np.ndarray, min_share: float = 0.0) -> np.ndarray:
    """The in-plane connected components of ``candidates`` (8-connected, each slice on its own) that hold a
    ``seeds`` voxel, whole; seeds outside ``candidates`` join the components they touch.

    ``min_share``: keep only the components (seeds included) of which at least this share is seeds.
    """
    candidates, seeds = np.asarray(candidates, dtype=bool), np.asarray(seeds, dtype=bool)
    out = np.zeros(candidates.shape, dtype=bool)
    # Each slice is its own: only the slices that hold a candidate can keep anything.
    zs = np.flatnonzero(candidates.reshape(candidates.shape[0], -1).any(axis=1))
    if zs.size == 0:
        return out
    span = slice(int(zs[0]), int(zs[-1]) + 1)
    out[span] = _components_touching(candidates[span], seeds[span], min_share)
    return out


def _components_touching(candidates: np.ndarray, seeds: np.ndarray, min_share: float) -> np.ndarray:
    """:func:`components_touching` on boolean arrays, by one labelling of the slices spaced apart."""
    import SimpleITK as sitk

    out = np.zeros(candidates.shape, dtype=bool)
    box = bounding_box(candidates | seeds)
    if box is None:
        return out
    crop = candidates[box] | seeds[box]
    # Zero slices in between stop connectivity along z: each slice's components are its own.
    spaced = np.zeros((2 * crop.shape[0] - 1,) + crop.shape[1:], dtype=np.uint8)
    spaced[::2] = crop
    image = sitk.ConnectedComponent(sitk.GetImageFromArray(spaced), True)
    labels = sitk.GetArrayViewFromImage(image)[::2]  # a view: ``image`` must stay alive while it is used
    n = int(labels.max()) + 1
    size = np.bincount(labels.ravel(), minlength=n)
    seeded = np.bincount(labels[seeds[box]], minlength=n)
    keep = (seeded > 0) & (seeded >= min_share * size)
    keep[0] = False
    out[box] = keep[labels] & candidates[box]
    del labels, image
    return out
