"""Held-out evaluation of segmentation and classification weights on image folders.

Images are read as 8-bit grey, resized to the weights' ``input_size`` exactly as
in training, and normalised with the weights' mean/std. Segmentation
probabilities are resized back to each mask's own size before scoring.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.train.ctseg_train import CTSEG_FOLDER, MEDSEG_FOLDER
from jcs_viewer.train.datasets import IMAGE_SUFFIXES, folder_items
from jcs_viewer.train.images import read_grey, read_mask

if TYPE_CHECKING:
    from jcs_viewer.models.registry import WeightsEntry


def _images_in(folder: Path) -> list[Path]:
    if not Path(folder).is_dir():
        raise StudyLoadError(f"The folder {folder} does not exist.")
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def mask_candidates(image_name: str) -> list[str]:
    """Mask file names that pair with an image name, most specific first.

    ``tr_im_0007.png`` pairs with ``tr_mask_0007.png``; any image also pairs with a
    mask of the same name, or the same stem with another image extension.
    """
    stem, suffix = Path(image_name).stem, Path(image_name).suffix
    names = []
    if re.search(r"(^|_)im(_|$)", stem):
        masked = re.sub(r"(^|_)im(_|$)", r"\1mask\2", stem, count=1)
        names += [masked + suffix, masked + ".png"]
    names += [image_name, stem + ".png"]
    return list(dict.fromkeys(names))


def pair_images_masks(images_dir: Path, masks_dir: Path, names: list[str] | None = None) -> list[tuple[Path, Path]]:
    """(image, mask) pairs matched by name; ``names`` restricts to those image names.

    Raises:
        StudyLoadError: a listed image is missing, an image has no mask, or nothing pairs.
    """
    images = _images_in(images_dir)
    if names is not None:
        by_name = {p.name: p for p in images}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise StudyLoadError(f"The listed image {missing[0]} is not in {images_dir} ({len(missing)} missing).")
        images = [by_name[n] for n in names]
    pairs = []
    for img in images:
        mask = next((Path(masks_dir) / c for c in mask_candidates(img.name) if (Path(masks_dir) / c).is_file()), None)
        if mask is None:
            raise StudyLoadError(f"No mask in {masks_dir} matches the image {img.name}.")
        pairs.append((img, mask))
    if not pairs:
        raise StudyLoadError(f"No images to evaluate in {images_dir}.")
    return pairs


def load_model(weights: str | None, task: str):
    """(model, entry) for a registry name, a weights path, or the task's default weights."""
    from jcs_viewer.errors import ModelLoadError
    from jcs_viewer.models import default_weights, load

    if weights is None:
        entry = default_weights(task)
        if entry is None:
            raise ModelLoadError(f"No default {task} weights are installed; pass --weights.")
        weights = entry.name
    path = Path(weights).expanduser()
    # A weights file with a manifest beside it: search that folder first, so its entry (not a guess
    # from the tensor names) decides the architecture.
    extra = (path.resolve().parent,) if path.is_file() else ()
    model, entry = load(weights, "cpu", extra_dirs=extra)
    if entry.task != task:
        raise ModelLoadError(f"The weights {entry.name!r} are for {entry.task}, not {task}.")
    return model, entry


def _check_normalisation(entry, model) -> None:
    """The entry's mean/std must be what the evaluation feeds ``model`` (:func:`input_normalisation`)."""
    from jcs_viewer.errors import ModelLoadError
    from jcs_viewer.train.augment import input_normalisation

    mean, std = input_normalisation(model)
    if not (np.allclose(entry.mean, mean) and np.allclose(entry.std, std)):
        raise ModelLoadError(f"{entry.name!r} declares a normalisation other than its network's; "
                             "evaluate cannot apply it.")


def _mirror(entry, mirror: bool | None) -> bool:
    """Whether a classifier reads each image and its mirror: the entry's ``test_mirror`` unless ``mirror`` says."""
    return bool(getattr(entry, "test_mirror", False)) if mirror is None else bool(mirror)


#: what the images on disk are: 8-bit lung-window slices (MedSeg, COVID-CT) or CT-Seg CLAHE slices.
IMAGE_INTENSITIES = ("window", "clahe")


