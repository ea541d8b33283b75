"""Key-image rendering with numpy: lung window, lesion overlay, activation-map blend.

Everything stays 8-bit RGB at report resolution. The lesion overlay must survive grey
printing, so it is not a colour alone: a hatched fill and a white-inside / black-outside
double edge mark it; the activation colour map is monotonic in lightness.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from jcs_viewer.vocabulary import LUNG_WINDOW_CENTER, LUNG_WINDOW_WIDTH

LUNG_WINDOW = (LUNG_WINDOW_WIDTH, LUNG_WINDOW_CENTER)  # width, level (HU)
LESION_RGB = np.array([235, 70, 40], dtype=np.float32)
LESION_ALPHA = 0.35
HATCH_PERIOD = 6  # px between the fill's diagonal lines
HATCH_LIGHT_RGB = np.array([255, 215, 200], dtype=np.float32)
HATCH_DARK_RGB = np.array([90, 25, 10], dtype=np.float32)
CAM_ALPHA = 0.6
CAM_CONTOUR = 128  # activation outlined at half of full scale
# Lightness rises monotonically from black to pale yellow (an inferno-like ramp), so the
# activation reads the same in grey.
_CAM_ANCHORS = np.array(
    [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99],
     [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Crop:
    """The shared field of view of the key images: a box in slice pixels and the output size."""

    y0: int
    y1: int
    x0: int
    x1: int
    out_h: int
    out_w: int
    mm_per_px: float  # of the output image, equal in x and y


def window_to_uint8(image: np.ndarray, width: float, level: float) -> np.ndarray:
    """Map ``[level - width/2, level + width/2]`` to 0..255."""
    lo = level - width / 2.0
    scaled = (image.astype(np.float32) - lo) * (255.0 / width)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def display_window(volume_array: np.ndarray, is_hu: bool) -> tuple[float, float]:
    """Lung window for HU images; the 1st-99th percentile range for other intensities."""
    if is_hu:
        return LUNG_WINDOW
    sample = volume_array[:: max(1, volume_array.shape[0] // 16)]
    lo, hi = np.percentile(sample, [1, 99])
    width = max(float(hi - lo), 1.0)
    return width, float(lo) + width / 2.0


def field_of_view(lung_mask: np.ndarray | None, slice_shape: tuple[int, int], spacing_yx: tuple[float, float],
                  max_px: int = 420, margin: float = 0.12, include: np.ndarray | None = None) -> Crop:
    """Crop every key image to the lungs (plus a margin) with square output pixels.

    The same box on every slice keeps the images comparable and the scale bar identical.
    ``include`` (a ``(h, w)`` bool mask) widens the box so that it also holds those pixels:
    the activation map's hot regions, which must not be cropped away when the classifier
    looked outside the lungs.
    """
    h, w = slice_shape
    y0, y1, x0, x1 = 0, h, 0, w
    if lung_mask is not None and np.any(lung_mask):
        rows = np.flatnonzero(np.any(lung_mask, axis=(0, 2)))
        cols = np.flatnonzero(np.any(lung_mask, axis=(0, 1)))
        my, mx = int((rows[-1] - rows[0]) * margin) + 2, int((cols[-1] - cols[0]) * margin) + 2
        y0, y1 = max(0, rows[0] - my), min(h, rows[-1] + 1 + my)
        x0, x1 = max(0, cols[0] - mx), min(w, cols[-1] + 1 + mx)
        if include is not None and np.any(include):
            rows = np.flatnonzero(np.any(include, axis=1))
            cols = np.flatnonzero(np.any(include, axis=0))
            y0, y1 = min(y0, max(0, int(rows[0]) - 4)), max(y1, min(h, int(rows[-1]) + 5))
            x0, x1 = min(x0, max(0, int(cols[0]) - 4)), max(x1, min(w, int(cols[-1]) + 5))
    sy, sx = spacing_yx
    height_mm, width_mm = (y1 - y0) * sy, (x1 - x0) * sx
    mm_per_px = max(height_mm, width_mm) / max_px
    return Crop(int(y0), int(y1), int(x0), int(x1), max(1, round(height_mm / mm_per_px)),
                max(1, round(width_mm / mm_per_px)), mm_per_px)


def _resample(image: np.ndarray, crop: Crop, resample: int) -> np.ndarray:
    part = np.ascontiguousarray(image[crop.y0 : crop.y1, crop.x0 : crop.x1])
    return np.asarray(Image.fromarray(part).resize((crop.out_w, crop.out_h), resample))


def _shift_or(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square, with numpy shifts (no scipy)."""
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            out[yd, xd] |= mask[ys, xs]
    return out


