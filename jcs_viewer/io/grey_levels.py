"""Intensities that are not HU, brought to the 0..255 grey levels the models and the display read them in.

A volume without Hounsfield units (``Volume.is_hu`` False) is read as 8-bit grey levels everywhere: the nets
divide by 255, the display's full range is 0..255. A 16-bit PNG, a 12-bit MR-like NIfTI or a CT stored with an
offset and no rescale would otherwise saturate at 255: its lungs and chest wall one white. They are mapped
linearly instead, from 0 (or their minimum, where it is negative) to their maximum, so that the same slices saved
at 8 or 16 bits read alike.
"""

from __future__ import annotations

import numpy as np


#: a CT in HU has air (about -1000 HU) outside the body and in the airways; values whose low end stays above this
#: are not HU
HU_AIR_LIMIT = -500.0
#: the least share of a CT in HU within 100 HU of air (-1000)
MIN_AIR_SHARE = 0.005


def looks_like_hu(array: np.ndarray) -> bool:
    """Whether ``array`` (z, y, x) holds air as HU do: its low end (0.5th percentile) below -500, and at least
    0.5 % of it within 100 HU of -1000 (over up to 16 evenly spaced slices, every other pixel).

    The second test keeps out values shifted below HU (a CT stored minus an offset: air at -4400), which the first
    alone took for HU; a chest CT has air around the body or in its lungs there (the TotalSeg crop, hardly any air
    around it: 2.5 %).
    """
    sample = array[:: max(1, array.shape[0] // 16), ::2, ::2]
    if float(np.percentile(sample, 0.5)) >= HU_AIR_LIMIT:
        return False
    return bool(np.count_nonzero((sample >= -1100) & (sample <= -900)) >= MIN_AIR_SHARE * sample.size)


def to_grey_levels(array: np.ndarray, name: str, warnings: list[str]) -> np.ndarray:
    """``array`` (z, y, x) as int16 grey levels 0..255.

    Values already within 0..255 are kept as they are; others are scaled linearly from ``min(0, minimum)`` to
    the maximum, slice by slice (an int16 array in place), and a note naming ``name`` ("the series", a file
    name) is added to ``warnings``.
    """
    low, high = int(array.min()), int(array.max())
    if low >= 0 and high <= 255:
        return array if array.dtype == np.int16 else array.astype(np.int16)
    floor = min(low, 0)
    scale = np.float32(255.0 / max(high - floor, 1))
    out = array if array.dtype == np.int16 and array.flags.writeable else np.empty(array.shape, np.int16)
    for z in range(array.shape[0]):
        out[z] = np.rint((array[z].astype(np.float32) - floor) * scale)
    warnings.append(f"The intensities of {name}, {low}..{high}, are not Hounsfield units: they were scaled "
                    "linearly to the grey levels 0..255 the models read.")
    return out