def _read_pairs(pairs: list[tuple[Path, Path]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images, masks = [], []
    for img_path, mask_path in pairs:
        img, mask = read_grey(img_path), read_mask(mask_path)
        if img.shape != mask.shape:
            raise StudyLoadError(f"The mask {mask_path} is {mask.shape}, its image {img_path.name} is {img.shape}.")
        images.append(img)
        masks.append(mask)
    return images, masks


def predict_in_domain(model, entry, images: list[np.ndarray], intensity: str) -> tuple[list[np.ndarray], str]:
    """Probabilities (side output 0, each at its image's size) with the weights' own input transform.

    ``intensity`` says what the images are. Weights of the CT-Seg domain get the CT-Seg transform on
    lung-window images and CLAHE images as they are; lung-window weights get every image as it is
    (a CLAHE image cannot be turned back into a window: the note says so). Entries with
    ``test_sizes`` read every image at each size and average, as the app does.

    Returns:
        (probabilities, a note on how the images were read).
    """
    from jcs_viewer.pipeline.preprocess import entry_test_sizes

    if intensity not in IMAGE_INTENSITIES:
        raise ValueError(f"intensity must be one of {IMAGE_INTENSITIES}, not {intensity!r}")
    sizes = list(entry_test_sizes(entry))
    runs = [_predict_at(model, entry, images, intensity, size) for size in sizes]
    if len(runs) == 1:
        return runs[0]
    probs = [sum(maps) / len(runs) for maps in zip(*(maps for maps, _ in runs))]
    return probs, f"{runs[0][1]}; averaged over input sides {sizes}"


def _predict_at(model, entry, images: list[np.ndarray], intensity: str, size: int) -> tuple[list[np.ndarray], str]:
    """:func:`predict_in_domain` at one input side."""
    import torch
    import torch.nn.functional as F

    from jcs_viewer.pipeline.intensity import ctseg_clahe
    from jcs_viewer.train.datasets import _resize_u8
    from jcs_viewer.train.predict import predict_seg

    kind = getattr(entry, "intensity", "window")
    if kind == "window":
        note = "images fed as they are (weights trained on lung-window 8-bit slices)"
        if intensity == "clahe":
            note += "; CLAHE images differ from what these weights saw"
        return predict_seg(model.float(), images, size), note
    if kind == "ctseg" and intensity == "window":
        domain = [ctseg_clahe(img[None], is_hu=False, size=size)[0] for img in images]
        note = "lung-window images brought into the CT-Seg domain (min-max + CLAHE, as for HU studies)"
    else:
        domain = [img if img.shape == (size, size) else _resize_u8(img, size) for img in images]
        note = (f"{intensity} images fed as they are (weights trained on lung-window and CT-Seg CLAHE slices)"
                if kind == "mixed" else "CT-Seg CLAHE images fed as they are")
    mean = torch.tensor(entry.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(entry.std, dtype=torch.float32).view(1, 3, 1, 1)
    model = model.float().eval()
    probs = []
    with torch.inference_mode():
        for start in range(0, len(domain), 8):
            chunk = images[start : start + 8]
            x = torch.from_numpy(np.stack(domain[start : start + 8])).float().div_(255.0)[:, None]
            x = ((x.expand(-1, 3, -1, -1) - mean) / std).contiguous(memory_format=torch.channels_last)
            out = model(x)[:, :1].float()
            for img, prob in zip(chunk, out):
                if img.shape != tuple(prob.shape[-2:]):
                    prob = F.interpolate(prob[None], size=img.shape, mode="bilinear", align_corners=False)[0]
                probs.append(prob[0].numpy())
    return probs, note


def _per_group(pairs: list[tuple[Path, Path]], probs, masks, threshold: float) -> dict[str, dict]:
    """Dice per CT-Seg volume group (slice file names are the source's slice numbers)."""
    from jcs_viewer.train.metrics import dice
    from jcs_viewer.train.splits import ctseg_group, ctseg_group_span

    groups: dict[int, list[int]] = {}
    for k, (img, _) in enumerate(pairs):
        if not img.stem.isdigit():
            return {}
        groups.setdefault(ctseg_group(int(img.stem)), []).append(k)
    out = {}
    for g, idx in sorted(groups.items()):
        per = [dice(probs[k] >= threshold, masks[k] > 0) for k in idx]
        pooled = dice(np.concatenate([(probs[k] >= threshold).ravel() for k in idx]),
                      np.concatenate([(masks[k] > 0).ravel() for k in idx]))
        out[ctseg_group_span(g)] = {"dice": float(np.mean(per)), "dice_pooled": pooled, "n": len(idx)}
    return out


def evaluate_seg(images_dir: Path, masks_dir: Path, weights: str | None = None,
                 names: list[str] | None = None, threshold: float = 0.5, intensity: str = "window") -> dict:
    """Dice, IoU, E-measure (at ``threshold``) and the JCS protocol mIoU over matched pairs.

    ``intensity`` says what the images are (``"window"``: 8-bit lung window; ``"clahe"``: CT-Seg);
    CT-Seg file names (slice numbers) also give the Dice per volume group.
    """
    from jcs_viewer.train.metrics import segmentation_metrics

    model, entry = load_model(weights, "seg")
    if getattr(entry, "intensity", "window") == "window":
        _check_normalisation(entry, model)
    pairs = pair_images_masks(images_dir, masks_dir, names)
    images, masks = _read_pairs(pairs)
    probs, note = predict_in_domain(model, entry, images, intensity)
    result = segmentation_metrics(probs, masks, threshold)
    out = {"task": "seg", "weights": entry.name, "threshold": threshold, "intensity": intensity, "input": note,
           **result}
    per_group = _per_group(pairs, probs, masks, threshold)
    if per_group:
        out["per_volume_group"] = per_group
    return out


def evaluate_lungs(images_dir: Path, masks_dir: Path, weights: str | None = None,
                   names: list[str] | None = None, threshold: float = 0.5, intensity: str = "clahe") -> dict:
    """Lung Dice of the learned lung segmenter over matched slice/mask pairs (per slice mean and pooled)."""
    from jcs_viewer.train.metrics import dice

    model, entry = load_model(weights, "lung")
    pairs = pair_images_masks(images_dir, masks_dir, names)
    images, masks = _read_pairs(pairs)
    probs, note = predict_in_domain(model, entry, images, intensity)
    per = [dice(p >= threshold, m > 0) for p, m in zip(probs, masks)]
    pooled = dice(np.concatenate([(p >= threshold).ravel() for p in probs]),
                  np.concatenate([(m > 0).ravel() for m in masks]))
    out = {"task": "lungs", "weights": entry.name, "threshold": threshold, "intensity": intensity, "input": note,
           "dice": float(np.mean(per)), "dice_pooled": pooled, "dice_min": float(np.min(per)), "n": len(per)}
    per_group = _per_group(pairs, probs, masks, threshold)
    if per_group:
        out["per_volume_group"] = per_group
    return out


def evaluate_cls(covid_dir: Path, noncovid_dir: Path, weights: str | None = None,
                 covid_names: list[str] | None = None, noncovid_names: list[str] | None = None,
                 threshold: float = 0.5, mirror: bool | None = None) -> dict:
    """Accuracy, sensitivity, specificity, precision, F1 (COVID positive) and AUC.

    ``mirror``: read each image and its left-right mirror (None: as the weights' ``test_mirror`` says).
    """
    from jcs_viewer.train.metrics import classification_metrics

    prob, labels, entry, mirror = cls_probabilities(covid_dir, noncovid_dir, weights, covid_names, noncovid_names,
                                                    mirror)
    return {"task": "cls", "weights": entry.name, "threshold": threshold, "mirror": mirror,
            **classification_metrics(prob, labels, threshold)}


def cls_probabilities(covid_dir: Path, noncovid_dir: Path, weights: str | None = None,
                      covid_names: list[str] | None = None, noncovid_names: list[str] | None = None,
                      mirror: bool | None = None) -> tuple[np.ndarray, np.ndarray, WeightsEntry, bool]:
    """The classifier's COVID probability of each image, as :func:`evaluate_cls` reads them.

    Returns:
        (probabilities, labels (1 = COVID), the weights entry, whether the mirror was read).
    """
    from jcs_viewer.train.predict import predict_cls

    model, entry = load_model(weights, "cls")
    _check_normalisation(entry, model)
    items = folder_items(covid_dir, 1, covid_names) + folder_items(noncovid_dir, 0, noncovid_names)
    images = [read_grey(p) for p, _, _ in items]
    if entry.crop == "lungs":
        from jcs_viewer.train.lung_boxes import lung_squares

        images = list(lung_squares(images, entry.input_size))
    labels = np.array([label for _, label, _ in items])
    mirror = _mirror(entry, mirror)
    prob, _ = predict_cls(model.float(), images, entry.input_size, mirror=mirror)
    return np.asarray(prob), labels, entry, mirror


def _labelled_slices(data_root: Path, dataset: str, split: str, size: int):
    """MedSeg or CT-Seg slices of ``split`` with their lesion-free twins (:class:`MedSegTwins`)."""
    from jcs_viewer.train.crops import MedSegTwins

    if dataset == "medseg":
        return MedSegTwins.load(Path(data_root) / MEDSEG_FOLDER, split, size)
    if dataset == "ctseg":
        return MedSegTwins.ctseg(Path(data_root) / CTSEG_FOLDER, split, size)
    raise ValueError(f"dataset must be medseg or ctseg, not {dataset!r}")


def _lesion_slices(data_root: Path, dataset: str, split: str, size: int,
                   every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """MedSeg or CT-Seg slices of ``split`` (every ``every``-th) and their lesion masks (``uint8``, ``bool``;
    N x S x S), without the twins that :func:`_labelled_slices` also makes (filling lesions at 512 px is most of
    its cost)."""
    if dataset == "medseg":
        from jcs_viewer.train.datasets import load_seg_set, medseg_pairs

        data = load_seg_set(medseg_pairs(Path(data_root) / MEDSEG_FOLDER, split)[::every], size)
        return data.images, data.masks > 0
    if dataset == "ctseg":
        from jcs_viewer.train.ctseg_train import ctseg_files, load_pairs

        images, masks = load_pairs(ctseg_files(Path(data_root) / CTSEG_FOLDER, split, "lesions")[::every], size)
        return images, masks > 0
    raise ValueError(f"dataset must be medseg or ctseg, not {dataset!r}")


def evaluate_twins(data_root: Path, split: str, weights: str | None = None, threshold: float = 0.5,
                   dataset: str = "medseg", mirror: bool | None = None) -> dict:
    """Real lesion slices of one split (COVID) against their lesion-free twins (non-COVID), whole slices.

    Both are real CT from the same patients and scanner, differing only in the lesions
    (:func:`jcs_viewer.train.crops.erase_lesions`): does the classifier answer "lesion or not" rather
    than "which archive is this image from"? ``dataset``: ``"medseg"`` (lung window) or ``"ctseg"``
    (CLAHE slices, twins filled inside the radiologists' lung masks). ``mirror`` as for :func:`evaluate_cls`.
    """
    from jcs_viewer.train.metrics import classification_metrics
    from jcs_viewer.train.predict import predict_cls

    model, entry = load_model(weights, "cls")
    _check_normalisation(entry, model)
    if entry.crop == "lungs":  # read large, then each pair cut to the slice's lung square
        from jcs_viewer.train.lung_boxes import READ_SIZE

        twins = _labelled_slices(data_root, dataset, split, READ_SIZE).cropped_to_lungs(entry.input_size)
    else:
        twins = _labelled_slices(data_root, dataset, split, entry.input_size)
    mirror = _mirror(entry, mirror)
    prob, _ = predict_cls(model.float(), list(twins.images_u8), entry.input_size, mirror=mirror)
    return {"task": "cls-twins", "weights": entry.name, "dataset": dataset, "threshold": threshold,
            "mirror": mirror, **classification_metrics(prob, twins.labels, threshold)}


def _lungs_of(dataset: str, data_root: Path, split: str, images: np.ndarray, lesions: np.ndarray,
              every: int = 1) -> np.ndarray:
    """Lung masks (N x S x S bool) of the lesion slices: CT-Seg's own (consolidation included); for MedSeg,
    which has none, the app's HU lungs of the window-inverted slice joined with the lesion mask."""
    if dataset == "ctseg":
        from jcs_viewer.train.ctseg_train import ctseg_files, load_pairs

        _, lungs = load_pairs(ctseg_files(Path(data_root) / CTSEG_FOLDER, split, "lungs")[::every],
                              images.shape[-1])
        return (lungs[: len(images)] > 0) | lesions
    from jcs_viewer.train.crops import window_slice_lungs

    return np.stack([window_slice_lungs(img) | lesion for img, lesion in zip(images, lesions)])


def evaluate_cam(data_root: Path, split: str, weights: str | None = None, margin_px: int = 5,
                 dataset: str = "medseg", mirror: bool | None = None, every: int = 1) -> dict:
    """Do the classifier's Grad-CAM maps point at the lesions? Lesion slices of one split, at input size.

    ``pointing_game``: fraction of slices whose map peaks inside the lesion mask (grown by
    ``margin_px``); ``mass_ratio``: median over slices of the map's share inside that mask divided
    by the mask's share of the image (1 = no better than spreading the map evenly);
    ``mass_in_lungs``: mean over slices of the map's share inside the lungs (:func:`_lungs_of`).
    ``mirror`` as for :func:`evaluate_cls`; ``every``: read only every ``every``-th slice of the split.
    """
    import torch

    from jcs_viewer.models import gradcam
    from jcs_viewer.pipeline.morphology import dilate_xy
    from jcs_viewer.train.augment import input_normalisation
    from jcs_viewer.train.metrics import peak_index
    from jcs_viewer.train.predict import _to_input

    model, entry = load_model(weights, "cls")
    _check_normalisation(entry, model)
    mirror = _mirror(entry, mirror)
    size = entry.input_size
    # A lung-square classifier's map is scored in the whole slice (pasted back) at the read size, the
    # lesion margin scaled to the same millimetres.
    frame = size
    if entry.crop == "lungs":
        from jcs_viewer.pipeline.lung_crop import crop_images, paste_boxes
        from jcs_viewer.train.lung_boxes import READ_SIZE, image_lung_boxes

        frame = READ_SIZE
        margin_px = round(margin_px * READ_SIZE / size)
    images, lesions = _lesion_slices(data_root, dataset, split, frame, every)
    n = len(images)
    keep = np.flatnonzero(lesions.reshape(n, -1).any(axis=1))
    lungs = _lungs_of(dataset, data_root, split, images, lesions, every)
    boxes = image_lung_boxes(images) if entry.crop == "lungs" else None
    hits, ratios, in_lungs = [], [], []
    for start in range(0, len(keep), 16):
        idx = keep[start : start + 16]
        seen = images[idx] if boxes is None else crop_images(images[idx], boxes[idx], size)
        x = _to_input(list(seen), size, input_normalisation(model))
        _, cams = gradcam(model.float().eval(), x.contiguous(memory_format=torch.channels_last), target_class=1,
                          out_size=(size, size), mirror=mirror)
        if boxes is not None:
            cams = paste_boxes(cams.detach().float()[:, None], boxes[idx], (frame, frame))[:, 0]
        for cam, k in zip(cams.detach().float().numpy(), idx):
            region = dilate_xy(lesions[k][None], margin_px)[0]
            total = max(float(cam.sum()), 1e-9)
            hits.append(bool(region.flat[peak_index(cam)]))
            ratios.append(float(cam[region].sum() / total / region.mean()))
            in_lungs.append(float(cam[lungs[k]].sum() / total))
    return {"task": "cls-cam", "weights": entry.name, "dataset": dataset, "mirror": mirror,
            "pointing_game": float(np.mean(hits)),
            "mass_ratio": float(np.median(ratios)), "mass_in_lungs": float(np.mean(in_lungs)), "n": len(hits)}


#: A phantom slice is COVID when its lesions cover this many mm², non-COVID when none (ambiguous between).
PHANTOM_MIN_LESION_MM2 = 25.0


def evaluate_phantom(weights: str | None = None, seed: int = 0, n_slices: int = 128, threshold: float = 0.5,
                     task: str = "cls", seg_weights: str | None = None) -> dict:
    """Weights on the synthetic demo chest CT, through the app's own HU preprocessing.

    The phantom is never used for training: this is an out-of-distribution check that the models
    respond to ground glass and consolidation in lung, not to the look of an image archive.

    ``cls``: slices holding at least :data:`PHANTOM_MIN_LESION_MM2` of lesion are positives, slices
    without lesion negatives; ``flagged_lesion_free`` is the fraction of the lesion-free twin
    study's slices called positive. ``seg``: every slice segmented; Dice of the lesion voxels
    (probability at or above ``threshold``) against the phantom's lesion mask, and the volumes.
    ``joint``: the whole pipeline (:func:`jcs_viewer.pipeline.analyze`, joint slice score) with
    the classifier ``weights`` and ``seg_weights``: slice AUC/sensitivity/specificity of the joint
    score, of the classifier alone and of the lesion evidence alone, and the patient decision
    and positive-slice count on the phantom and on its lesion-free twin.
    """
    import torch

    from jcs_viewer.io.phantom import make_phantom
    from jcs_viewer.models.gradcam import class_probability
    from jcs_viewer.pipeline.lungs import compute_lung_mask
    from jcs_viewer.pipeline.preprocess import entry_boxes, lesion_probabilities, prepare_batch
    from jcs_viewer.train.metrics import classification_metrics, dice

    if task not in ("cls", "seg", "joint"):
        raise ValueError(f"task must be cls, seg or joint, not {task!r}")
    if task == "joint":
        return _phantom_joint(weights, seg_weights, seed, n_slices, threshold)
    model, entry = load_model(weights, task)
    phantom = make_phantom(n_slices, 512, seed=seed)

    def lungs_of(hu: np.ndarray) -> np.ndarray | None:
        # A lung-square classifier reads each slice through the app's HU lung mask.
        return compute_lung_mask(hu, phantom.spacing, is_hu=True) > 0 if entry.crop == "lungs" else None

    def outputs(hu: np.ndarray, lungs: np.ndarray | None, slices: np.ndarray) -> np.ndarray:
        parts = []
        with torch.inference_mode():
            for start in range(0, len(slices), 16):
                idx = slices[start : start + 16]
                if task == "cls":
                    boxes = entry_boxes(entry, None if lungs is None else lungs[idx])
                    x = prepare_batch(hu[idx], entry, True, "cpu", boxes)
                    parts.append(class_probability(model, x, 1, _mirror(entry, None)).numpy())
                else:
                    parts.append(lesion_probabilities(model, hu[idx], entry, True, "cpu", hu.shape[-2:])[:, 0].numpy())
        return np.concatenate(parts)

    head = {"task": f"{task}-phantom", "weights": entry.name, "threshold": threshold, "seed": seed}
    twin_hu = make_phantom(n_slices, 512, seed=seed, lesions=False).hu
    lungs, twin_lungs = lungs_of(phantom.hu), lungs_of(twin_hu)
    prob = outputs(phantom.hu, lungs, np.arange(n_slices))
    # The lesion-free twin differs from the phantom only on its lesion slices: only those are read again (and,
    # for a lung-square reader, any slice whose lungs differ).
    changed = np.flatnonzero([not (np.array_equal(twin_hu[k], phantom.hu[k]) and (
        lungs is None or np.array_equal(twin_lungs[k], lungs[k]))) for k in range(n_slices)])
    clean = prob.copy()
    if len(changed):
        clean[changed] = outputs(twin_hu, twin_lungs, changed)
    if task == "seg":
        predicted = prob >= threshold
        truth = phantom.lesion_mask > 0
        voxel_ml = phantom.voxel_volume_ml
        return {**head, "dice": dice(predicted, truth), "lesion_ml": float(predicted.sum() * voxel_ml),
                "true_lesion_ml": float(truth.sum() * voxel_ml),
                "lesion_free_ml": float((clean >= threshold).sum() * voxel_ml)}
    area = phantom.lesion_mask.reshape(n_slices, -1).sum(axis=1) * phantom.spacing[1] * phantom.spacing[2]
    keep = (area == 0) | (area >= PHANTOM_MIN_LESION_MM2)
    return {**head, **classification_metrics(prob[keep], area[keep] > 0, threshold),
            "flagged_lesion_free": float(np.mean(clean >= threshold)), "mean_probability": float(np.mean(prob))}


def _phantom_joint(cls_weights: str | None, seg_weights: str | None, seed: int, n_slices: int,
                   threshold: float) -> dict:
    from jcs_viewer.io.phantom import make_phantom
    from jcs_viewer.pipeline import AnalysisOptions, analyze
    from jcs_viewer.train.metrics import classification_metrics

    options = AnalysisOptions(device="cpu", cls_weights=cls_weights, seg_weights=seg_weights, slice_cutoff=threshold,
                              slice_score="joint", compute_cams=False)
    phantom = make_phantom(n_slices, 512, seed=seed)
    result = analyze(phantom.to_volume(), options)
    clean = analyze(make_phantom(n_slices, 512, seed=seed, lesions=False).to_volume(), options)
    area = phantom.lesion_mask.reshape(n_slices, -1).sum(axis=1) * phantom.spacing[1] * phantom.spacing[2]
    # Slices without lung have no score: they are not counted.
    keep = ((area == 0) | (area >= PHANTOM_MIN_LESION_MM2)) & result.scored_slices
    truth = area[keep] > 0
    scores = {"joint": result.slice_probability, "classifier": result.classifier_probability,
              "lesion_evidence": result.lesion_evidence}
    out = {"task": "joint-phantom", "weights": result.models["cls"]["name"],
           "seg_weights": result.models["seg"]["name"], "threshold": threshold, "seed": seed}
    for name, score in scores.items():
        m = classification_metrics(np.asarray(score)[keep], truth, threshold)
        out[name] = {k: m[k] for k in ("auc", "sensitivity", "specificity", "n")}
    out.update(decision=result.decision, positive_slices=int(result.positive_slices),
               scored_slices=int(result.scored_slices.sum()),
               patient_threshold=int(result.threshold), lesion_free_decision=clean.decision,
               lesion_free_positive_slices=int(clean.positive_slices))
    return out
