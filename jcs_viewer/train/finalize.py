"""Finalise a run: re-estimate BatchNorm statistics, pick the checkpoint on the validation split.

The lite nets are trained from scratch with BatchNorm on mixed-up (cls) or cropped
(seg) batches, so the running statistics kept during training drift from those of
whole, un-augmented images, and the validation scores of successive epochs jump
(COVID-CT val AUC 0.45–0.84). "Precise BN" re-estimates the statistics as plain
averages over the un-augmented training split in train mode (no labels involved,
no weights changed); it helped the classifier (val accuracy 0.69 → 0.76) but not
the segmenter. Candidates ``best`` (best validation epoch), ``last`` (end of the
schedule), ``average`` (the mean weights of a run with ``--average-from``), and for
a run that continued a checkpoint (``--init``) that checkpoint in the run's
architecture (did the continuation help at all?), are each
scored as trained and recalibrated; the version with the best validation score
(seg Dice, cls validation score) is written to ``final.safetensors``.
The test split is never used.

``python -m jcs_viewer.train.finalize seg|cls RUN_DIR``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def precise_bn(model, images: np.ndarray, batch: int = 32) -> None:
    """Recompute every BatchNorm's running mean/var as the average over ``images`` (N x S x S uint8)."""
    import torch

    from jcs_viewer.train.augment import input_normalisation
    from jcs_viewer.train.predict import _to_input

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over batches
    was_training = model.training
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = _to_input(list(images[start : start + batch]), images.shape[-1], input_normalisation(model)).contiguous(
                memory_format=torch.channels_last)
            model.forward_logits(x) if hasattr(model, "forward_logits") else model(x)
    for m in norms:
        m.momentum = 0.1
    model.train(was_training)


def finalize(task: str, run_dir: Path) -> dict:
    """Recalibrate ``best`` and ``last``, keep the better on validation; returns the summary."""
    import torch
    from safetensors.torch import load_file

    from jcs_viewer.models import build
    from jcs_viewer.train.datasets import covid_ct_items, load_cls_set, load_seg_set, medseg_pairs
    from jcs_viewer.train.metrics import segmentation_metrics
    from jcs_viewer.train.predict import predict_seg
    from jcs_viewer.train.runlog import atomic_save_safetensors, atomic_write_json

    torch.set_num_threads(2)
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    opts = record["options"]
    data, size = Path(opts["data"]), int(opts["size"])
    config = dict(record.get("config") or opts.get("config") or {})
    if task == "seg":
        train = load_seg_set(medseg_pairs(data, "train"), size)
        val = load_seg_set(medseg_pairs(data, "val"), size)

        def score(model) -> dict:
            return segmentation_metrics(predict_seg(model, list(val.images), size), list(val.masks))
        key = "dice"
    else:
        from jcs_viewer.train.cls_train import validation_scores
        from jcs_viewer.train.crops import MedSegTwins
        from jcs_viewer.train.ctseg_train import MEDSEG_FOLDER
        from jcs_viewer.train.lung_boxes import READ_SIZE, crop_to_lungs

        config = {"attributes": True, **config}
        # A --lung-crop run is scored and recalibrated on the lung squares it was trained on.
        crop = bool(opts.get("lung_crop"))
        read = READ_SIZE if crop else size
        train = load_cls_set(covid_ct_items(data, "train"), read)
        val = load_cls_set(covid_ct_items(data, "val"), read)
        twins, extra = [], []
        if float(opts.get("medseg_twins") or 0.0) > 0:
            medseg = data.parent / MEDSEG_FOLDER
            twins = [MedSegTwins.load(medseg, "val", read)]
            # BN statistics over every source the classifier trained on, as whole slices.
            extra = [MedSegTwins.load(medseg, "train", read)]
            if opts.get("ctseg"):
                from jcs_viewer.train.ctseg_train import CTSEG_FOLDER

                twins.append(MedSegTwins.ctseg(data.parent / CTSEG_FOLDER, "val", read))
                extra.append(MedSegTwins.ctseg(data.parent / CTSEG_FOLDER, "train", read))
        if crop:
            train.images, val.images = crop_to_lungs(train.images, size)[0], crop_to_lungs(val.images, size)[0]
            twins, extra = [t.cropped_to_lungs(size) for t in twins], [t.cropped_to_lungs(size) for t in extra]
        train.images = np.concatenate([train.images, *[t.images_u8 for t in extra]])
        twins = twins or None

        def score(model) -> dict:
            return validation_scores(model, val, size, twins)
        key = "score"
    candidates = {"best": load_file(str(run_dir / "best.safetensors")),
                  "last": torch.load(run_dir / "last.pt", weights_only=True)["model"]}
    if (run_dir / "average.safetensors").is_file():  # --average-from: the mean of the later epochs' weights
        candidates["average"] = load_file(str(run_dir / "average.safetensors"))
    if opts.get("init"):
        candidates["init"] = {k: v.float() for k, v in load_file(str(opts["init"])).items()}
    results, states = {}, {}
    for name, sd in candidates.items():
        model = build(opts["arch"], **config).to(memory_format=torch.channels_last)
        model.load_state_dict(sd)
        results[name] = {"as_trained": score(model)}
        states[f"{name}/as_trained"] = {k: v.clone() for k, v in model.state_dict().items()}
        precise_bn(model, train.images)
        results[name]["precise_bn"] = score(model)
        states[f"{name}/precise_bn"] = model.state_dict()
    chosen = max(states, key=lambda n: results[n.split("/")[0]][n.split("/")[1]][key])
    atomic_save_safetensors(states[chosen], run_dir / "final.safetensors", {"arch": opts["arch"]})
    summary = {"chosen": chosen, "by": f"val {key}", "candidates": results}
    record["finalize"] = summary
    atomic_write_json(run_dir / "run.json", record)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("seg", "cls"):
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(finalize(argv[0], Path(argv[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
