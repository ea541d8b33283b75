"""The HU window of the public 8-bit training slices, estimated from the data.

The MedSeg / JCS slices (``medseg_covid19_ct100_jcs/tr_im``) are 8-bit PNGs whose
HU window is not documented. The app reads HU studies and must turn them into the
same 8-bit images before ImageNet normalisation, so the window is estimated in
two independent ways (``python -m jcs_viewer.train.window`` recomputes both):

1. **Tissue peaks.** The grey-level histogram of all 80 slices (bins 0 and 255,
   clipped values, excluded; smoothed, σ = 1.5 bins) has three dominant peaks: air
   around the body at grey 59, subcutaneous fat at 214 and soft tissue (muscle,
   mediastinum) at 234. A least-squares line through (−1000 HU, 59),
   (−100 HU, 214), (+40 HU, 234) gives grey = 255·(HU − (C − W/2))/W with
   **C ≈ −600 HU, W ≈ 1500 HU** (fit: C −598, W 1503; lung parenchyma of about
   −850 HU then falls at grey ~85, inside the broad 64–100 lung plateau).
2. **Real HU slices.** The chest-level axial DICOM slices in
   ``covid19_ny_sbu_dicom_slices`` (real HU) are rendered through a grid of
   candidate windows (C −800..−400, W 1000..2000); the window whose 8-bit
   histogram is closest (L1 distance of cumulative histograms over grey 1..254)
   to the MedSeg histogram is C −600, W 1450: (1) within one grid step.

Both agree with the standard lung window (W1500/L−600), which is therefore used:
``TRAINING_WINDOW = (−600, 1500)``; every shipped weights entry carries it as
``window`` and the pipeline maps HU through it. The COVID-CT figure crops come
from many papers with unknown, varying windows; they cannot be calibrated and the
classifier is trained on them as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from jcs_viewer.vocabulary import LUNG_WINDOW

TRAINING_WINDOW = LUNG_WINDOW  # (center, width) in HU
# HU of the three reference tissues, in peak order (air, fat, soft tissue).
REFERENCE_HU = (-1000.0, -100.0, 40.0)
# Chest-level axial slices of the HU DICOM set (the others are abdomen level).
SBU_CHEST_PATIENTS = ("A002304", "A046441", "A048383", "A056642", "A067967", "A072894", "A098752")


def apply_window(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map HU values to uint8 grey through a (center, width) window, clipping outside it."""
    low = center - width / 2.0
    grey = (np.asarray(hu, np.float32) - low) * (255.0 / width)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def grey_histogram(images: list[np.ndarray]) -> np.ndarray:
    """Normalised 256-bin histogram of uint8 images, bins 0 and 255 (clipped values) zeroed."""
    hist = np.zeros(256, np.float64)
    for img in images:
        hist += np.bincount(np.asarray(img, np.uint8).ravel(), minlength=256)
    hist[0] = hist[255] = 0.0
    return hist / max(hist.sum(), 1.0)


def _smooth(hist: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(-4 * int(np.ceil(sigma)), 4 * int(np.ceil(sigma)) + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return np.convolve(hist, kernel / kernel.sum(), mode="same")


def tissue_peaks(hist: np.ndarray, count: int = 3) -> list[int]:
    """Grey levels of the ``count`` highest local maxima of the smoothed histogram, ascending."""
    smooth = _smooth(hist)
    maxima = [i for i in range(1, 255) if smooth[i] >= smooth[i - 1] and smooth[i] > smooth[i + 1]]
    top = sorted(maxima, key=lambda i: smooth[i], reverse=True)[:count]
    return sorted(top)


def fit_window(peaks: list[int], hu: tuple[float, ...] = REFERENCE_HU) -> tuple[float, float]:
    """(center, width) of the linear window mapping the reference HU onto the grey peaks."""
    slope, intercept = np.polyfit(np.asarray(hu), np.asarray(peaks, np.float64), 1)
    width = 255.0 / slope
    center = (127.5 - intercept) / slope
    return float(center), float(width)


def load_grey_images(folder: Path) -> list[np.ndarray]:
    """All PNG/JPG images of a folder as uint8 grey arrays."""
    from jcs_viewer.train.images import read_grey

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return [read_grey(p) for p in paths]


def load_hu_slices(dicom_root: Path, patients: tuple[str, ...] = SBU_CHEST_PATIENTS) -> list[np.ndarray]:
    """HU arrays of the axial DICOM slices of the given patients."""
    import pydicom

    slices = []
    for patient in patients:
        for path in sorted((Path(dicom_root) / patient / "axial").glob("*.dcm")):
            ds = pydicom.dcmread(path)
            hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            slices.append(hu)
    return slices


def match_window(
    target_hist: np.ndarray,
    hu_slices: list[np.ndarray],
    centers: np.ndarray | None = None,
    widths: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Window whose rendering of the HU slices best matches ``target_hist``.

    Returns:
        (center, width, distance) with distance the L1 gap of cumulative histograms.
    """
    centers = np.arange(-800, -399, 25) if centers is None else centers
    widths = np.arange(1000, 2001, 50) if widths is None else widths
    target_cdf = np.cumsum(target_hist)
    best = (0.0, 0.0, np.inf)
    for c in centers:
        for w in widths:
            cdf = np.cumsum(grey_histogram([apply_window(s, c, w) for s in hu_slices]))
            dist = float(np.abs(cdf - target_cdf).sum())
            if dist < best[2]:
                best = (float(c), float(w), dist)
    return best


def estimate(medseg_dir: Path, dicom_root: Path | None = None) -> dict:
    """Recompute both window estimates; see the module docstring."""
    hist = grey_histogram(load_grey_images(medseg_dir))
    peaks = tissue_peaks(hist)
    center, width = fit_window(peaks)
    result: dict = {"peaks_grey": peaks, "reference_hu": list(REFERENCE_HU),
                    "peak_fit": {"center": round(center, 1), "width": round(width, 1)}}
    if dicom_root is not None:
        c, w, d = match_window(hist, load_hu_slices(dicom_root))
        result["dicom_match"] = {"center": c, "width": w, "cdf_l1": round(d, 3)}
    result["training_window"] = {"center": TRAINING_WINDOW[0], "width": TRAINING_WINDOW[1]}
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m jcs_viewer.train.window [DATA_ROOT]``: print both estimates as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[3] / "shared" / "data"
    print(json.dumps(estimate(root / "medseg_covid19_ct100_jcs" / "tr_im", root / "covid19_ny_sbu_dicom_slices")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
