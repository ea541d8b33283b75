"""Hounsfield units estimated back from a CT exported without them (an 8-bit window, an offset without rescale).

A chest CT written as grey levels through a linear window (``g = 255 (HU - low) / (high - low)``, clipped) keeps the
order and the spacing of its tissues, so the window can be found again from three of them:

* **air** (-1000 HU): the file's lowest value when the values just above it are common too (a window whose floor is
  at or below air clips it there), or failing that a peak among the lowest values that lies around the body, not in
  it (the air outside the body, above a padding value or a black frame; inside, the lowest peak is the lung's);
* **fat** (about -110 HU) and **soft tissue** (muscle, blood, heart: about +40 HU): the two peaks of the body's
  histogram, one of them its commonest value, with a valley between.

Air and soft tissue give the scale (1040 HU apart); fat confirms it: the fat-to-soft-tissue distance must be the
~155 HU it is in chest CT (measured on the real HU volumes of ``../shared/data``: 140-180 HU), within -20 %/+25 %. An
export that shows neither peak (a CLAHE image, a single cropped slice, an MR) or whose scale disagrees (a window
that clips the lungs) gets no estimate and stays grey levels.

On lung-window exports (floors -1000 to -1400 HU, widths 1200-2040 HU, 8 or 12 bits) of the five real HU chest
volumes there, the estimate lands within 30 HU at -850 and -500 HU on all but one volume (80 HU on the lung bases,
whose fat and soft tissue lie only 140 HU apart). A floor at -900 HU clips aerated lung and is refused (below),
except on the LIDC slices, whose lungs are denser than it (-850 HU read 130 HU too low).
MedSeg's 80 lung-window web slices (framed in black, cropped, some with text burnt in) get a window on 40, 28 of them
with floors of -1230 to -1400 HU (W1500/L-600 puts it at -1350), the others from -1000 to -1542. The table:
``python -m jcs_viewer.train.hu_windows``.
A window that clips the lungs themselves is not recovered: its lowest value fills the chest (more than a fifth of
the body), or, where its floor lies in the aerated lung (-900 HU and above), is the lungs' commonest value; the file
stays grey levels, and the assessment says so (:func:`jcs_viewer.pipeline.assess.clipped_reason`, or
:func:`no_window_reason`). Only where a crop cuts the lungs at its edges is the floor not judged (the crop's -900 HU
export is read with -850 HU 96 HU too low).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR_HU, FAT_HU, SOFT_TISSUE_HU = -1000.0, -110.0, 40.0
#: fat to soft-tissue peak distance in chest CT (HU), and the ratio range of the air-based scale to the one this
#: distance gives that is accepted
FAT_TO_SOFT_HU = 155.0
SCALE_AGREEMENT = (0.8, 1.25)
#: the values within 3 % of the range above the lowest hold at least this share of the lowest value's count when
#: the lowest value is air (see estimate_hu)
MIN_ABOVE_FLOOR = 0.05
#: histogram bins over the file's value range, at most (16-bit files are binned, 8-bit ones kept per value)
MAX_BINS = 2048
#: fewer voxels than a 128 x 128 slice make peaks of counting noise
MIN_VOXELS = 128 * 128
#: more of the body than this at the lowest value is a window that clips the lungs with the air: nothing to read
#: back (lung-window exports of the real chests and the phantom: 0-3 %; windows whose floor is -700 HU or higher:
#: 6-37 %, the cropped ones lowest; LIDC2, stored through a soft-tissue window: 41 %). Those under this bound are
#: caught by the lung's mode at the floor (:func:`_lung_mode_at_floor`)
MAX_CLIPPED_BODY_SHARE = 0.2
#: the dark values inside the body at the lowest value, at most this share of the lung's peak (see
#: :func:`_lung_mode_at_floor`)
MAX_FLOOR_TO_LUNG_PEAK = 1.0
#: ... judged only where the lungs enclosed by the body fill at least this share of the slices read: the airways
#: alone are air, at the floor of any lung window
MIN_ENCLOSED_LUNG = 0.02


@dataclass(frozen=True)
class HuEstimate:
    """A linear map from the file's values to estimated HU: ``hu = slope * value + intercept``."""

    slope: float
    intercept: float
    air_value: float
    fat_value: float
    soft_tissue_value: float

    def to_hu(self, array: np.ndarray) -> np.ndarray:
        """``array`` (z, y, x) in estimated HU, int16, slice by slice."""
        out = np.empty(array.shape, np.int16)
        for z in range(array.shape[0]):
            out[z] = np.clip(np.rint(array[z].astype(np.float32) * self.slope + self.intercept), -32768, 32767)
        return out

    def window(self, low: float, high: float) -> tuple[float, float]:
        """The HU window the values ``low``..``high`` stand for."""
        return self.slope * low + self.intercept, self.slope * high + self.intercept


