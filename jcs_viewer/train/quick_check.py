"""A shipped net read on a few named held-out images: the fast guard that its figures still hold.

Reproducing a manifest's figures takes minutes: every held-out image through every net, the lesion net of 8-bit
studies at two sides, the whole analysis on two CT-Seg volume groups (``tests/test_train_weights*.py``, the
``figures`` tier, and :mod:`jcs_viewer.train.ship` when a run is shipped). :func:`quick_check` reads each net
through the same ``jcs-viewer evaluate`` code on a fixed few images of the same sets (every n-th slice, a short
phantom) and keeps the figures unrounded (the whole analysis' per-slice ones to the 4 decimals ``evaluate stacks``
prints), so a code change that moves how a net reads its images (intensity transform, sides, lung squares, mirror,
the whole analysis' lung and lesion rules) moves them too. ``ship`` records them in the entry (``quick_check``);
the default test run reproduces them in seconds.

``python -m jcs_viewer.train.quick_check NAME [NAME ...]`` recomputes and records them (after a deliberate change
of how a net reads its images, once the full figures have been reproduced or re-measured).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jcs_viewer.train.ctseg_train import CTSEG_FOLDER, MEDSEG_FOLDER

#: MedSeg test slices read (ids; 23 is the consolidated one); every how-many-th CT-Seg test slice is read, and of
#: the Grad-CAM check's MedSeg test slices.
MEDSEG_IDS = (16, 19, 23, 60)
CTSEG_EVERY = 12
MEDSEG_CAM_EVERY = 4
#: COVID-CT test images read per class (spread over the split's order, which groups them by source).
COVID_CT_PER_CLASS = 4
#: A short demo phantom: as the full check's, fewer slices.
PHANTOM_SLICES = 12
#: How far a recorded figure may move, relative and absolute: float sums differ a little between CPUs and thread
#: counts; a change in how a net reads its images moves these figures by far more.
TOLERANCE = 1e-3


def _floats(result: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    return {k: float(result[k]) for k in keys}


def quick_check(name: str, data_root: Path) -> dict[str, dict[str, float]]:
    """The quick figures of the shipped weights ``name`` on the public sets under ``data_root``.

    Args:
        name: a registry name of the lesion, lung or classification weights.
        data_root: the folder holding ``medseg_covid19_ct100_jcs``, ``covid19_ct_seg20_slices`` and
            ``ucsd_covid_ct`` (``../shared/data``).

    Returns:
        check name -> figure -> value (which checks depends on the entry's task and its full figures).
    """
    from jcs_viewer.models.registry import get_weights
    from jcs_viewer.train.ctseg_train import ctseg_files
    from jcs_viewer.train.evaluate import (cls_probabilities, evaluate_cam, evaluate_lungs, evaluate_phantom,
                                           evaluate_seg)
    from jcs_viewer.train.splits import covid_ct_split, medseg_image_name

    entry = get_weights(name)
    data_root = Path(data_root)
    medseg, ctseg = data_root / MEDSEG_FOLDER, data_root / CTSEG_FOLDER
    ctseg_names = [image.name for image, _ in ctseg_files(ctseg, "test")][::CTSEG_EVERY]
    out: dict[str, dict[str, float]] = {}
    if entry.task == "lung":
        result = evaluate_lungs(ctseg / "ct", ctseg / "lungs", name, ctseg_names, intensity="clahe")
        out["ctseg_lungs"] = _floats(result, ("dice", "dice_pooled", "dice_min"))
        return out
    if entry.task == "seg":
        result = evaluate_seg(medseg / "tr_im", medseg / "tr_mask_new", name,
                              [medseg_image_name(i) for i in MEDSEG_IDS])
        out["medseg"] = _floats(result, ("dice", "iou", "dice_pooled"))
        if "ctseg_test" in entry.metrics:
            result = evaluate_seg(ctseg / "ct", ctseg / "lesions", name, ctseg_names, intensity="clahe")
            out["ctseg"] = _floats(result, ("dice", "dice_pooled"))
        if {"ctseg_stacks_test", "medseg_stacks_test"} & set(entry.metrics):
            out["medseg_stacks"] = _medseg_stacks(medseg, name)
        result = evaluate_phantom(name, task="seg", n_slices=PHANTOM_SLICES)
        out["phantom"] = _floats(result, ("dice", "lesion_ml", "lesion_free_ml"))
        return out
    covid, noncovid = covid_ct_split(data_root / "ucsd_covid_ct", "test")
    images = data_root / "ucsd_covid_ct" / "Images"
    covid, noncovid = (names[:: max(1, len(names) // COVID_CT_PER_CLASS)][:COVID_CT_PER_CLASS]
                       for names in (covid, noncovid))
    read = covid + noncovid
    prob, _, _, _ = cls_probabilities(images / "CT_COVID", images / "CT_NonCOVID", name, covid, noncovid)
    out["covid_ct"] = {image: float(p) for image, p in zip(read, prob, strict=True)}
    for dataset, every in (("medseg", MEDSEG_CAM_EVERY), ("ctseg", CTSEG_EVERY)):
        if f"gradcam_{dataset}_test" in entry.metrics:
            result = evaluate_cam(data_root, "test", name, dataset=dataset, every=every)
            out[f"gradcam_{dataset}"] = _floats(result, ("pointing_game", "mass_ratio", "mass_in_lungs"))
    result = evaluate_phantom(name, task="cls", n_slices=PHANTOM_SLICES)
    out["phantom"] = _floats(result, ("mean_probability", "flagged_lesion_free"))
    return out


def _medseg_stacks(medseg: Path, name: str) -> dict[str, float]:
    """The whole analysis on the chosen MedSeg slices, each a one-slice 8-bit stack, with this lesion net."""
    from jcs_viewer.pipeline import AnalysisOptions
    from jcs_viewer.train.ctseg_stacks import evaluate_medseg_slices

    rows = evaluate_medseg_slices(medseg, "test", AnalysisOptions(device="cpu", seg_weights=name),
                                  ids=MEDSEG_IDS)["slices"]
    return {f"{key}_{row['slice']}": float(row[key]) for row in rows for key in ("lesion_dice", "lung_share")}


def record(names: list[str], data_root: Path) -> None:
    """Recompute the quick figures of ``names`` and write them into their manifest entries."""
    import dataclasses

    from jcs_viewer.models.registry import add_manifest_entry, get_weights

    for name in names:
        entry = get_weights(name)
        add_manifest_entry(dataclasses.replace(entry, quick_check=quick_check(name, data_root)), entry.root)
        print(f"{name}: quick_check recorded", flush=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m jcs_viewer.train.quick_check", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="+", help="registry names of shipped weights")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the public sets' folder")
    args = parser.parse_args(argv)
    record(args.names, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
