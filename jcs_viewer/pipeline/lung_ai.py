"""Run the learned lung segmenter over a volume: uint8 lung probabilities on the volume's grid.

The network was trained on COVID-19-CT-Seg slices in radiological orientation (patient right on the
image left, anterior up) after the CT-Seg intensity transform; both are reproduced here from the
volume's direction and intensities (:func:`jcs_viewer.pipeline.intensity.ctseg_clahe`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from jcs_viewer.io.volume import Volume


#: slices at most this far apart (mm) are read every other one.
THIN_SLICE_MM = 2.5


def display_flips(direction: Any) -> tuple[bool, bool]:
    """(flip rows, flip columns) that put an axial slice in radiological orientation."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    # Columns should run towards patient left (+x in LPS), rows towards posterior (+y).
    return bool(d[1, 1] < 0), bool(d[0, 0] < 0)


def predict_lung_probability(volume: Volume, model: Any, entry: Any, engine: Any, batch_size: int) -> np.ndarray:
    """``uint8 (z, y, x)`` lung probability 0..255 for every slice of ``volume``.

    Args:
        volume: the study (``array``, ``is_hu``, ``direction``).
        model: the lung network (``forward`` -> N x 1 x h x w probabilities).
        entry: its weights entry (``input_size``, ``mean``, ``std``, ``intensity``: ``"ctseg"``).
        engine: the runner's :class:`~jcs_viewer.pipeline.engine.InferenceEngine` (progress, cancel, OOM).
        batch_size: slices per forward pass.
    """
    from jcs_viewer.models import inference_context
    from jcs_viewer.pipeline.preprocess import prepare_batch, resize, to_uint8

    image = volume.array
    n, height, width = image.shape
    flip_rows, flip_cols = display_flips(volume.direction)
    out = np.zeros(image.shape, dtype=np.uint8)

    def step(idx: list[int]) -> None:
        slices = image[idx]  # a gathered copy: the batches are every other slice
        if flip_rows:
            slices = slices[:, ::-1]
        if flip_cols:
            slices = slices[:, :, ::-1]
        x = prepare_batch(np.ascontiguousarray(slices), entry, bool(volume.is_hu), engine.device)
        with inference_context(engine.device, engine.amp):
            prob = model(x)[:, :1].float()
        maps = to_uint8(resize(prob, (height, width))[:, 0])
        if flip_rows:
            maps = maps[:, ::-1]
        if flip_cols:
            maps = maps[:, :, ::-1]
        out[idx] = maps

    # Thin slices: the lungs change little from one slice to the next, so the network reads every
    # other slice and each slice between gets the mean of its two neighbours (half the time).
    stride = 2 if float(volume.spacing[0]) <= THIN_SLICE_MM and n >= 3 else 1
    read = list(range(0, n, stride))
    if read[-1] != n - 1:
        read.append(n - 1)
    engine.run("lungs", read, batch_size, step, cpu_batch_size=8)
    if stride > 1:
        for z in range(1, n - 1, 2):  # odd slices below the last: each between two read ones
            out[z] = ((out[z - 1].astype(np.uint16) + out[z + 1]) // 2).astype(np.uint8)
    return out
