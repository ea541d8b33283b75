"""From stored slices (HU or 8-bit) to a model's input tensor, and model outputs back to slices.

Small composable steps, batched torch operations on the inference device so that only the
slices travel to the GPU (int16; float32 for HU slices the app's analysis smooths first)::

    slices (N, H, W) --[HU: harmonise_kernel]--> --to_unit--> 0..1 --resize--> input_size --crop--> 3 channels
    --normalise-->

- Weights trained in the CT-Seg domain (``intensity = "ctseg"``) get the CT-Seg transform
  (:func:`jcs_viewer.pipeline.intensity.ctseg_clahe`, min-max then CLAHE) for HU and 8-bit slices alike.
- Otherwise HU volumes are windowed with the weights entry's ``window = (center, width)`` (HU) and
  mapped linearly to 0..1, clipped: the model then sees what an 8-bit training slice with that
  window showed. Non-HU volumes (``is_hu=False``, 8-bit slice stacks) are already such images:
  their 0..255 values are divided by 255.
- Resizing is bilinear without keeping the aspect ratio (as the official code's cv2.resize).
- Classification crop: when the entry declares ``resize`` larger than ``input_size`` (the
  official classifier: Resize(256) then CenterCrop(224)), the slice is resized to ``resize``
  and centre-cropped; otherwise the whole slice is resized to ``input_size``. Maps computed
  on a crop are pasted back into the uncropped frame (zeros outside) before being stretched
  to the slice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jcs_viewer.vocabulary import IMAGENET_MEAN, IMAGENET_STD
from jcs_viewer.vocabulary import LUNG_WINDOW as DEFAULT_WINDOW  # used only when an entry declares none


def as_hw(size: Any) -> tuple[int, int]:
    """``512`` or ``(512, 512)`` -> ``(512, 512)``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def entry_window(entry: Any) -> tuple[float, float]:
    window = getattr(entry, "window", None) or DEFAULT_WINDOW
    return float(window[0]), float(window[1])