def lesion_overlay(gray: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """RGB image: hatched translucent fill, a white inner and a black outer edge.

    Args:
        gray: ``uint8 (h, w)`` windowed CT at output resolution.
        lesion: ``bool (h, w)`` at the same resolution.
    """
    rgb = np.repeat(gray[..., None].astype(np.float32), 3, axis=2)
    if lesion.any():
        rgb[lesion] = rgb[lesion] * (1 - LESION_ALPHA) + LESION_RGB * LESION_ALPHA
        yy, xx = np.indices(lesion.shape)
        hatch = lesion & (((yy + xx) % HATCH_PERIOD) == 0)
        # Diagonal lines that contrast with what lies under them (light on dark lung, dark on
        # bright consolidation), so the fill reads as a texture in grey, not as a faint tint.
        luma = rgb[hatch] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        rgb[hatch] = np.where((luma < 128)[:, None], HATCH_LIGHT_RGB, HATCH_DARK_RGB)
        inner = lesion & _shift_or(~lesion, 1)  # lesion pixels touching background
        outer = _shift_or(lesion, 2) & ~lesion
        rgb[outer] = 0.0
        rgb[inner] = 255.0
    return rgb.astype(np.uint8)


def cam_colours(values: np.ndarray) -> np.ndarray:
    """``uint8`` activation 0..255 -> RGB float32 on the lightness-monotonic ramp."""
    pos = values.astype(np.float32) / 255.0 * (len(_CAM_ANCHORS) - 1)
    i = np.clip(pos.astype(np.int32), 0, len(_CAM_ANCHORS) - 2)
    t = (pos - i)[..., None]
    return _CAM_ANCHORS[i] * (1 - t) + _CAM_ANCHORS[i + 1] * t


def cam_overlay(gray: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Blend the activation map over the CT and outline where it reaches half of full scale.

    Opacity grows with activation so weak areas stay readable; the outline (white inside,
    black outside) shows the hot region in grey print, where the colour ramp alone blends
    into bright tissue.
    """
    rgb = np.repeat(gray[..., None].astype(np.float32), 3, axis=2)
    alpha = (cam.astype(np.float32) / 255.0 * CAM_ALPHA)[..., None]
    out = rgb * (1 - alpha) + cam_colours(cam) * alpha
    hot = cam >= CAM_CONTOUR
    if hot.any():
        out[hot & _shift_or(~hot, 1)] = 255.0
        out[_shift_or(hot, 1) & ~hot] = 0.0
    return out.astype(np.uint8)


def upsample_cam(cam: np.ndarray, slice_shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a reduced-resolution activation map to the slice size."""
    h, w = slice_shape
    cam = np.asarray(cam, dtype=np.uint8)
    if cam.shape == (h, w):
        return cam
    return np.asarray(Image.fromarray(cam).resize((w, h), Image.BILINEAR))


def render_pair(ct_slice: np.ndarray, lesion_slice: np.ndarray, cam: np.ndarray | None, crop: Crop,
                window: tuple[float, float]) -> tuple[np.ndarray, np.ndarray | None]:
    """The lesion-overlay image and the activation-map image of one slice (RGB uint8)."""
    gray = _resample(window_to_uint8(ct_slice, *window), crop, Image.BILINEAR)
    lesion = _resample((lesion_slice > 0).astype(np.uint8) * 255, crop, Image.NEAREST) > 127
    left = lesion_overlay(gray, lesion)
    right = None
    if cam is not None:
        right = cam_overlay(gray, _resample(upsample_cam(cam, ct_slice.shape), crop, Image.BILINEAR))
    return left, right


def colour_bar(width: int = 256, height: int = 12) -> np.ndarray:
    """The activation ramp as an RGB strip (low on the left)."""
    ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    return cam_colours(ramp).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB array as PNG in memory."""
    buffer = io.BytesIO()
    # Fast compression: reportlab decodes the PNG and deflates the pixels again for the PDF.
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
