"""Training loop of the lesion segmentation network on MedSeg slices.

Recipe (JCS seg-only, adapted to training from scratch on 2 CPU cores): BCE +
(1 − batch Dice) on each of the five side outputs with equal weights, Adam,
linear warm-up then poly decay (power 0.9), flips / zoom-crop / rotation / shift
and intensity jitter. The validation split selects the checkpoint; the test split
is never looked at here. With ``--medseg-twins F`` each training slice is replaced by
its lesion-free twin (:func:`jcs_viewer.train.crops.erase_lesions`, empty mask) with
probability F, so healthy lung is seen as healthy lung and not only beside lesions; with
``--densify F`` a slice's lesions are drawn as consolidation with probability F
(:func:`jcs_viewer.train.augment.densify_lesions`); ``--init`` continues an earlier run.
"""

from __future__ import annotations

from pathlib import Path


from jcs_viewer.train.common import (
    RunLog,
    TrainingSteps,
    TrainOptions,
    end_epoch,
    load_init,
    optimizer_step,
)
from jcs_viewer.train.crops import MedSegTwins
from jcs_viewer.train.datasets import load_seg_set, medseg_pairs
from jcs_viewer.train.runlog import hash_files, seed_everything, sha256_file


def train_seg(opts: TrainOptions) -> dict:
    """Train, validate every epoch and write ``best.safetensors``, ``last.pt`` and ``run.json`` to ``opts.out``.

    Returns:
        The final run record (also in ``run.json``).
    """
    import torch

    from jcs_viewer.models import build
    from jcs_viewer.train.augment import AugmentConfig, densify_lesions, jitter_intensity, normalize, random_affine
    from jcs_viewer.train.losses import deep_supervision_loss
    from jcs_viewer.train.metrics import segmentation_metrics
    from jcs_viewer.train.predict import predict_seg

    torch.set_num_threads(opts.threads)
    seed_everything(opts.seed)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    train_pairs, val_pairs = medseg_pairs(opts.data, "train"), medseg_pairs(opts.data, "val")
    store = int(opts.size * 1.25)
    train = load_seg_set(train_pairs, store)
    val = load_seg_set(val_pairs, opts.size)
    twins = MedSegTwins.load(opts.data, "train", store) if opts.medseg_twins > 0 else None
    hashes = {
        "train": hash_files([p for pair in train_pairs for p in pair], Path(opts.data)),
        "val": hash_files([p for pair in val_pairs for p in pair], Path(opts.data)),
    }
    if opts.init is not None:
        hashes["init"] = sha256_file(Path(opts.init))
    log = RunLog(opts, "seg", hashes)

    model = build(opts.arch, **opts.config)
    if opts.init is not None:
        load_init(model, opts.init)
    model = model.to(memory_format=torch.channels_last)
    model.train()
    optim = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    aug = AugmentConfig(vflip=0.5)
    if twins is not None:  # the N slices, then their N twins
        images, masks = twins.grey, twins.masks
    else:
        images = torch.from_numpy(train.images).float().div_(255.0).unsqueeze(1)
        masks = torch.from_numpy(train.masks).float().unsqueeze(1)
    steps, best = TrainingSteps(opts, len(train), opts.batch, gen, "train seg"), -1.0
    for epoch in range(opts.epochs):
        model.train()
        losses = []
        for idx in steps.batches():
            if twins is not None:
                idx = idx + len(train) * (torch.rand(len(idx), generator=gen) < opts.medseg_twins).long()
            x, y = random_affine(images[idx], opts.size, aug, gen, mask=masks[idx], crop=opts.crop)
            if opts.densify:
                x = densify_lesions(x, y, opts.densify, gen)
            x = normalize(jitter_intensity(x, aug, gen)).contiguous(memory_format=torch.channels_last)
            lr = steps.set_lr(optim)
            loss = deep_supervision_loss(model.forward_logits(x), y)
            losses.append(optimizer_step(optim, loss))
            steps.done(losses[-1], lr)
        if not losses:
            break
        probs = predict_seg(model, list(val.images), opts.size)
        metrics = segmentation_metrics(probs, list(val.masks))
        best = end_epoch(log, model, optim, opts, epoch=epoch, step=steps.step, losses=losses, metrics=metrics,
                         score=metrics["dice"], best=best, start=steps.start)
    log.finish(steps=steps.step, best_val_dice=best, minutes=steps.minutes, weights=str(out / "best.safetensors"))
    return log.record
