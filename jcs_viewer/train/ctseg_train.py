"""Training of the pretrained-encoder segmenters: lungs and lesions on real CT in one intensity domain.

Both nets start from the ImageNet EfficientNet-Lite0 encoder (the ``.[train]`` extra).

- The lung net sees every image in the COVID-19-CT-Seg intensity domain
  (:func:`jcs_viewer.pipeline.intensity.ctseg_clahe`): the CT-Seg slices are in it already, and the app
  applies the same transform to any HU study or 8-bit stack. Lung shape does not need absolute density.
- The lesion net is trained on both domains as they are (intensity ``"mixed"``): MedSeg slices in their
  lung window, CT-Seg slices as CLAHE images; HU studies are windowed for it. Lesion versus normal lung is
  a matter of absolute density, which a window keeps and CLAHE removes: a CLAHE-only lesion net called
  63 % of a lesion-free COPD lung lesion.

- ``lungs``: CT-Seg lung masks (consolidation included), plus two whole real volumes
  (:data:`LUNG_VOLUMES`: their abdominal slices teach "no lung here", which CT-Seg's central slices
  cannot) and random re-windowing before CLAHE (:func:`rewindow_clahe`); loss BCE + (1 - batch Dice).
  ``--dependent-lobes F`` draws, with probability F, whole dependent lobes consolidated before that
  re-windowing, still labelled lung (:func:`jcs_viewer.train.augment.dependent_consolidation`).
  ``--medseg-lungs [WEIGHTS]`` adds the MedSeg training slices, labelled lung where a lung net (the 8-bit
  default unless named) or the radiologists' lesion masks say so (:func:`medseg_lungs`): real consolidated
  lobes in real 8-bit windows.
- ``lesions``: CT-Seg infection masks plus MedSeg training slices in their window (and, with ``--medseg-twins F``,
  their lesion-free twins with probability F); deep-supervised BCE + Dice on the five side outputs.

Adam with warm-up and poly decay; flips, zoom, rotation, shift, intensity jitter. Split by whole
volume groups (CT-Seg, :func:`jcs_viewer.train.splits.ctseg_split`) and id blocks (MedSeg); the
validation parts select the checkpoint and the test parts are never looked at here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcs_viewer.train.common import (
    RunLog,
    TrainingSteps,
    TrainOptions,
    end_epoch,
    load_init,
    optimizer_step,
)
from jcs_viewer.train.runlog import hash_files, seed_everything, sha256_file

CTSEG_FOLDER = "covid19_ct_seg20_slices"
MEDSEG_FOLDER = "medseg_covid19_ct100_jcs"


def ctseg_files(root: Path, split: str, target: str = "lungs") -> list[tuple[Path, Path]]:
    """(image, mask) pairs of one CT-Seg split; ``target`` is ``"lungs"`` or ``"lesions"``."""
    from jcs_viewer.errors import StudyLoadError
    from jcs_viewer.train.splits import ctseg_split

    images = sorted((Path(root) / "ct").glob("*.png"))
    if not images:
        raise StudyLoadError(f"{root} holds no ct/*.png slices (expected the {CTSEG_FOLDER} layout).")
    numbers = {int(p.stem): p for p in images}
    return [(numbers[n], Path(root) / target / numbers[n].name) for n in ctseg_split(sorted(numbers), split)]


def load_pairs(pairs: list[tuple[Path, Path]], size: int, to_ctseg: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and 0/1 masks at ``size``; ``to_ctseg`` applies the CT-Seg transform to the images."""
    from jcs_viewer.pipeline.intensity import ctseg_clahe
    from jcs_viewer.train.datasets import _resize_u8
    from jcs_viewer.train.images import read_grey

    if to_ctseg:
        images = np.concatenate([ctseg_clahe(read_grey(a)[None], is_hu=False, size=size) for a, _ in pairs])
    else:
        images = np.stack([_resize_u8(read_grey(a), size) for a, _ in pairs])
    return images, load_masks([b for _, b in pairs], size)


