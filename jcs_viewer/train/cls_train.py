"""Training loop of the COVID classifier with the LA-DNN lesion-attribute head on COVID-CT.

Recipe: cross-entropy with mixup (α = 0.5, as JCS) on the COVID label, plus BCE on
the five lesion attributes for images whose LA-DNN labels mention a lesion (mixed
with the same λ), Adam, warm-up then poly decay (power 0.9), horizontal flips,
zoom-crops, small rotations and intensity jitter. The official validation split
selects the checkpoint (AUC); the test split is never looked at here.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from jcs_viewer.train.common import RunLog, TrainOptions, out_of_time, schedule_factor
from jcs_viewer.train.datasets import covid_ct_items, load_cls_set
from jcs_viewer.train.runlog import Progress, atomic_save_safetensors, atomic_torch_save, hash_files, seed_everything

MIXUP_ALPHA = 0.5
ATTRIBUTE_WEIGHT = 1.0


def medseg_positive_items(medseg_root: Path) -> list:
    """MedSeg training-split slices with a lesion, as extra COVID positives (attributes unknown)."""
    from jcs_viewer.train.datasets import medseg_pairs
    from jcs_viewer.train.images import read_mask

    return [(img, 1, None) for img, mask in medseg_pairs(medseg_root, "train") if read_mask(mask).any()]


def train_cls(opts: TrainOptions) -> dict:
    """Train, validate every epoch and write ``best.safetensors``, ``last.pt`` and ``run.json`` to ``opts.out``.

    ``opts.data`` is the ``ucsd_covid_ct`` folder; with ``opts.extra_positives`` the MedSeg
    folder beside it adds its training-split slices as positives.
    """
    import torch

    from jcs_viewer.models import build
    from jcs_viewer.train.augment import AugmentConfig, jitter_intensity, normalize, random_affine
    from jcs_viewer.train.losses import mixup_attribute_bce, mixup_cross_entropy
    from jcs_viewer.train.metrics import classification_metrics
    from jcs_viewer.train.predict import predict_cls

    torch.set_num_threads(opts.threads)
    seed_everything(opts.seed)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(opts.data)
    train_items, val_items = covid_ct_items(data, "train"), covid_ct_items(data, "val")
    hashes = {"train": hash_files([p for p, _, _ in train_items], data),
              "val": hash_files([p for p, _, _ in val_items], data)}
    if opts.extra_positives:
        extra = medseg_positive_items(data.parent / "medseg_covid19_ct100_jcs")
        hashes["extra_positives"] = hash_files([p for p, _, _ in extra], data.parent)
        train_items = train_items + extra
    label_dir = data / "la_dnn_lesion_labels"
    if label_dir.is_dir():
        hashes["lesion_labels"] = hash_files(sorted(label_dir.glob("*.csv")), data)
    store = int(opts.size * 1.15)
    train = load_cls_set(train_items, store)
    val = load_cls_set(val_items, opts.size)
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
    steps_per_epoch = max(1, len(train) // opts.batch)
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
            idx = order[b * opts.batch : (b + 1) * opts.batch]
            x, _ = random_affine(images[idx], opts.size, aug, gen, crop=opts.crop)
            x = jitter_intensity(x, aug, gen)
            # Mixup: one λ per batch (JCS / Zhang et al.), partner = the batch reversed.
            lam = float(beta.sample()) if len(idx) > 1 else 1.0
            partner = torch.arange(len(idx) - 1, -1, -1)
            x = lam * x + (1.0 - lam) * x[partner]
            x = normalize(x).contiguous(memory_format=torch.channels_last)
            lr = opts.lr * schedule_factor(opts, step, total, start)
            for group in optim.param_groups:
                group["lr"] = lr
            logits, attr_logits = model.forward_with_attributes(x)
            y, a, k = labels[idx], attrs[idx], known[idx]
            loss = mixup_cross_entropy(logits, y, y[partner], lam) + ATTRIBUTE_WEIGHT * mixup_attribute_bce(
                attr_logits, a, k, a[partner], k[partner], lam
            )
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))
            step += 1
            progress.update(loss=losses[-1], lr=lr)
        if not losses:
            break
        prob, _ = predict_cls(model, list(val.images), opts.size)
        metrics = classification_metrics(prob, val.labels)
        improved = metrics["auc"] > best
        if improved:
            best = metrics["auc"]
            atomic_save_safetensors(model.state_dict(), out / "best.safetensors", {"arch": opts.arch})
        atomic_torch_save({"model": model.state_dict(), "optim": optim.state_dict(), "epoch": epoch, "step": step},
                          out / "last.pt")
        log.epoch(epoch=epoch, step=step, loss=float(np.mean(losses)), val=metrics, best=improved,
                  minutes=round((time.monotonic() - start) / 60.0, 2))
    log.finish(steps=step, best_val_auc=best, minutes=round((time.monotonic() - start) / 60.0, 2),
               weights=str(out / "best.safetensors"), config=config)
    return log.record
