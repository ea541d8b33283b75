"""Training loop of the COVID classifier with the LA-DNN lesion-attribute head on COVID-CT.

Recipe: cross-entropy with mixup (α = 0.5, as JCS) on the COVID label, plus BCE on
the five lesion attributes for images whose LA-DNN labels mention a lesion (mixed
with the same λ), Adam, warm-up then poly decay (power 0.9), horizontal flips,
zoom-crops, small rotations and intensity jitter. The official validation split
selects the checkpoint (AUC); the test split is never looked at here.

With ``--medseg-twins F`` a fraction F of every batch is real CT instead: random crops
of MedSeg training-split slices and of their lesion-free twins, each labelled from its
own mask (:mod:`jcs_viewer.train.crops`). The checkpoint is then chosen on the mean of
the COVID-CT validation score and the slice-vs-twin AUC of the MedSeg validation slices.
"""

from __future__ import annotations

import time
from pathlib import Path


from jcs_viewer.train.common import (
    RunLog,
    TrainOptions,
    end_epoch,
    optimizer_step,
    out_of_time,
    schedule_factor,
    set_lr,
)
from jcs_viewer.train.crops import MEDSEG_FOLDER, MedSegTwins
from jcs_viewer.train.datasets import ClsSet, covid_ct_items, load_cls_set
from jcs_viewer.train.runlog import Progress, hash_files, seed_everything

MIXUP_ALPHA = 0.5
ATTRIBUTE_WEIGHT = 1.0
LESION_WEIGHT = 1.0


def validation_scores(model, val: ClsSet, size: int, twins: MedSegTwins | None) -> dict:
    """COVID-CT validation metrics, the MedSeg slice-vs-twin AUC when given, and the selection ``score``.

    ``score`` is the mean of COVID-CT's AUC and accuracy (AUC alone ignores calibration: an epoch
    with val AUC 0.84 called 90 % of non-COVID images COVID), averaged with the twin AUC.
    """
    from jcs_viewer.train.metrics import classification_metrics
    from jcs_viewer.train.predict import predict_cls

    result = classification_metrics(predict_cls(model, list(val.images), size)[0], val.labels)
    result["score"] = (result["auc"] + result["accuracy"]) / 2.0
    if twins is not None:
        prob = predict_cls(model, list(twins.images_u8), size)[0]
        result["twin_auc"] = classification_metrics(prob, twins.labels)["auc"]
        result["score"] = (result["score"] + result["twin_auc"]) / 2.0
    return result


