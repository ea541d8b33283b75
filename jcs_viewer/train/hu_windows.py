"""How well :mod:`jcs_viewer.io.hu_estimate` finds the window of a CT exported without HU, on real HU chests.

Each real HU volume of ``../shared/data`` is exported through lung, clipped and soft-tissue windows at 8 bits, and as
12- and 16-bit values with the 1024 offset; the estimate's error in HU is printed at four densities (aerated lung
-850, ground glass -500, fat -110, soft tissue +40), or "none" where no window was found (the file then stays grey
levels). Usage: ``python -m jcs_viewer.train.hu_windows --data ../shared/data``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

#: (name, path parts under the data folder) of the real HU chests
VOLUMES = (
    ("TotalSeg chest crop", ("real_ct_small", "totalsegmentator", "chest_crop", "ct_cropped.nii.gz")),
    ("TotalSeg lung bases", ("real_ct_small", "totalsegmentator", "example_ct_sm.nii.gz")),
    ("CIP COPD thorax", ("real_ct_small", "chest_imaging_platform", "ct-64.nrrd")),
    ("LIDC slices", ("real_ct_small", "lungmask_slices")),
    ("dcmqi 3 slices", ("ct_3slice_dcmqi",)),
)
#: 8-bit windows (low, high HU): lung windows, then floors that clip air or lung, then a soft-tissue window
WINDOWS = ((-1000, 200), (-1024, 1016), (-1350, 150), (-1200, 600), (-1100, 300), (-1000, 400), (-1250, 250),
           (-1400, 200), (-900, 300), (-700, 300), (-160, 240))
PROBES_HU = np.array([-850.0, -500.0, -110.0, 40.0])


def exports(hu: np.ndarray):
    """(label, stored values, the stored value of each probe) for every export of ``hu``."""
    for low, high in WINDOWS:
        stored = np.clip(np.rint((hu - low) / (high - low) * 255), 0, 255).astype(np.int16)
        yield f"8-bit {low}..{high}", stored, (PROBES_HU - low) / (high - low) * 255
    yield "12-bit, offset 1024", np.clip(hu + 1024, 0, 4095).astype(np.int16), PROBES_HU + 1024
    yield "offset 1024, no clip", (hu + 1024).astype(np.int16), PROBES_HU + 1024


def main(argv: list[str] | None = None) -> int:
    from jcs_viewer.io import load_study
    from jcs_viewer.io.hu_estimate import estimate_hu

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    args = parser.parse_args(argv)
    print(f"{'volume':22s} {'export':22s} error at -850 / -500 / -110 / +40 HU")
    for name, parts in VOLUMES:
        path = args.data.joinpath(*parts)
        if not path.exists():
            print(f"{name:22s} (missing: {path})")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hu = load_study(path).array.astype(np.float32)
        for label, stored, probes in exports(hu):
            estimate = estimate_hu(stored)
            errors = ("none" if estimate is None else
                      " / ".join(f"{e:+5.0f}" for e in estimate.slope * probes + estimate.intercept - PROBES_HU))
            print(f"{name:22s} {label:22s} {errors}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