def entry_geometry(entry: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(resize_hw, input_hw)``: the frame the slice is resized to, and the centre crop fed to the net."""
    input_hw = as_hw(getattr(entry, "input_size", 512) or 512)
    resize = getattr(entry, "resize", None)
    resize_hw = as_hw(resize) if resize else input_hw
    if resize_hw[0] < input_hw[0] or resize_hw[1] < input_hw[1]:
        resize_hw = input_hw
    return resize_hw, input_hw


def to_unit(slices, is_hu: bool, window: tuple[float, float]):
    """int16 (N, H, W) tensor -> float32 (N, 1, H, W) in 0..1 (HU: windowed; else /255)."""
    import torch

    x = slices.to(torch.float32)[:, None]
    if is_hu:
        center, width = window
        low = center - width / 2.0
        x = (x - low) / max(width, 1e-6)
    else:
        x = x / 255.0
    return x.clamp_(0.0, 1.0)


#: HU slices are smoothed in-plane by a Gaussian of this sigma (mm) before the nets read them (see
#: :func:`harmonise_kernel`)
KERNEL_SIGMA_MM = 0.6


def harmonise_kernel(slices: np.ndarray, pixel_mm: tuple[float, float]) -> np.ndarray:
    """HU slices ``(N, H, W)`` as float32, smoothed in-plane by a Gaussian of :data:`KERNEL_SIGMA_MM`.

    The nets of the HU path learned from smooth images (MedSeg's web slices, CT-Seg, COVID-CT figures) and read fine
    texture as disease: the real lesion-free chest crop made to look like a sharp lung kernel at 0.75 mm pixels
    (upsampled, unsharp mask, 30 HU of noise) was called positive with 21 of 112 slices and 6.3 mL, with 60 HU of
    noise 50 slices and 41.9 mL; read through this Gaussian, 8 and 7 slices (negative), 1.8 and 3.0 mL. On the
    lesions at hand it costs little: the NY-SBU COVID slices' lesion volumes 193.1 mL in all, 192.7 so; the phantom's
    lesion Dice 0.812 / 0.843 / 0.865 against 0.805 / 0.850 / 0.866 (three seeds); MedSeg's held-out slices read
    back into HU 0.696 against 0.692. The same sigma in mm whatever the pixel, so a study is read alike at any
    matrix (the crop cubically upsampled to 0.75 mm pixels: 7 positive slices without it, none with it).
    """
    import cv2

    sigma_y, sigma_x = (KERNEL_SIGMA_MM / max(float(px), 1e-6) for px in pixel_mm)
    out = np.empty(np.shape(slices), dtype=np.float32)
    for z, image in enumerate(slices):  # OpenCV's separable blur: a tenth of a conv2d's time on the CPU
        out[z] = cv2.GaussianBlur(np.asarray(image, dtype=np.float32), (0, 0), sigmaX=sigma_x, sigmaY=sigma_y,
                                  borderType=cv2.BORDER_REFLECT)
    return out


def resize(x, size_hw: tuple[int, int]):
    """Bilinear resize of an (N, C, H, W) batch (no-op at the same size)."""
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == tuple(size_hw):
        return x
    return F.interpolate(x, size=size_hw, mode="bilinear", align_corners=False)


def center_crop(x, size_hw: tuple[int, int]):
    """Centre crop of an (N, C, H, W) batch to ``size_hw``."""
    h, w = x.shape[-2:]
    top, left = (h - size_hw[0]) // 2, (w - size_hw[1]) // 2
    return x[..., top : top + size_hw[0], left : left + size_hw[1]]


def normalise(x, mean, std):
    """Repeat one channel to three and apply per-channel ``(x - mean) / std``."""
    import torch

    x = x.expand(-1, 3, -1, -1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def entry_boxes(entry: Any, lungs: np.ndarray | None) -> np.ndarray | None:
    """The lung boxes an entry with ``crop = "lungs"`` reads ``(N, H, W)`` slices through; None for the others.

    ``lungs`` is any ``(N, H, W)`` mask or label array (non-zero: lung), read only for such entries.

    Raises:
        ValueError: the entry reads lung squares and no lung masks were given.
    """
    if getattr(entry, "crop", "") != "lungs":
        return None
    if lungs is None:
        raise ValueError(f"{entry.name} reads the square around the lungs: the slices' lung masks are needed")
    from jcs_viewer.pipeline.lung_crop import lung_boxes

    return lung_boxes(lungs)


def prepare_batch(slices: np.ndarray, entry: Any, is_hu: bool, device, boxes: np.ndarray | None = None,
                  pixel_mm: tuple[float, float] | None = None) -> Any:
    """Model input for a batch of stored slices.

    Args:
        slices: ``(N, H, W)`` int16 array (HU or 0..255).
        entry: the weights entry (``window``, ``input_size``, ``mean``, ``std``, optional ``resize``).
        is_hu: whether ``slices`` are Hounsfield units.
        device: torch device for the computation.
        boxes: ``(N, 4)`` lung boxes (:func:`entry_boxes`): each slice's box is resampled to the
            input size instead of the whole slice.
        pixel_mm: the slices' in-plane pixel size ``(dy, dx)``: HU slices read through a window are first smoothed
            by :func:`harmonise_kernel` (the app's analysis gives it; training and evaluation read 8-bit images).

    Returns:
        float32 ``(N, 3, h, w)`` channels-last tensor on ``device``.
    """
    import torch

    resize_hw, input_hw = entry_geometry(entry)
    if getattr(entry, "intensity", "window") == "ctseg":
        from jcs_viewer.pipeline.intensity import ctseg_clahe

        # CLAHE runs on the CPU at the input size; only 8-bit images travel to the device.
        if resize_hw[0] != resize_hw[1] or boxes is not None:
            raise ValueError("the CT-Seg intensity transform needs a square input size and the whole slice")
        grey = ctseg_clahe(np.asarray(slices), is_hu, resize_hw[0])
        x = torch.from_numpy(grey).to(device, non_blocking=True).to(torch.float32).div_(255.0)[:, None]
    else:
        if is_hu and pixel_mm is not None:
            slices = harmonise_kernel(slices, pixel_mm)
        t = torch.from_numpy(np.ascontiguousarray(slices)).to(device, non_blocking=True)
        x = to_unit(t, is_hu, entry_window(entry))
        if boxes is None:
            x = resize(x, resize_hw)
        else:
            from jcs_viewer.pipeline.lung_crop import crop_boxes

            x = crop_boxes(x, boxes, resize_hw)
    if resize_hw != input_hw:
        x = center_crop(x, input_hw)
    x = normalise(x, getattr(entry, "mean", None) or IMAGENET_MEAN, getattr(entry, "std", None) or IMAGENET_STD)
    return x.contiguous(memory_format=torch.channels_last)


def entry_test_sizes(entry: Any) -> tuple[int, ...]:
    """The input sides a lesion net reads each slice at: the entry's ``test_sizes``, else its ``input_size``."""
    return tuple(int(s) for s in getattr(entry, "test_sizes", ()) or ()) or (int(entry.input_size),)


def lesion_probabilities(model, slices: np.ndarray, entry: Any, is_hu: bool, device, out_hw: tuple[int, int],
                         pixel_mm: tuple[float, float] | None = None):
    """A lesion net's probabilities (side output 0) for stored slices, at ``out_hw``.

    With ``test_sizes`` in the entry the slices are read at each size and the probabilities averaged
    (resized to ``out_hw`` first): small, faint lesions gain from the larger sides. ``pixel_mm``: as for
    :func:`prepare_batch`.

    Returns:
        float32 ``(N, 1, *out_hw)`` tensor on ``device``.
    """
    import dataclasses

    sizes = entry_test_sizes(entry)
    total = None
    for size in sizes:
        scaled = dataclasses.replace(entry, input_size=size) if size != entry.input_size else entry
        out = resize(model(prepare_batch(slices, scaled, is_hu, device, pixel_mm=pixel_mm))[:, :1].float(), out_hw)
        total = out if total is None else total.add_(out)
    return total if len(sizes) == 1 else total / len(sizes)


def uncrop(maps, entry: Any):
    """Paste (N, h, w) maps computed on the centre crop back into the resized frame (zeros outside)."""
    import torch.nn.functional as F

    resize_hw, input_hw = entry_geometry(entry)
    if resize_hw == input_hw:
        return maps
    top, left = (resize_hw[0] - input_hw[0]) // 2, (resize_hw[1] - input_hw[1]) // 2
    pad = (left, resize_hw[1] - input_hw[1] - left, top, resize_hw[0] - input_hw[0] - top)
    return F.pad(maps, pad)


def to_uint8(maps) -> np.ndarray:
    """0..1 float maps -> uint8 0..255 numpy (rounded), computed on the maps' device."""
    import torch

    return (maps.float().clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8).cpu().numpy()