def train_cls(opts: TrainOptions) -> dict:
    """Train, validate every epoch and write ``best.safetensors``, ``last.pt`` and ``run.json`` to ``opts.out``.

    ``opts.data`` is the ``ucsd_covid_ct`` folder; with ``opts.medseg_twins`` the MedSeg
    folder beside it adds crops of its training-split slices and their twins to every batch.
    """
    import torch
    import torch.nn.functional as F

    from jcs_viewer.models import build
    from jcs_viewer.train.augment import AugmentConfig, jitter_intensity, normalize, random_affine
    from jcs_viewer.train.losses import mixup_attribute_bce, mixup_cross_entropy

    torch.set_num_threads(opts.threads)
    seed_everything(opts.seed)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(opts.data)
    train_items, val_items = covid_ct_items(data, "train"), covid_ct_items(data, "val")
    hashes = {"train": hash_files([p for p, _, _ in train_items], data),
              "val": hash_files([p for p, _, _ in val_items], data)}
    label_dir = data / "la_dnn_lesion_labels"
    if label_dir.is_dir():
        hashes["lesion_labels"] = hash_files(sorted(label_dir.glob("*.csv")), data)
    store = int(opts.size * 1.15)
    train = load_cls_set(train_items, store)
    val = load_cls_set(val_items, opts.size)
    twins = val_twins = None
    if opts.medseg_twins > 0:
        twins = MedSegTwins.load(data.parent / MEDSEG_FOLDER, "train", store)
        val_twins = MedSegTwins.load(data.parent / MEDSEG_FOLDER, "val", opts.size)
        hashes["medseg_train"], hashes["medseg_val"] = twins.data_hash, val_twins.data_hash
    log = RunLog(opts, "cls", hashes)

    config = {"attributes": True, **opts.config}
    model = build(opts.arch, **config).to(memory_format=torch.channels_last)
    optim = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    beta = torch.distributions.Beta(MIXUP_ALPHA, MIXUP_ALPHA)
    aug = AugmentConfig(scale=(0.85, 1.3), hflip=0.5, vflip=0.0)
    images = torch.from_numpy(train.images).float().div_(255.0).unsqueeze(1)
    labels = torch.from_numpy(train.labels)
    attrs = torch.from_numpy(train.attrs)
    known = torch.from_numpy(train.known)
    n_twins = twins.per_batch(opts) if twins is not None else 0
    n_images = opts.batch - n_twins
    steps_per_epoch = max(1, len(train) // n_images)
    total = opts.epochs * steps_per_epoch
    if opts.max_steps is not None:
        total = min(total, opts.max_steps)
    progress = Progress(total, "train cls")
    start, step, best = time.monotonic(), 0, -1.0
    for epoch in range(opts.epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        losses = []
        for b in range(steps_per_epoch):
            if out_of_time(start, opts, step):
                break
            idx = order[b * n_images : (b + 1) * n_images]
            x, _ = random_affine(images[idx], opts.size, aug, gen, crop=opts.crop)
            y, a, k = labels[idx], attrs[idx], known[idx]
            w = torch.ones(len(idx))
            masks = None
            if n_twins:
                xt, mt, yt, wt = twins.sample(n_twins, opts, aug, gen)
                x, y, w = torch.cat([x, xt]), torch.cat([y, yt]), torch.cat([w, wt])
                a = torch.cat([a, torch.zeros(n_twins, a.shape[1])])
                k = torch.cat([k, torch.zeros(n_twins)])
                masks = mt
            x = jitter_intensity(x, aug, gen)
            # Mixup: one λ per batch (JCS / Zhang et al.); partners are the batch reversed within each
            # source, so that MedSeg crops mix with MedSeg crops and their masks mix along.
            lam = float(beta.sample()) if len(x) > 1 else 1.0
            partner = torch.cat([torch.arange(len(idx) - 1, -1, -1), len(idx) + torch.arange(n_twins - 1, -1, -1)])
            x = lam * x + (1.0 - lam) * x[partner]
            x = normalize(x).contiguous(memory_format=torch.channels_last)
            lr = opts.lr * schedule_factor(opts, step, total, start)
            set_lr(optim, lr)
            logits, attr_logits, lesion_logits = model.forward_train(x)
            loss = mixup_cross_entropy(logits, y, y[partner], lam, w, w[partner]) + ATTRIBUTE_WEIGHT * mixup_attribute_bce(
                attr_logits, a, k, a[partner], k[partner], lam
            )
            if lesion_logits is not None and masks is not None:
                # Where lesions are, per layer4 cell, for the MedSeg crops (the tail of the batch).
                mixed = lam * masks + (1.0 - lam) * masks.flip(0)
                target = F.adaptive_avg_pool2d(mixed, lesion_logits.shape[-2:])
                loss = loss + LESION_WEIGHT * F.binary_cross_entropy_with_logits(lesion_logits[len(idx):], target)
            losses.append(optimizer_step(optim, loss))
            step += 1
            progress.update(loss=losses[-1], lr=lr)
        if not losses:
            break
        metrics = validation_scores(model, val, opts.size, val_twins)
        best = end_epoch(log, model, optim, opts, epoch=epoch, step=step, losses=losses, metrics=metrics,
                         score=metrics["score"], best=best, start=start)
    log.finish(steps=step, best_val_score=best, minutes=round((time.monotonic() - start) / 60.0, 2),
               weights=str(out / "best.safetensors"), config=config)
    return log.record