def load_masks(paths: list[Path], size: int) -> np.ndarray:
    """0/1 ``uint8`` masks at ``size`` (nearest)."""
    from jcs_viewer.train.datasets import _resize_u8
    from jcs_viewer.train.images import read_mask

    masks = np.stack([_resize_u8(read_mask(p).astype(np.uint8), size, nearest=True) for p in paths])
    return (masks > 0).astype(np.uint8)


def to_input(images: np.ndarray):
    """uint8 (N, S, S) CT-Seg-domain images -> (N, 3, S, S) inputs of the EfficientNet-Lite weights."""
    import torch

    from jcs_viewer.models.efficientnet import LITE_MEAN, LITE_STD

    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)[:, None]
    return _normalise(x, LITE_MEAN, LITE_STD)


def predict(model, images: np.ndarray, batch: int = 8) -> np.ndarray:
    """Probabilities (N, S, S) float32 (side output 0) of uint8 CT-Seg-domain images."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            out.append(model(to_input(images[i : i + batch]))[:, 0].float().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:], np.float32)


def _normalise(grey, mean, std):
    return (grey.expand(-1, 3, -1, -1) - mean[0]) / std[0]


def _medseg_twins(data_root: Path, size: int) -> np.ndarray:
    """Lesion-free twins of the MedSeg training slices (lung window, like the slices)."""
    from jcs_viewer.train.crops import erase_lesions
    from jcs_viewer.train.datasets import _resize_u8, load_seg_set, medseg_pairs

    data = load_seg_set(medseg_pairs(data_root, "train"), 512)
    twins = [erase_lesions(img, mask, seed=k) for k, (img, mask) in enumerate(zip(data.images, data.masks))]
    return np.stack([_resize_u8(t, size) for t in twins])


#: Whole real volumes beside CT-Seg for the lung net: they hold what CT-Seg's central slices lack (upper
#: abdomen below the domes, apices, other scanners and intensity mappings). (path, lung mask path or None:
#: then only the slices where the classic method of jcs_viewer.pipeline.lungs finds no lung, as negatives).
LUNG_VOLUMES = (
    ("real_ct_small/chest_imaging_platform/ct-64.nrrd", "real_ct_small/chest_imaging_platform/wholeLung-64.nrrd"),
    ("lidc_chest_volume/LIDC2.mha", None),
)


def volume_slices(root: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """The :data:`LUNG_VOLUMES` as CT-Seg-domain slices and lung masks in radiological orientation."""
    import SimpleITK as sitk

    from jcs_viewer.io import load_study
    from jcs_viewer.pipeline.intensity import ctseg_clahe
    from jcs_viewer.pipeline.lung_ai import display_flips
    from jcs_viewer.pipeline.lungs import compute_lung_mask
    from jcs_viewer.train.datasets import _resize_u8

    images, masks, files = [], [], []
    for image_path, mask_path in LUNG_VOLUMES:
        path = Path(root) / image_path
        if not path.exists():
            continue
        volume = load_study(path)
        if mask_path is not None:
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(root) / mask_path))) > 0
            files.append(Path(root) / mask_path)
        else:
            mask = compute_lung_mask(volume) > 0
        array = volume.array
        flip_rows, flip_cols = display_flips(volume.direction)
        if flip_rows:
            array, mask = array[:, ::-1], mask[:, ::-1]
        if flip_cols:
            array, mask = array[:, :, ::-1], mask[:, :, ::-1]
        keep = np.ones(len(array), dtype=bool)
        if mask_path is None:
            # Without a reference mask only the slices with no lung at all are used (negatives): the
            # classic grey-level method is not trusted to the voxel where it does find lung.
            keep = ~mask.any(axis=(1, 2))
        images.append(ctseg_clahe(np.ascontiguousarray(array[keep]), bool(volume.is_hu), size))
        masks.append(np.stack([_resize_u8(m.astype(np.uint8) * 255, size) >= 128 for m in mask[keep]]
                              ).astype(np.uint8).reshape(-1, size, size))
        files.append(path)
    if not images:
        return np.zeros((0, size, size), np.uint8), np.zeros((0, size, size), np.uint8), []
    return np.concatenate(images), np.concatenate(masks), files


def rewindow_clahe(grey: np.ndarray, gen: np.random.Generator, fraction: float = 0.5,
                   always: np.ndarray | None = None) -> np.ndarray:
    """Re-window a random ``fraction`` of CT-Seg-domain images (and those where ``always`` is set) and equalise
    them again.

    Simulates inputs whose grey levels were mapped differently before the CT-Seg transform (an
    8-bit soft-tissue window flattens the lungs to black, a wide window greys the body), so the
    nets do not depend on the source's own window.
    """
    import cv2

    from jcs_viewer.pipeline.intensity import CLAHE_CLIP, CLAHE_TILES

    out = grey.copy()
    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=CLAHE_TILES)
    pick = gen.random(len(grey)) < fraction
    for i in np.flatnonzero(pick if always is None else pick | always):
        lo, hi = gen.uniform(0, 90), gen.uniform(140, 255)
        x = np.clip((grey[i].astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        out[i] = clahe.apply(x)
    return out


def training_sets(opts: TrainOptions, target: str):
    """(train images, train masks, twins or None, validation parts {name: (images, masks)}, data hashes, the train
    images' lesion masks or None): lung training with ``densify`` gets the lesions it draws as consolidation."""
    from jcs_viewer.train.datasets import medseg_pairs

    root = Path(opts.data)
    ctseg = root / CTSEG_FOLDER
    mask_dir = "lungs" if target == "lungs" else "lesions"
    tr, va = ctseg_files(ctseg, "train", mask_dir), ctseg_files(ctseg, "val", mask_dir)
    x, y = load_pairs(tr, opts.size)
    val = {"ctseg": load_pairs(va, opts.size)}
    files = {"train": [p for pair in tr for p in pair], "val": [p for pair in va for p in pair]}
    twins = None
    if target == "lesions":
        medseg = root / MEDSEG_FOLDER
        mtr, mva = medseg_pairs(medseg, "train"), medseg_pairs(medseg, "val")
        # MedSeg stays in its lung window: lesions are told from normal lung by absolute density, which a
        # window keeps and CLAHE (local equalisation) removes, so HU studies are windowed for this net.
        mx, my = load_pairs(mtr, opts.size)
        # MedSeg has 56 training slices beside CT-Seg's 524: repeat them so each source weighs alike.
        repeat = max(1, len(x) // (2 * len(mx)))
        x, y = np.concatenate([x] + [mx] * repeat), np.concatenate([y] + [my] * repeat)
        val["medseg"] = load_pairs(mva, opts.size)
        files["train"] += [p for pair in mtr for p in pair]
        files["val"] += [p for pair in mva for p in pair]
        if opts.medseg_twins > 0:
            twins = (_medseg_twins(medseg, opts.size), len(x) - len(mx) * repeat, len(mx), repeat)
    lesions = labeller = None
    if target == "lungs" and opts.densify:
        # The lung masks hold the lesions: drawn dense, consolidated lung stays lung for the net.
        lesion_files = [ctseg / "lesions" / image.name for image, _ in tr]
        lesions = load_masks(lesion_files, opts.size)
        files["train"] += lesion_files
    if target == "lungs":
        vx, vy, vfiles = volume_slices(root, opts.size)
        if len(vx):
            # About a quarter of what the net sees comes from the whole volumes.
            repeat = max(1, len(x) // (3 * len(vx)))
            x, y = np.concatenate([x] + [vx] * repeat), np.concatenate([y] + [vy] * repeat)
            files["train"] += vfiles
            if lesions is not None:  # the whole volumes hold no lesion
                lesions = np.concatenate([lesions, np.zeros((len(vx) * repeat,) + vx.shape[1:], lesions.dtype)])
        if opts.medseg_lungs is not None:
            medseg = root / MEDSEG_FOLDER
            mx, my, ml, labeller = medseg_lungs(medseg, "train", opts.size, opts.medseg_lungs or None)
            repeat = max(1, len(x) // (4 * len(mx)))  # about a fifth of what the net sees
            x, y = np.concatenate([x] + [mx] * repeat), np.concatenate([y] + [my] * repeat)
            if lesions is not None:
                lesions = np.concatenate([lesions] + [ml] * repeat)
            files["train"] += [p for pair in medseg_pairs(medseg, "train") for p in pair]
    hashes = {k: hash_files(v, root) for k, v in files.items()}
    if labeller is not None:
        hashes["medseg_lungs_by"] = labeller
    return x, y, twins, val, hashes, lesions


def medseg_lungs(root: Path, split: str, size: int,
                 weights: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """MedSeg slices of ``split`` in the CT-Seg domain, with lung labels of their own, and their lesion masks.

    MedSeg has no lung masks; its lesions lie in the lungs by definition, so the label is a lung net's mask
    (``weights``: a registry name or file; default: the 8-bit default lung net) joined with the radiologists'
    lesion mask: the consolidated lobes that net leaves out (real ones, in a real 8-bit window, not drawn) come
    back labelled lung. (The lesion masks also hold MedSeg's pleural effusions, so an effusion counts as lung
    here, as its lesions count inside the lungs in the app.)

    Returns:
        (images, lung labels, lesion masks, all ``uint8`` at ``size``; "name sha256" of the lung net).
    """
    from jcs_viewer.models import default_weights
    from jcs_viewer.train.datasets import _resize_u8, medseg_pairs
    from jcs_viewer.train.images import read_grey, read_mask
    from jcs_viewer.train.lung_boxes import cached_lung_net, image_lungs

    pairs = medseg_pairs(root, split)
    name = weights or default_weights("lung", grey=True).name
    entry = cached_lung_net(name)[1]  # loaded once: image_lungs reads with the same cached net
    lungs = image_lungs(np.stack([read_grey(a) for a, _ in pairs]), weights=name)
    labels = [(lung | (read_mask(b) > 0)).astype(np.uint8) * 255 for lung, (_, b) in zip(lungs, pairs)]
    images, lesions = load_pairs(pairs, size, to_ctseg=True)
    labels = np.stack([_resize_u8(label, size) >= 128 for label in labels]).astype(np.uint8)
    return images, labels, lesions, f"{entry.name} {entry.sha256}"


def train_ctseg(opts: TrainOptions, target: str) -> dict:
    """Train ``target`` ("lungs" or "lesions"); ``best.safetensors``, ``last.pt``, ``run.json`` go to ``opts.out``.

    ``opts.data`` is the shared data root (holding the CT-Seg and MedSeg folders).
    """
    import torch

    from jcs_viewer.models import build
    from jcs_viewer.models.efficientnet import LITE_MEAN, LITE_STD, load_imagenet_weights
    from jcs_viewer.train.augment import (AugmentConfig, consolidate_dependent, densify_lesions, jitter_intensity,
                                          random_affine)
    from jcs_viewer.train.losses import deep_supervision_loss
    from jcs_viewer.train.metrics import dice

    torch.set_num_threads(opts.threads)
    seed_everything(opts.seed)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    train_x, train_y, twins, val, hashes, train_lesions = training_sets(opts, target)
    if opts.init is not None:
        hashes["init"] = sha256_file(Path(opts.init))
    log = RunLog(opts, "lung" if target == "lungs" else "seg", hashes)

    model = build(opts.arch, **opts.config)
    if opts.init is not None:
        load_init(model, opts.init)
    else:
        load_imagenet_weights(model.encoder)
    model = model.to(memory_format=torch.channels_last).train()
    optim = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    np_gen = np.random.default_rng(opts.seed)
    aug = AugmentConfig(vflip=0.0, rotate_deg=12.0, contrast=0.25, brightness=0.1, gamma=0.3,
                        scale=(0.7, 1.6) if target == "lungs" else (0.8, 1.25))
    images = torch.from_numpy(train_x).float().div_(255.0).unsqueeze(1)
    masks = torch.from_numpy(train_y).float().unsqueeze(1)
    lesion_masks = None if train_lesions is None else torch.from_numpy(train_lesions).float().unsqueeze(1)
    twin_images = None if twins is None else torch.from_numpy(twins[0]).float().div_(255.0).unsqueeze(1)
    steps, best = TrainingSteps(opts, len(images), opts.batch, gen, f"train {target}"), -1.0
    for epoch in range(opts.epochs):
        model.train()
        losses = []
        for idx in steps.batches():
            xb, yb = images[idx], masks[idx]
            if target == "lungs":
                raw, redo = train_x[idx.numpy()], None
                if opts.dependent_lobes:
                    # Drawn before the re-windowing and CLAHE, which then treat the dense lobe as they treat a
                    # real one (a lung window saturates it; CLAHE gives it the texture of the chest wall).
                    grey = torch.from_numpy(raw).float().div_(255.0).unsqueeze(1)
                    drawn = consolidate_dependent(grey, yb, opts.dependent_lobes, gen)
                    redo = (drawn != grey).flatten(1).any(1).numpy()
                    raw = drawn[:, 0].mul(255.0).round_().to(torch.uint8).numpy()
                xb = torch.from_numpy(rewindow_clahe(raw, np_gen, always=redo)).float().div_(255.0).unsqueeze(1)
            if twin_images is not None:
                # A MedSeg slice becomes its lesion-free twin (empty mask) with probability F.
                first, count, _ = twins[1], twins[2], twins[3]
                medseg = idx >= first
                swap = medseg & (torch.rand(len(idx), generator=gen) < opts.medseg_twins)
                if swap.any():
                    xb, yb = xb.clone(), yb.clone()
                    xb[swap] = twin_images[(idx[swap] - first) % count]
                    yb[swap] = 0.0
            if lesion_masks is not None:  # lungs: warp the lesions with the lung mask, draw them dense, learn lung
                x, both = random_affine(xb, opts.size, aug, gen, mask=torch.cat([yb, lesion_masks[idx]], 1),
                                        crop=opts.crop)
                y = both[:, :1]
                x = densify_lesions(x, both[:, 1:], opts.densify, gen)
            else:
                x, y = random_affine(xb, opts.size, aug, gen, mask=yb, crop=opts.crop)
                if opts.densify:
                    x = densify_lesions(x, y, opts.densify, gen)
            x = _normalise(jitter_intensity(x, aug, gen), LITE_MEAN, LITE_STD)
            x = x.contiguous(memory_format=torch.channels_last)
            lr = steps.set_lr(optim)
            loss = deep_supervision_loss(model.forward_logits(x), y)
            losses.append(optimizer_step(optim, loss))
            steps.done(losses[-1], lr)
        if not losses:
            break
        metrics = {}
        for name, (vx, vy) in val.items():
            probs = predict(model, vx)
            metrics[name] = {"dice": float(np.mean([dice(p >= 0.5, m > 0) for p, m in zip(probs, vy)])),
                             "dice_pooled": dice(probs >= 0.5, vy > 0)}
        metrics["dice"] = float(np.mean([m["dice"] for m in metrics.values()]))
        best = end_epoch(log, model, optim, opts, epoch=epoch, step=steps.step, losses=losses, metrics=metrics,
                         score=metrics["dice"], best=best, start=steps.start)
    log.finish(steps=steps.step, best_val_dice=best, minutes=steps.minutes, weights=str(out / "best.safetensors"),
               target=target)
    return log.record