def estimate_hu(array: np.ndarray) -> HuEstimate | None:
    """The map from ``array``'s values (z, y, x; a chest CT without HU) to HU, or None when it cannot be found."""
    sample = array[:: max(1, array.shape[0] // 32)].ravel()
    low, high = int(sample.min()), int(sample.max())
    width = max(1, -(-(high - low + 1) // MAX_BINS))
    counts = np.bincount(((sample.astype(np.int64) - low) // width)).astype(float)
    if len(counts) < 32 or sample.size < MIN_VOXELS:
        return None
    # The lowest value is air when the values just above it are common too: air's noise above a window's floor,
    # or the air right above a padding value. A lone spike is a black border around the image (MedSeg's web
    # images: 0-2 % above it; the real exports: 16 % or more).
    floor_is_air = counts[1:1 + max(2, len(counts) // 32)].sum() >= MIN_ABOVE_FLOOR * counts[0]
    counts[0] = counts[-1] = 0  # clipped ends are many tissues at one value, not a tissue's peak
    if counts.sum() == 0:
        return None
    body_floor = _otsu(counts)
    bodies = _bodies(array, low + body_floor * width)
    if _clipped_body_share(array, bodies) > MAX_CLIPPED_BODY_SHARE or _lung_mode_at_floor(array, bodies,
                                                                                        low + body_floor * width):
        return None
    pairs = _tissue_pairs(counts, body_floor)
    air_peaks = _air_peaks(array, bodies, counts, body_floor, low, width)
    for air in ([0] if floor_is_air else []) + air_peaks:  # the lowest value first: a window's floor clips air there
        for fat, soft in pairs:
            slope = (SOFT_TISSUE_HU - AIR_HU) / (soft - air)  # HU per bin
            agreement = slope * (soft - fat) / FAT_TO_SOFT_HU
            if not SCALE_AGREEMENT[0] <= agreement <= SCALE_AGREEMENT[1]:
                continue
            intercept = SOFT_TISSUE_HU - (low + soft * width) * slope / width
            return HuEstimate(slope / width, intercept, low + air * width, low + fat * width, low + soft * width)
    return None


def _air_peaks(array: np.ndarray, bodies: dict[int, np.ndarray], counts: np.ndarray, body_floor: int, low: int,
               width: int) -> list[int]:
    """Peaks among the lowest bins that may be air: more than a few stray pixels, and lying around the body, not in
    it (a crop without air around the body has the lung's peak there)."""
    smoothed = _smooth(counts, 1.0)
    peaks = [p for p in _peaks(smoothed, 1, body_floor) if p < 0.45 * body_floor]
    commonest = max((smoothed[p] for p in peaks), default=0.0)
    return [p for p in peaks if smoothed[p] >= 0.05 * commonest
            and _share_in_body(array, bodies, low + (p - 1) * width, low + (p + 2) * width) <= 0.5]


def _bodies(array: np.ndarray, body_floor: float) -> dict[int, np.ndarray]:
    """The body of up to 9 evenly spaced slices that hold some: slice index -> mask.

    A body is approximated by the pixels inside both the row span and the column span of the tissue (values above
    ``body_floor``, which leaves out the noise of the air): no morphology, and the table's curve adds little.
    """
    bodies = {}
    for z in np.unique(np.linspace(0, len(array) - 1, min(len(array), 9)).astype(int)):
        tissue = array[z] > body_floor
        if tissue.sum() >= 0.05 * tissue.size:
            bodies[int(z)] = _spans(tissue) & _spans(tissue.T).T
    return bodies


def _clipped_body_share(array: np.ndarray, bodies: dict[int, np.ndarray]) -> float:
    """The median share of the body (:func:`_bodies`) at ``array``'s lowest value."""
    low = array.min()
    shares = [np.count_nonzero(inside & (array[z] == low)) / max(np.count_nonzero(inside), 1)
              for z, inside in bodies.items()]
    return float(np.median(shares)) if shares else 0.0


def _lung_mode_at_floor(array: np.ndarray, bodies: dict[int, np.ndarray], body_floor: float) -> bool:
    """Whether the commonest value of the lungs (the dark regions the body encloses) is the array's lowest: a floor
    above air.

    A window whose floor lies in the aerated lung (-950 to -850 HU) clips part of the parenchyma with the air, and
    the lung's mode sits at the floor; read with air there, the scale stretches (the real chests: -850 HU read 45 to
    130 HU too low). Exports with floors at or below air keep the floor under a third of the lung's peak (the real
    HU volumes of ``../shared/data``: at most 0.39 of it); floors of -900 HU put 2.2 to 46 times the peak there,
    except where the lung itself is denser than the floor (the LIDC slices).
    """
    import cv2

    low = array.min()
    dark = []
    for z in bodies:  # the dark regions enclosed by tissue: lungs and airways, not the air around the body
        below = (array[z] < body_floor).astype(np.uint8)
        _, labels = cv2.connectedComponents(below, connectivity=4)
        outside = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        dark.append(array[z][below.astype(bool) & ~np.isin(labels, outside)])
    values = np.concatenate(dark).astype(np.int64) - int(low) if dark else np.empty(0, np.int64)
    if values.size < MIN_ENCLOSED_LUNG * len(bodies) * array[0].size:  # airways only (a crop's lungs touch its edges)
        return False
    counts = np.bincount(values).astype(float)
    at_floor, counts[0] = counts[0], 0.0
    return at_floor > MAX_FLOOR_TO_LUNG_PEAK * _smooth(counts, 1.0).max()


def _share_in_body(array: np.ndarray, bodies: dict[int, np.ndarray], start: float, stop: float) -> float:
    """The share of the pixels valued in [start, stop) that lie inside the body (:func:`_bodies`)."""
    inside = total = 0
    for z, body in bodies.items():
        band = (array[z] >= start) & (array[z] < stop)
        inside += np.count_nonzero(band & body)
        total += np.count_nonzero(band)
    return inside / total if total else 1.0


def _spans(mask: np.ndarray) -> np.ndarray:
    """Each row of ``mask`` filled from its first to its last True pixel."""
    rows = mask.any(axis=1)
    first = np.where(rows, mask.argmax(axis=1), mask.shape[1])
    last = np.where(rows, mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1), -1)
    columns = np.arange(mask.shape[1])
    return (columns >= first[:, None]) & (columns <= last[:, None])


def _tissue_pairs(counts: np.ndarray, body_floor: int) -> list[tuple[int, int]]:
    """(fat, soft tissue) bin pairs above ``body_floor``, the most voxels first, found at several smoothings.

    A pair is two peaks of the histogram smoothed at a scale about a tenth of their distance, with a valley between,
    one of them (nearly) the body's commonest value.
    """
    found: list[tuple[float, int, int]] = []
    n = len(counts)
    for sigma in np.geomspace(0.6, max(n / 40, 0.7), 14):
        smoothed = _smooth(counts, float(sigma))
        commonest = smoothed[body_floor:n - 1].max()
        peaks = _peaks(smoothed, body_floor, n - 1)
        for i, fat in enumerate(peaks):
            for soft in peaks[i + 1:]:
                if not 5 * sigma <= soft - fat <= 14 * sigma:
                    continue
                valley = smoothed[fat:soft + 1].min()
                # deeper than counting noise: a smoothed count's spread is about sqrt(n / 3.5 sigma)
                depth = max(0.08 * valley, 4 * np.sqrt(valley / (3.5 * sigma)))
                if min(smoothed[fat], smoothed[soft]) < valley + depth:
                    continue  # no valley: one broad peak, or noise
                if max(smoothed[fat], smoothed[soft]) < 0.8 * commonest:
                    continue
                found.append(((smoothed[fat] + smoothed[soft]) * (soft - fat), fat, soft))
    return [(fat, soft) for _, fat, soft in sorted(found, reverse=True)]


def _smooth(counts: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return np.convolve(np.pad(counts, radius, mode="edge"), kernel / kernel.sum(), mode="valid")


def _peaks(values: np.ndarray, start: int, stop: int) -> list[int]:
    return [i for i in range(max(start, 1), min(stop, len(values) - 1))
            if values[i] > values[i - 1] and values[i] >= values[i + 1]]


def _otsu(counts: np.ndarray) -> int:
    """The bin that splits ``counts`` into two classes of least within-class variance (air and lung / body)."""
    p = counts / counts.sum()
    weight = np.cumsum(p)
    mean = np.cumsum(p * np.arange(len(p)))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * weight - mean) ** 2 / (weight * (1 - weight))
    return int(np.nanargmax(between))


def estimated_hu(array: np.ndarray, name: str, warnings: list[str]) -> np.ndarray | None:
    """``array`` (a chest CT without HU) in estimated HU with a note naming ``name`` in ``warnings``, or None."""
    estimate = estimate_hu(array)
    if estimate is None:
        return None
    first, last = int(array.min()), int(array.max())
    if first >= 0 and last <= 255:  # 8 bits: the export's whole range, not only the values this study reached
        first, last = 0, 255
    low, high = estimate.window(first, last)
    warnings.append(
        f"The values of {name} are not Hounsfield units. They were read as a CT exported through a linear window, "
        f"values {first}..{last} standing for about {low:.0f}..{high:.0f} HU, found from its air, fat and soft "
        f"tissue (values {estimate.air_value:g}, {estimate.fat_value:g} and {estimate.soft_tissue_value:g}), and "
        "mapped back to HU: densities are estimates, within about 50 HU.")
    return estimate.to_hu(array)


def no_window_reason(name: str, missing_intercept: bool = False) -> str:
    """Why a volume file or CT series without HU, whose window :func:`estimate_hu` did not find, is not read.

    ``missing_intercept``: a series that says it is CT, whose values may lack their RescaleIntercept.
    """
    what = ("hold no air at about -1000 HU (is its RescaleIntercept missing?)" if missing_intercept else
            "are not Hounsfield units")
    return (f"The values of {name} {what}, and no lung window could be found in them (the air, fat and soft tissue "
            "a chest CT exported through one shows): a window that clips the lungs (a soft-tissue window, or a floor "
            "above air), or a curve that is not linear, cannot be read back, so the models were not run; open the "
            "study in Hounsfield units.")
