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
    """Fill, slice by slice, background regions not connected to the slice border (4-connected background)."""
    import cv2

    out = mask.copy()
    box = bounding_box(mask, margin=1)
    if box is None:
        return out
    crop = mask[box]
    region = out[box]
    for z in range(crop.shape[0]):
        background = (~crop[z]).view(np.uint8)
        n, labels = cv2.connectedComponents(background, connectivity=4, ltype=cv2.CV_32S)
        outside = np.zeros(n, dtype=bool)
        outside[labels[0]] = outside[labels[-1]] = outside[labels[:, 0]] = outside[labels[:, -1]] = True
        outside[0] = True
        region[z] |= ~outside[labels]
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

    One slice's labels at a time: labelling the whole stack at once (its slices spaced apart) held 32-bit labels
    of twice the volume and their 64-bit indices, the lung stage's peak memory.
    """
    import cv2

    candidates, seeds = np.asarray(candidates, dtype=bool), np.asarray(seeds, dtype=bool)
    out = np.zeros(candidates.shape, dtype=bool)
    for z in range(candidates.shape[0]):
        if not candidates[z].any():  # only a slice that holds a candidate can keep anything
            continue
        n, labels = cv2.connectedComponents((candidates[z] | seeds[z]).view(np.uint8), connectivity=8,
                                            ltype=cv2.CV_32S)
        size = np.bincount(labels.ravel(), minlength=n)
        seeded = np.bincount(labels[seeds[z]], minlength=n)
        keep = (seeded > 0) & (seeded >= min_share * size)
        keep[0] = False
        out[z] = keep[labels] & candidates[z]
    return out


#: Slices read at a time from a 32-bit label volume (their 64-bit index copy stays small).
CHUNK_SLICES = 16


def label_sizes(labels: np.ndarray) -> np.ndarray:
    """Voxels per label (index = label) of an integer label array, counted a few slices at a time."""
    size = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=np.int64)
    for z in range(0, labels.shape[0], CHUNK_SLICES):
        size += np.bincount(labels[z : z + CHUNK_SLICES].ravel(), minlength=size.size)
    return size


def count_components(mask: np.ndarray, minimum: int = 1) -> int:
    """Connected components of a 2-D or 3-D mask, fully connected (8 in a slice, 26 across slices), of at least
    ``minimum`` pixels or voxels.

    Each slice is labelled on its own and the components that touch across neighbouring slices are joined (a
    union-find over the slices' components): memory of a few slices' labels, where one 3-D labelling holds 32-bit
    labels of the whole mask (a quantification's peak on a thin study). Two neighbouring slices touch where the
    union of their masks is connected in-plane: a step between 8-neighbouring positions of the union is a step
    between 26-neighbouring voxels of the two slices, and the reverse.
    """
    import cv2

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 2:
        mask = mask[None]
    parent: list[int] = []
    sizes: list[np.ndarray] = []

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    def label(plane: np.ndarray) -> tuple[int, np.ndarray]:
        return cv2.connectedComponents(np.ascontiguousarray(plane).view(np.uint8), connectivity=8,
                                       ltype=cv2.CV_32S)

    previous: tuple[np.ndarray, np.ndarray, int] | None = None  # mask, labels and first node of the last slice
    for z in range(mask.shape[0]):
        plane = mask[z]
        if not plane.any():
            previous = None
            continue
        n, labels = label(plane)
        offset = len(parent)  # component k of this slice is node offset + k - 1
        parent.extend(range(offset, offset + n - 1))
        sizes.append(np.bincount(labels.ravel(), minlength=n)[1:])
        if previous is not None:
            below, below_labels, below_offset = previous
            _, union = label(below | plane)
            nodes, keys = [], []
            for own, first in ((below_labels, below_offset), (labels, offset)):
                # every pixel of a slice's component lies in one component of the union: any of them names it
                part = np.zeros(int(own.max()) + 1, dtype=np.int32)
                part[own.ravel()] = union.ravel()
                nodes.append(first + np.arange(part.size - 1))
                keys.append(part[1:])
            nodes_all, keys_all = np.concatenate(nodes), np.concatenate(keys)
            order = np.argsort(keys_all, kind="stable")
            for a, b, same in zip(nodes_all[order][:-1].tolist(), nodes_all[order][1:].tolist(),
                                  (np.diff(keys_all[order]) == 0).tolist()):
                if same:
                    ra, rb = find(a), find(b)
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
        previous = (plane, labels, offset)
    if not parent:
        return 0
    roots = np.array([find(i) for i in range(len(parent))])
    total = np.bincount(roots, weights=np.concatenate(sizes), minlength=len(parent))
    return int(np.count_nonzero(total[np.unique(roots)] >= max(1, minimum)))
