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
``--ctseg`` makes half of those crops COVID-19-CT-Seg slices and their twins. ``--cam-loss W``
trains the Grad-CAM map itself onto the crops' lesions
(:func:`~jcs_viewer.train.losses.cam_localisation_loss`); ``--init`` continues an earlier run;
``--average-from E`` also keeps the mean of the weights of every epoch from E on (``average.safetensors``).
``--freeze-bn`` keeps the BatchNorm statistics of ``--init``, ``--sgd`` steps with SGD instead of Adam.
``--distil NPZ`` adds a teacher's soft labels (and with ``--distil-features``, its features) on the COVID-CT images
(:mod:`jcs_viewer.train.distil`).
"""

from __future__ import annotations

from pathlib import Path


from jcs_viewer.train.common import (
    RunLog,
    TrainingSteps,
    TrainOptions,
    WeightAverage,
    end_epoch,
    load_init,
    optimizer_step,
)
from jcs_viewer.train.crops import MedSegTwins
from jcs_viewer.train.ctseg_train import MEDSEG_FOLDER
from jcs_viewer.train.datasets import ClsSet, covid_ct_items, load_cls_set
from jcs_viewer.train.runlog import hash_files, seed_everything, sha256_file

MIXUP_ALPHA = 0.5
ATTRIBUTE_WEIGHT = 1.0
LESION_WEIGHT = 1.0
FINETUNE_BN_MOMENTUM = 0.1


def validation_scores(model, val: ClsSet, size: int, twins: list[MedSegTwins] | None) -> dict:
    """COVID-CT validation metrics, the real-CT slice AUC and Grad-CAM hit rate when given, and ``score``.

    ``score`` is the mean of COVID-CT's AUC and accuracy (AUC alone ignores calibration: an epoch
    with val AUC 0.84 called 90 % of non-COVID images COVID), averaged with the real-CT slice AUC
    (lesion slices against twins or lesion-free slices, per source: a pooled AUC would reward telling
    the sources apart) and, for a model with a lesion head (trained
    to be explainable), the fraction of lesion slices whose activation map peaks on a lesion.
    """
    from jcs_viewer.train.metrics import classification_metrics
    from jcs_viewer.train.predict import predict_cls

    result = classification_metrics(predict_cls(model, list(val.images), size)[0], val.labels)
    result["score"] = (result["auc"] + result["accuracy"]) / 2.0
    if twins:
        aucs = [classification_metrics(predict_cls(model, list(t.images_u8), size)[0], t.labels)["auc"]
                for t in twins]
        result["twin_auc"] = sum(aucs) / len(aucs)
        parts = [result["score"], result["twin_auc"]]
        if getattr(model.config, "lesion_head", False):
            result["cam_hit"] = sum(cam_hit_rate(model, t, size) for t in twins) / len(twins)
            parts.append(result["cam_hit"])
        result["score"] = sum(parts) / len(parts)
    return result


def cam_hit_rate(model, slices: MedSegTwins, size: int, margin_px: int = 5) -> float:
    """Fraction of the lesion slices whose Grad-CAM peaks inside a lesion (mask grown by ``margin_px``)."""
    import numpy as np
    import torch

    from jcs_viewer.models import gradcam
    from jcs_viewer.pipeline.morphology import dilate_xy
    from jcs_viewer.train.augment import input_normalisation
    from jcs_viewer.train.metrics import peak_index
    from jcs_viewer.train.predict import _to_input

    model.eval()
    images, masks = slices.images_u8, slices.masks[:, 0].numpy() > 0
    keep = np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1))
    hits = []
    for start in range(0, len(keep), 16):
        idx = keep[start : start + 16]
        x = _to_input(list(images[idx]), size, input_normalisation(model)).contiguous(memory_format=torch.channels_last)
        _, cams = gradcam(model, x, target_class=1, out_size=masks.shape[-2:])
        for cam, k in zip(cams.float().numpy(), idx):
            region = dilate_xy(masks[k][None], margin_px)[0]
            hits.append(bool(region.flat[peak_index(cam)]))
    return float(np.mean(hits)) if hits else 0.0


def train_cls(opts: TrainOptions) -> dict:
    """Train, validate every epoch and write ``best.safetensors``, ``last.pt`` and ``run.json`` to ``opts.out``.

    ``opts.data`` is the ``ucsd_covid_ct`` folder; with ``opts.medseg_twins`` the MedSeg
    folder beside it adds crops of its training-split slices and their twins to every batch.
    """
    import torch
    import torch.nn.functional as F

    from jcs_viewer.models import build
    from jcs_viewer.train.augment import AugmentConfig, input_normalisation, jitter_intensity, normalize, random_affine
    from jcs_viewer.train.distil import feature_loss, soft_target_loss
    from jcs_viewer.train.losses import cam_localisation_loss, mixup_attribute_bce, mixup_cross_entropy

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
    from jcs_viewer.train.lung_boxes import READ_SIZE

    store = int(opts.size * 1.15)
    # With --lung-crop every image is read larger and cut to its lung square at the usual size.
    load, val_load = (READ_SIZE, READ_SIZE) if opts.lung_crop else (store, opts.size)
    train = load_cls_set(train_items, load)
    val = load_cls_set(val_items, val_load)
    twins = val_twins = None
    if opts.medseg_twins > 0:
        twins = MedSegTwins.load(data.parent / MEDSEG_FOLDER, "train", load)
        if opts.lung_crop:
            twins = twins.cropped_to_lungs(store)
        val_twins = [MedSegTwins.load(data.parent / MEDSEG_FOLDER, "val", val_load)]
        hashes["medseg_train"], hashes["medseg_val"] = twins.data_hash, val_twins[0].data_hash
        if opts.ctseg:
            from jcs_viewer.train.ctseg_train import CTSEG_FOLDER

            ct_train = MedSegTwins.ctseg(data.parent / CTSEG_FOLDER, "train", load)
            ct_val = MedSegTwins.ctseg(data.parent / CTSEG_FOLDER, "val", val_load)
            hashes["ctseg_train"], hashes["ctseg_val"] = ct_train.data_hash, ct_val.data_hash
            twins = twins.joined(ct_train.cropped_to_lungs(store) if opts.lung_crop else ct_train)
            val_twins.append(ct_val)
    if opts.lung_crop:
        from jcs_viewer.models import default_weights
        from jcs_viewer.train.lung_boxes import crop_to_lungs

        lung_entry = default_weights("lung")
        hashes["lung_boxes_by"] = f"{lung_entry.name} {lung_entry.sha256}"

        train.images = crop_to_lungs(train.images, store)[0]
        val.images = crop_to_lungs(val.images, opts.size)[0]
        if val_twins:
            val_twins = [t.cropped_to_lungs(opts.size) for t in val_twins]
    if opts.init is not None:
        hashes["init"] = sha256_file(Path(opts.init))
    teacher = None
    if opts.distil is not None:
        from jcs_viewer.train.distil import TeacherTargets, teacher_keys

        teacher = TeacherTargets.load(Path(opts.distil), teacher_keys(train), train.labels)
        hashes["distil"] = sha256_file(Path(opts.distil))
    log = RunLog(opts, "cls", hashes)

    config = {"attributes": True, **opts.config}
    model = build(opts.arch, **config)
    if opts.init is not None:
        load_init(model, opts.init)
    elif hasattr(model, "load_imagenet"):
        model.load_imagenet()
    if hasattr(model, "load_imagenet"):
        # The ImageNet BN momentum (0.01, TensorFlow's 0.99 decay) suits a million steps; in a few hundred the
        # running statistics would stay ImageNet's, and every validation would read grey CT with them.
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = FINETUNE_BN_MOMENTUM
    model = model.to(memory_format=torch.channels_last)
    norm = input_normalisation(model)
    params = list(model.parameters())
    projector = None
    if teacher is not None and opts.distil_features > 0:
        # Training only: maps the student's pooled features onto the teacher's; not part of the saved model.
        projector = torch.nn.Linear(model.fc.in_features, teacher.features.shape[1])
        params += list(projector.parameters())
    if opts.sgd:
        optim = torch.optim.SGD(params, lr=opts.lr, momentum=0.9, nesterov=True, weight_decay=opts.weight_decay)
    else:
        optim = torch.optim.Adam(params, lr=opts.lr, weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    beta = torch.distributions.Beta(MIXUP_ALPHA, MIXUP_ALPHA)
    aug = AugmentConfig(scale=(0.85, 1.3), hflip=0.5, vflip=0.0)
    images = torch.from_numpy(train.images).float().div_(255.0).unsqueeze(1)
    labels = torch.from_numpy(train.labels)
    attrs = torch.from_numpy(train.attrs)
    known = torch.from_numpy(train.known)
    n_twins = twins.per_batch(opts) if twins is not None else 0
    n_images = opts.batch - n_twins
    steps, best = TrainingSteps(opts, len(train), n_images, gen, "train cls"), -1.0
    average = WeightAverage()
    for epoch in range(opts.epochs):
        model.train()
        if opts.freeze_bn:
            # A continuation starts from the statistics its checkpoint was chosen with; one epoch of batches
            # (mixed, jittered, 40 % crops) re-estimates them, which alone moved v5's validation AUC 0.853 -> 0.827.
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()
        losses = []
        for idx in steps.batches():
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
            x = normalize(x, *norm).contiguous(memory_format=torch.channels_last)
            lr = steps.set_lr(optim)
            feats = model.features(x)
            logits, attr_logits, lesion_logits = model.heads_train(feats)
            loss = mixup_cross_entropy(logits, y, y[partner], lam, w, w[partner])
            loss = loss + ATTRIBUTE_WEIGHT * mixup_attribute_bce(
                attr_logits, a, k, a[partner], k[partner], lam
            )
            if masks is not None:
                # Where lesions are, per layer4 cell, for the real-CT crops (the tail of the batch).
                share = F.adaptive_avg_pool2d(lam * masks + (1.0 - lam) * masks.flip(0), feats.shape[-2:])
                if lesion_logits is not None:
                    loss = loss + LESION_WEIGHT * F.binary_cross_entropy_with_logits(lesion_logits[len(idx):], share)
                if opts.cam_weight > 0:
                    loss = loss + opts.cam_weight * cam_localisation_loss(model.cam_logits(feats[len(idx):]),
                                                                          share[:, 0])
            if teacher is not None:
                n = len(idx)  # the COVID-CT images lead the batch; their mixup partners are the same images reversed
                p = teacher.probability[idx]
                loss = loss + opts.distil_weight * soft_target_loss(logits[:n], lam * p + (1.0 - lam) * p.flip(0))
                if projector is not None:
                    f = teacher.features[idx]
                    loss = loss + opts.distil_features * feature_loss(
                        projector(feats[:n].float().mean((2, 3))), lam * f + (1.0 - lam) * f.flip(0))
            losses.append(optimizer_step(optim, loss))
            steps.done(losses[-1], lr)
        if not losses:
            break
        metrics = validation_scores(model, val, opts.size, val_twins)
        best = end_epoch(log, model, optim, opts, epoch=epoch, step=steps.step, losses=losses, metrics=metrics,
                         score=metrics["score"], best=best, start=steps.start)
        if opts.average_from is not None and epoch >= opts.average_from:
            average.update(model)
            average.save(out / "average.safetensors", opts.arch)
    log.finish(steps=steps.step, best_val_score=best, minutes=steps.minutes, weights=str(out / "best.safetensors"),
               config=config)
    return log.record
