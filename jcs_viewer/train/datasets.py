"""In-memory training sets: MedSeg lesion segmentation and COVID-CT classification.

The sets are small (80 and 746 images), so every image is decoded once, resized
to a fixed working size and kept as uint8; augmentation then runs on whole
batches in torch (:mod:`jcs_viewer.train.augment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.train.images import read_grey, read_mask
from jcs_viewer.train.lesion_labels import ATTRIBUTES, load_lesion_labels
from jcs_viewer.train.splits import covid_ct_split, medseg_image_name, medseg_mask_name, medseg_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _resize_u8(arr: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(arr)
    return np.asarray(img.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR), dtype=np.uint8)


@dataclass
class SegSet:
    """Images (N x S x S uint8), masks (N x S x S uint8 0/1), names and the source files."""

    images: np.ndarray
    masks: np.ndarray
    names: list[str]
    files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class ClsSet:
    """Images (N x S x S uint8), labels (1 = COVID), attributes (N x 5), known (N: has lesion labels)."""

    images: np.ndarray
    labels: np.ndarray
    attrs: np.ndarray
    known: np.ndarray
    names: list[str]
    files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def medseg_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, mask) paths of one split of a MedSeg-layout folder (``tr_im/``, ``tr_mask_new/``)."""
    pairs = []
    for i in medseg_split(split):
        img, mask = Path(root) / "tr_im" / medseg_image_name(i), Path(root) / "tr_mask_new" / medseg_mask_name(i)
        for p in (img, mask):
            if not p.is_file():
                raise StudyLoadError(f"The MedSeg file {p} is missing (split {split!r} needs slice {i}).")
        pairs.append((img, mask))
    return pairs


def load_seg_set(pairs: list[tuple[Path, Path]], size: int) -> SegSet:
    """Decode image/mask pairs and resize both to ``size`` (image bilinear, mask nearest)."""
    if not pairs:
        raise StudyLoadError("No image/mask pairs to load.")
    images, masks, names, files = [], [], [], []
    for img_path, mask_path in pairs:
        img, mask = read_grey(img_path), read_mask(mask_path)
        if img.shape != mask.shape:
            raise StudyLoadError(f"The mask {mask_path} is {mask.shape}, its image {img_path} is {img.shape}.")
        images.append(_resize_u8(img, size))
        masks.append(_resize_u8(mask.astype(np.uint8), size, nearest=True))
        names.append(img_path.name)
        files += [img_path, mask_path]
    return SegSet(np.stack(images), np.stack(masks), names, files)


def covid_ct_items(root: Path, split: str) -> list[tuple[Path, int, tuple[int, ...] | None]]:
    """(path, label, attributes or None) of one official COVID-CT split, with LA-DNN labels."""
    root = Path(root)
    covid, noncovid = covid_ct_split(root, split)
    lesions = load_lesion_labels(root / "la_dnn_lesion_labels") if (root / "la_dnn_lesion_labels").is_dir() else {}
    items: list[tuple[Path, int, tuple[int, ...] | None]] = []
    for name in covid:
        items.append((root / "Images" / "CT_COVID" / name, 1, lesions.get(name)))
    for name in noncovid:
        items.append((root / "Images" / "CT_NonCOVID" / name, 0, None))
    return items


def folder_items(folder: Path, label: int, names: list[str] | None = None) -> list[tuple[Path, int, None]]:
    """(path, label, None) for the images of a folder, optionally only the listed names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StudyLoadError(f"The image folder {folder} does not exist.")
    if names is None:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        paths = [folder / n for n in names]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise StudyLoadError(f"The listed image {missing[0]} does not exist ({len(missing)} missing).")
    return [(p, label, None) for p in paths]


def load_cls_set(items: list[tuple[Path, int, tuple[int, ...] | None]], size: int) -> ClsSet:
    """Decode and resize (aspect not kept, as LA-DNN) classification images to ``size``."""
    if not items:
        raise StudyLoadError("No classification images to load.")
    n = len(items)
    images = np.zeros((n, size, size), np.uint8)
    labels = np.zeros(n, np.int64)
    attrs = np.zeros((n, len(ATTRIBUTES)), np.float32)
    known = np.zeros(n, np.float32)
    for k, (path, label, attr) in enumerate(items):
        images[k] = _resize_u8(read_grey(path), size)
        labels[k] = label
        if attr is not None:
            attrs[k] = attr
            known[k] = 1.0
    return ClsSet(images, labels, attrs, known, [p.name for p, _, _ in items], [p for p, _, _ in items])
