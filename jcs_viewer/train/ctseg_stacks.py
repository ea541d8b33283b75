"""The whole analysis on COVID-19-CT-Seg volume groups read as the app reads them: 8-bit slice stacks.

``evaluate seg --dataset ctseg`` scores a lesion network's raw output on single slices. This scores what a
reader gets: each volume group of a split is loaded as a folder of PNG slices would be (8-bit grey levels,
not HU), analysed end to end (learned lungs, the lesion network chosen for 8-bit studies, lesions kept inside
the lungs), and the lesion and lung masks are compared with the radiologists' masks, pooled over the group's
slices (Dice per volume). :func:`evaluate_medseg_slices` does the same for MedSeg's slices, each read as a
one-slice stack (Dice per slice, as ``evaluate seg`` averages it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from jcs_viewer.pipeline.engine import ProgressCallback
    from jcs_viewer.pipeline.options import AnalysisOptions


def evaluate_ctseg_stacks(ctseg_root: Path, split: str = "test", options: AnalysisOptions | None = None,
                          progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Lesion and lung Dice per CT-Seg volume group of ``split`` through :func:`jcs_viewer.pipeline.analyze`.

    Args:
        ctseg_root: the ``covid19_ct_seg20_slices`` folder (``ct/``, ``lungs/``, ``lesions/``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (whole volume groups).
        options: :class:`~jcs_viewer.pipeline.AnalysisOptions` (defaults when None).
        progress: passed to ``analyze``.

    Returns:
        JSON-ready dict: per group lesion Dice, lung Dice, lesion mL found and expected (at the 1 mm voxels a
        slice stack is given), the decision and its reason, the lesion network used; and the mean over groups.
    """
    from jcs_viewer.io.image_stack import load_image_stack
    from jcs_viewer.pipeline import AnalysisOptions, analyze
    from jcs_viewer.pipeline.runner import load_models
    from jcs_viewer.train.ctseg_train import ctseg_files
    from jcs_viewer.train.images import read_mask
    from jcs_viewer.train.metrics import dice
    from jcs_viewer.train.splits import ctseg_group, ctseg_group_span

    options = options or AnalysisOptions()
    models = load_models(options)
    groups: dict[int, list[tuple[Path, Path]]] = {}
    for image, lesion in ctseg_files(Path(ctseg_root), split, "lesions"):
        groups.setdefault(ctseg_group(int(image.stem)), []).append((image, lesion))
    rows = []
    for g, pairs in sorted(groups.items()):
        volume = load_image_stack([image for image, _ in pairs])
        result = analyze(volume, options, progress=progress, models=models)
        lesion_ref = np.stack([read_mask(m) > 0 for _, m in pairs])
        lung_ref = np.stack([read_mask(Path(ctseg_root) / "lungs" / m.name) > 0 for _, m in pairs])
        lesion, lung = result.lesion_mask > 0, result.lung_mask > 0
        rows.append({
            "volume_group": ctseg_group_span(g), "slices": len(pairs),
            "lesion_dice": round(dice(lesion, lesion_ref), 4),
            "lung_dice": round(dice(lung, lung_ref), 4),
            "lesion_ml": round(float(lesion.sum()) / 1000.0, 1),
            "reference_lesion_ml": round(float(lesion_ref.sum()) / 1000.0, 1),
            "positive_slices": int(result.positive_slices),
            "decision": result.decision, "decision_reason": result.decision_reason,
            "seg_weights": result.models["seg"]["name"],
        })
    def mean(key):
        return round(float(np.mean([r[key] for r in rows])), 4) if rows else None
    return {"task": "ctseg_stacks", "split": split, "volumes": rows,
            "mean_lesion_dice": mean("lesion_dice"), "mean_lung_dice": mean("lung_dice")}


def evaluate_medseg_slices(medseg_root: Path, split: str = "test", options: AnalysisOptions | None = None,
                           progress: ProgressCallback | None = None,
                           ids: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Lesion Dice per MedSeg slice of ``split`` (only the slice ``ids`` given) through
    :func:`jcs_viewer.pipeline.analyze`, each slice read as a one-slice 8-bit stack (a single slice is not
    assessable, but its lungs and lesions are found).

    Returns:
        JSON-ready dict: per slice lesion Dice, the share of the slice called lung and the lesion network used;
        the mean lesion Dice over slices.
    """
    from jcs_viewer.io.image_stack import load_image_stack
    from jcs_viewer.pipeline import AnalysisOptions, analyze
    from jcs_viewer.pipeline.runner import load_models
    from jcs_viewer.train.datasets import medseg_pairs
    from jcs_viewer.train.images import read_mask
    from jcs_viewer.train.metrics import dice
    from jcs_viewer.train.splits import medseg_image_name

    options = options or AnalysisOptions()
    models = load_models(options)
    pairs = medseg_pairs(Path(medseg_root), split)
    if ids is not None:
        wanted = {medseg_image_name(i) for i in ids}
        pairs = [(image, mask) for image, mask in pairs if image.name in wanted]
    rows = []
    for image, mask in pairs:
        result = analyze(load_image_stack([image]), options, progress=progress, models=models)
        rows.append({"slice": image.name,
                     "lesion_dice": round(dice(result.lesion_mask[0] > 0, read_mask(mask) > 0), 4),
                     "lung_share": round(float((result.lung_mask[0] > 0).mean()), 4),
                     "seg_weights": result.models["seg"]["name"]})
    mean = round(float(np.mean([r["lesion_dice"] for r in rows])), 4) if rows else None
    return {"task": "medseg_stacks", "split": split, "slices": rows, "mean_lesion_dice": mean}
