"""How noisy a CT is at the scale the models read, measured on its own soft tissue.

A low-dose or ultra-low-dose scan keeps its pixels and its sharp edges and adds grain: read through the nets, grain
about a millimetre across clumps into faint blobs the size of early ground glass (the lesion-free chest crop with
70-80 HU of noise of 1-1.5 mm grain: 14-26 positive slices, 19-22 mL of "lesions"). Fine grain is averaged away by
the kernel harmonisation (:func:`jcs_viewer.pipeline.preprocess.harmonise_kernel`); what survives a Gaussian of
:data:`SCALE_MM` is what the nets see, so the figure is taken there.

How (the global noise index of Christianson et al., Radiology 2015, at one scale): the standard deviation of the
image in a window about :data:`WINDOW_MM` wide, at every pixel whose whole window lies in soft tissue (fat, muscle,
unenhanced blood); edges between tissues inflate some windows, noise sets the floor that most windows share, so the
figure is the mode of those standard deviations.
"""

from __future__ import annotations

import numpy as np

#: The image is read after a Gaussian of this sigma (mm): grain finer than this is averaged away before the nets.
SCALE_MM = 1.0
#: Width (mm) of the window whose standard deviation is taken.
WINDOW_MM = 10.0
#: Soft tissue: every pixel of a window in this range (HU); fat -100, muscle and blood 40-60, enhanced blood above.
TISSUE_HU = (-300.0, 300.0)
#: Window means outside this range (HU) mix tissue with air or bone.
MEAN_HU = (-150.0, 150.0)
#: Slices read, evenly spaced through the study.
MAX_SLICES = 12
#: Fewer soft-tissue windows than this (all slices read) give no figure.
MIN_WINDOWS = 500


def noise_hu(hu: np.ndarray, pixel_mm: tuple[float, float], max_slices: int = MAX_SLICES) -> float | None:
    """The noise (HU, standard deviation) of the study's soft tissue after a Gaussian of :data:`SCALE_MM`.

    Args:
        hu: ``(z, y, x)`` Hounsfield units.
        pixel_mm: the in-plane pixel size ``(y, x)`` in mm.
        max_slices: how many evenly spaced slices to read.

    Returns:
        The noise in HU, or None where fewer than :data:`MIN_WINDOWS` windows lie in soft tissue (no body in view).
    """
    import cv2

    hu = np.asarray(hu)
    sigma_y, sigma_x = (SCALE_MM / max(float(px), 1e-6) for px in pixel_mm)
    size = tuple(max(3, int(round(WINDOW_MM / float(px))) | 1) for px in pixel_mm)  # (rows, columns), odd
    kernel = np.ones(size, np.uint8)
    picked = np.unique(np.linspace(0, len(hu) - 1, min(len(hu), max_slices)).astype(int))
    deviations = []
    for z in picked:
        image = cv2.GaussianBlur(np.asarray(hu[z], np.float32), (0, 0), sigmaX=sigma_x, sigmaY=sigma_y,
                                 borderType=cv2.BORDER_REFLECT)
        tissue = (image > TISSUE_HU[0]) & (image < TISSUE_HU[1])
        inside = cv2.erode(tissue.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
        if not inside.any():
            continue
        mean = cv2.blur(image, size[::-1])
        mean_sq = cv2.blur(image * image, size[::-1])
        inside &= (mean > MEAN_HU[0]) & (mean < MEAN_HU[1])
        deviations.append(np.sqrt(np.maximum(mean_sq[inside] - mean[inside] ** 2, 0.0)))
    values = np.concatenate(deviations) if deviations else np.empty(0)
    if values.size < MIN_WINDOWS:
        return None
    counts, edges = np.histogram(values, bins=np.arange(0.0, 301.0, 1.0))
    # One-HU bins: the mode of the histogram's shape, not of a spike (reflected at 0, which is no edge of the shape).
    smoothed = np.convolve(np.pad(counts, 2, mode="reflect"), np.ones(5) / 5.0, mode="valid")
    peak = int(np.argmax(smoothed))
    return float(edges[peak] + 0.5)
