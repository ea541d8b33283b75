"""Held-out evaluation of segmentation and classification weights on image folders.

Images are read as 8-bit grey, resized to the weights' ``input_size`` exactly as
in training, and normalised with the weights' mean/std. Segmentation
probabilities are resized back to each mask's own size before scoring.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.train.datasets import IMAGE_SUFFIXES, folder_items
from jcs_viewer.train.images import read_grey, read_mask


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


def _check_normalisation(entry) -> None:
    from jcs_viewer.errors import ModelLoadError
    from jcs_viewer.train.augment import IMAGENET_MEAN, IMAGENET_STD

    if not (np.allclose(entry.mean, IMAGENET_MEAN) and np.allclose(entry.std, IMAGENET_STD)):
        raise ModelLoadError(f"{entry.name!r} uses a normalisation other than ImageNet's; evaluate cannot apply it.")


def evaluate_seg(images_dir: Path, masks_dir: Path, weights: str | None = None,
                 names: list[str] | None = None, threshold: float = 0.5) -> dict:
    """Dice, IoU, E-measure (at ``threshold``) and the JCS protocol mIoU over matched pairs."""
    import torch

    from jcs_viewer.train.metrics import segmentation_metrics
    from jcs_viewer.train.predict import predict_seg

    torch.set_num_threads(2)
    model, entry = load_model(weights, "seg")
    _check_normalisation(entry)
    pairs = pair_images_masks(images_dir, masks_dir, names)
    images, masks = [], []
    for img_path, mask_path in pairs:
        img, mask = read_grey(img_path), read_mask(mask_path)
        if img.shape != mask.shape:
            raise StudyLoadError(f"The mask {mask_path} is {mask.shape}, its image {img_path.name} is {img.shape}.")
        images.append(img)
        masks.append(mask)
    probs = predict_seg(model.float(), images, entry.input_size)
    result = segmentation_metrics(probs, masks, threshold)
    return {"task": "seg", "weights": entry.name, "threshold": threshold, **result}


def evaluate_cls(covid_dir: Path, noncovid_dir: Path, weights: str | None = None,
                 covid_names: list[str] | None = None, noncovid_names: list[str] | None = None,
                 threshold: float = 0.5) -> dict:
    """Accuracy, sensitivity, specificity, precision, F1 (COVID positive) and AUC."""
    import torch

    from jcs_viewer.train.metrics import classification_metrics
    from jcs_viewer.train.predict import predict_cls

    torch.set_num_threads(2)
    model, entry = load_model(weights, "cls")
    _check_normalisation(entry)
    items = folder_items(covid_dir, 1, covid_names) + folder_items(noncovid_dir, 0, noncovid_names)
    images = [read_grey(p) for p, _, _ in items]
    labels = np.array([label for _, label, _ in items])
    prob, _ = predict_cls(model.float(), images, entry.input_size)
    return {"task": "cls", "weights": entry.name, "threshold": threshold,
            **classification_metrics(prob, labels, threshold)}
