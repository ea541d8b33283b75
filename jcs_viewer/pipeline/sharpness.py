"""How blurred a CT is, measured on its own edges: the detail the models need, which a pixel size does not tell.

A study's pixel size says how fine its grid is, not how fine its detail is. A volume resampled from coarser pixels
(an export or a viewer's reformat at 512 x 512), or reconstructed with a very smooth filter, keeps fine pixels and
loses the edges the models read: a vessel smeared into the lung reads as ground glass. The blur is measured where the
image holds a step from air or lung to soft tissue (the body's outline, the chest wall, the heart's border, the
domes), as the standard deviation in mm of the Gaussian that would blur a sharp step as much.

How: for a step blurred by a Gaussian of sigma, the peak gradient after a further Gaussian of s falls as
``1 / sqrt(sigma**2 + s**2)``; the ratio of the peaks at two values of s cancels the step's height and gives sigma.
Vessels and nodules are not steps (lung lies a few mm beyond them on both sides) and are left out; so are bone
edges (a dense side above soft tissue). Noise only lowers the figure (it raises the finer gradient), so a noisy scan
is never taken for a blurred one.
"""

from __future__ import annotations

import numpy as np

#: The two further blurs (pixels) whose gradients are compared.
FINE_PX = 1.0
COARSE_PX = 2.0
#: The central difference's own spread (pixels²: a box two pixels wide), added to both blurs.
DIFFERENCE_VAR = 1.0 / 3.0
#: A step's dark side (air or aerated lung) lies in this range, its bright side (fat, muscle, blood) in the next, both
#: read this far (mm) from the edge along the gradient: far enough that the blur measured here has faded there. The
#: padding outside a reconstruction circle (-2000, -3024; noisy air stays above -1200) is no side: its edge was never
#: blurred by the scanner.
DARK_SIDE_HU = (-1200.0, -700.0)
BRIGHT_SIDE_HU = (-250.0, 250.0)
STEP_REACH_MM = 6.0
#: Gradients below this (HU a pixel) are not edges worth reading (noise of a low-dose scan stays under it).
MIN_GRADIENT = 10.0
#: Fewer step edges than this (over the slices read) give no figure.
MIN_EDGES = 200
#: Slices read, evenly spaced through the study.
MAX_SLICES = 12
#: One slice gives a figure from this many steps (its body outline alone holds a few hundred).
MIN_SLICE_EDGES = 50
#: Slices read one by one are first averaged 2 x 2 where pixels are finer than this (mm): four times faster, and the
#: averaging's own spread (a quarter of a fine pixel squared) is taken off the figure.
FINE_PIXEL_MM = 0.75


def edge_blur_mm(hu: np.ndarray, pixel_mm: tuple[float, float], max_slices: int = MAX_SLICES) -> float | None:
    """The median blur (Gaussian standard deviation, mm) of the study's air/lung-to-soft-tissue steps.

    Args:
        hu: ``(z, y, x)`` Hounsfield units (the scanner's or estimated).
        pixel_mm: the in-plane pixel size ``(y, x)`` in mm.
        max_slices: how many evenly spaced slices to read.

    Returns:
        The blur in mm, or None where fewer than :data:`MIN_EDGES` steps were found (no body outline or chest wall
        in view: nothing to measure on).
    """
    hu = np.asarray(hu)
    pixel = float(np.sqrt(float(pixel_mm[0]) * float(pixel_mm[1])))
    reach = max(3, int(round(STEP_REACH_MM / pixel)))
    picked = np.unique(np.linspace(0, len(hu) - 1, min(len(hu), max_slices)).astype(int))
    sigmas = np.concatenate([step_blur_px(hu[z], reach) for z in picked])
    if sigmas.size < MIN_EDGES:
        return None
    return float(np.median(sigmas)) * pixel


def slice_blur_mm(hu: np.ndarray, pixel_mm: tuple[float, float], slices: np.ndarray) -> np.ndarray:
    """The blur (mm, as :func:`edge_blur_mm`) of each of ``slices`` read on its own: breathing or moving blurs some
    slices of a sharp study (the lung bases most), which the study's median does not see.

    Returns:
        float32 ``(z,)``: the figure of each slice asked for, NaN elsewhere and where a slice holds fewer than
        :data:`MIN_SLICE_EDGES` steps.
    """
    import cv2

    hu = np.asarray(hu)
    out = np.full(len(hu), np.nan, dtype=np.float32)
    pixel = float(np.sqrt(float(pixel_mm[0]) * float(pixel_mm[1])))
    halve = pixel < FINE_PIXEL_MM and min(hu.shape[1:]) >= 64
    read_pixel = 2.0 * pixel if halve else pixel
    reach = max(3, int(round(STEP_REACH_MM / read_pixel)))
    for z in np.asarray(slices, dtype=int):
        image = hu[z].astype(np.float32)
        if halve:
            image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        sigmas = step_blur_px(image, reach)
        if sigmas.size >= MIN_SLICE_EDGES:
            blur = float(np.median(sigmas)) * read_pixel
            out[z] = np.sqrt(max(blur**2 - (0.25 * pixel**2 if halve else 0.0), 0.0))
    return out


def step_blur_px(hu_slice: np.ndarray, reach_px: int) -> np.ndarray:
    """The blur (pixels) at each air/lung-to-soft-tissue step of one slice (see the module's note)."""
    image = np.asarray(hu_slice, dtype=np.float32)
    fine_x, fine_y, fine = _gradient(image, FINE_PX)
    coarse = _gradient(image, COARSE_PX)[2]
    ys, xs = np.nonzero(fine > MIN_GRADIENT)
    if ys.size == 0:
        return np.empty(0)
    nx, ny = fine_x[ys, xs] / fine[ys, xs], fine_y[ys, xs] / fine[ys, xs]  # towards the brighter side

    def at(values: np.ndarray, steps: float) -> np.ndarray:
        rows = np.clip(np.rint(ys + steps * ny).astype(int), 0, image.shape[0] - 1)
        cols = np.clip(np.rint(xs + steps * nx).astype(int), 0, image.shape[1] - 1)
        return values[rows, cols]

    peak = fine[ys, xs]
    on_ridge = (peak >= at(fine, 1.0)) & (peak >= at(fine, -1.0))  # the edge's centre across it
    dark, bright = at(image, -reach_px), at(image, reach_px)
    step = (on_ridge & (dark >= DARK_SIDE_HU[0]) & (dark < DARK_SIDE_HU[1]) & (bright > BRIGHT_SIDE_HU[0])
            & (bright < BRIGHT_SIDE_HU[1]))
    fine_var, coarse_var = FINE_PX**2 + DIFFERENCE_VAR, COARSE_PX**2 + DIFFERENCE_VAR
    ratio = np.clip(coarse[ys, xs][step] / peak[step], np.sqrt(fine_var / coarse_var) + 1e-3, 0.999)
    # sqrt(sigma² + fine_var) / sqrt(sigma² + coarse_var) = ratio, solved for sigma
    return np.sqrt(np.maximum((ratio**2 * coarse_var - fine_var) / (1.0 - ratio**2), 0.0))


def _gradient(image: np.ndarray, sigma_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x and y derivatives (per pixel, central differences) of the image blurred by ``sigma_px``, and their norm."""
    import cv2

    blurred = cv2.GaussianBlur(image, (0, 0), sigma_px)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)
    return gx, gy, np.hypot(gx, gy)
