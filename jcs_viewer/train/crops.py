"""MedSeg slices and their lesion-free twins: real-CT examples for the slice classifier.

COVID-CT's two classes come from different sources (COVID: figures cropped out of papers; non-COVID:
image archives), so a classifier trained on it alone learns the sources rather than the lesions: the
first shipped classifier (COVID-CT only) scored every slice of the demo phantom 0.55-0.68 whether it
held a lesion or not (slice AUC 0.18) and half of the MedSeg COVID slices below 0.5. MedSeg slices are
real CT in the lung window the app uses, and their masks say where the lesions are. Each slice gets a
twin with the lesions replaced by the surrounding healthy lung (:func:`erase_lesions`): the pair
differs only in the lesions, so the classifier can separate them by nothing else. Training crops of
either are labelled from their own warped masks (a crop of a COVID slice that misses every lesion is
a non-COVID example); crops catching only a few lesion pixels at their edge are ambiguous and left out
of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jcs_viewer.train.window import TRAINING_WINDOW

#: A crop needs at least this many lesion pixels (at crop resolution) to count as COVID.
MIN_LESION_PX = 16


def crop_labels(warped_masks: torch.Tensor, min_px: int = MIN_LESION_PX) -> tuple[torch.Tensor, torch.Tensor]:
    """(label, weight) per warped N x 1 x h x w mask: COVID when it holds ``min_px`` lesion pixels,
    non-COVID when it holds none, weight 0 (ambiguous) in between."""
    count = warped_masks.flatten(1).sum(dim=1)
    labels = (count >= min_px).long()
    weights = ((count == 0) | (count >= min_px)).float()
    return labels, weights


@dataclass
class MedSegTwins:
    """MedSeg slices of one split and their lesion-free twins, as a source of labelled real-CT crops.

    ``grey``/``masks`` hold the N slices followed by their N twins (whose masks are empty), so a
    random crop's label always follows from its own warped mask.
    """

    grey: torch.Tensor  # 2N x 1 x S x S, 0..1
    masks: torch.Tensor  # 2N x 1 x S x S, 0/1
    data_hash: str
    sampling: torch.Tensor | None = None  # probability of drawing each slice (None: uniform)

    @classmethod
    def load(cls, root, split: str, size: int) -> "MedSegTwins":
        """The slices of ``split`` at ``size``, and their twins (seeded by slice position)."""
        from pathlib import Path

        from jcs_viewer.train.datasets import load_seg_set, medseg_pairs
        from jcs_viewer.train.runlog import hash_files

        root = Path(root)
        pairs = medseg_pairs(root, split)
        data = load_seg_set(pairs, size)
        twins = np.stack([erase_lesions(img, mask, seed=k) for k, (img, mask) in enumerate(zip(data.images,
                                                                                              data.masks))])
        images = np.concatenate([data.images, twins])
        masks = np.concatenate([data.masks, np.zeros_like(data.masks)])
        return cls(torch.from_numpy(images).float().div_(255.0).unsqueeze(1),
                   torch.from_numpy(masks).float().unsqueeze(1),
                   hash_files([p for pair in pairs for p in pair], root.parent))

    @classmethod
    def ctseg(cls, root, split: str, size: int) -> "MedSegTwins":
        """COVID-19-CT-Seg slices of one split (by volume group) with their infection masks, as they are
        (CLAHE 8-bit), and their twins (lesions filled from the radiologists' lung masks). Nearly every
        CT-Seg slice holds infection: without twins, "CLAHE look" alone would mean COVID."""
        from pathlib import Path

        from jcs_viewer.train.ctseg_train import ctseg_files, load_pairs
        from jcs_viewer.train.runlog import hash_files

        root = Path(root)
        pairs, lung_pairs = ctseg_files(root, split, "lesions"), ctseg_files(root, split, "lungs")
        images, masks = load_pairs(pairs, size)
        _, lungs = load_pairs(lung_pairs, size)
        twins = np.stack([erase_lesions(img, mask, seed=k, lung=lung | mask)
                          for k, (img, mask, lung) in enumerate(zip(images, masks, lungs))])
        return cls(torch.from_numpy(np.concatenate([images, twins])).float().div_(255.0).unsqueeze(1),
                   torch.from_numpy(np.concatenate([masks, np.zeros_like(masks)])).float().unsqueeze(1),
                   hash_files([p for pair in pairs + lung_pairs for p in pair], root.parent))

    def cropped_to_lungs(self, size: int) -> "MedSegTwins":
        """Each slice and its twin cut to the square around the slice's lungs, at ``size``.

        The box comes from the slice and serves its twin too: a box that moved with the lesions would
        tell the pair apart by itself.
        """
        from jcs_viewer.pipeline.lung_crop import crop_boxes
        from jcs_viewer.train.lung_boxes import image_lung_boxes

        n = len(self) // 2
        boxes = np.tile(image_lung_boxes(self.images_u8[:n]), (2, 1))
        grey = crop_boxes(self.grey, boxes, (size, size)).clamp_(0.0, 1.0)
        masks = (crop_boxes(self.masks, boxes, (size, size)) >= 0.5).float()
        return MedSegTwins(grey, masks, self.data_hash, self.sampling)

    def joined(self, other: "MedSegTwins") -> "MedSegTwins":
        """Both sets in one, each source drawn half of the time whatever its size."""
        def share(part: "MedSegTwins") -> torch.Tensor:
            return part.sampling if part.sampling is not None else torch.full((len(part),), 1.0 / len(part))

        return MedSegTwins(torch.cat([self.grey, other.grey]), torch.cat([self.masks, other.masks]),
                           f"{self.data_hash}+{other.data_hash}",
                           torch.cat([share(self), share(other)]) / 2.0)

    def __len__(self) -> int:
        return len(self.grey)

    @property
    def images_u8(self) -> np.ndarray:
        """The slices and twins as N x S x S uint8 (for whole-slice prediction)."""
        return (self.grey[:, 0] * 255.0).round().to(torch.uint8).numpy()

    @property
    def labels(self) -> np.ndarray:
        """1 for a slice with lesions, 0 for a twin (or a lesion-free slice)."""
        return (self.masks.flatten(1).sum(dim=1) > 0).long().numpy()

    @staticmethod
    def per_batch(opts) -> int:
        """MedSeg crops per batch: ``--medseg-twins`` of it, at least one, leaving one COVID-CT image."""
        return min(opts.batch - 1, max(1, round(opts.batch * opts.medseg_twins)))

    def sample(self, n: int, opts, aug, gen: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` augmented crops of slices or twins: ``(grey, warped masks, labels, loss weights)``."""
        from jcs_viewer.train.augment import random_affine

        if self.sampling is None:
            idx = torch.randint(len(self.grey), (n,), generator=gen)
        else:
            idx = torch.multinomial(self.sampling, n, replacement=True, generator=gen)
        x, m = random_affine(self.grey[idx], opts.size, aug, gen, mask=self.masks[idx], crop=opts.crop)
        labels, weights = crop_labels(m)
        return x, m, labels, weights


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float array (edges replicated; taps to 3 sigma)."""
    import cv2

    k = max(1, int(3 * sigma))
    x = np.arange(-k, k + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma * sigma))
    g = (g / g.sum()).astype(np.float32)
    return cv2.sepFilter2D(np.ascontiguousarray(image, np.float32), cv2.CV_32F, g, g,
                           borderType=cv2.BORDER_REPLICATE)


def window_slice_lungs(image: np.ndarray) -> np.ndarray:
    """The app's HU lungs of an 8-bit lung-window slice (the training window undone first), S x S bool."""
    from jcs_viewer.pipeline.lungs import compute_lung_mask

    center, width = TRAINING_WINDOW
    hu = (image[None].astype(np.float32) / 255.0 * width + center - width / 2.0).astype(np.int16)
    return compute_lung_mask(hu, (1.0, 1.0, 1.0), is_hu=True)[0] > 0


def erase_lesions(image: np.ndarray, lesion: np.ndarray, seed: int = 0, lung: np.ndarray | None = None) -> np.ndarray:
    """The slice's lesion-free twin: lesion pixels replaced by the surrounding healthy lung.

    The fill is the local level of healthy parenchyma (a normalised Gaussian average over lung
    pixels outside the lesions and below their 80th grey percentile, so vessels do not raise it),
    widened until it reaches every lesion pixel, plus fine noise with the parenchyma's own
    robust spread, blended in over a soft 2-pixel edge.

    Args:
        image: S x S uint8 slice (lung window).
        lesion: S x S lesion mask.
        seed: seed of the texture noise.
        lung: S x S lung mask when known (the CT-Seg slices have one); else found from the window.

    Returns:
        S x S uint8 slice without the lesions.
    """
    from jcs_viewer.pipeline.morphology import dilate_xy

    lesion = lesion.astype(bool)
    if not lesion.any():
        return image.copy()
    img = image.astype(np.float32)
    lung = window_slice_lungs(image) if lung is None else lung.astype(bool)
    scale = image.shape[-1] / 512.0
    hole = dilate_xy(lesion[None], max(1, round(3 * scale)))[0]
    healthy = lung & ~hole
    if healthy.sum() < 50:  # no healthy lung left to copy: dark lung level of the window
        source, level = None, float(np.percentile(img[~hole], 5)) if (~hole).any() else 60.0
    else:
        source = healthy & (img <= np.percentile(img[healthy], 80))
        level = 0.0
    if source is not None:
        weight = source.astype(np.float32)
        num = den = None
        for sigma in (12.0, 24.0, 48.0, 96.0):
            s = sigma * scale
            n_s, d_s = _blur(img * weight, s), _blur(weight, s)
            num = n_s if num is None else np.where(den < 1e-3, n_s, num)
            den = d_s if den is None else np.where(den < 1e-3, d_s, den)
            if (den[hole] >= 1e-3).all():
                break
        fill = num / np.maximum(den, 1e-6)
        fine = (img - _blur(img, 1.5 * scale))[source]
        spread = 1.4826 * float(np.median(np.abs(fine - np.median(fine))))
    else:
        fill, spread = np.full_like(img, level), 2.0
    noise = _blur(np.random.default_rng(seed).normal(0.0, 1.0, img.shape).astype(np.float32), 0.8 * max(scale, 0.5))
    fill = fill + noise * (spread / max(float(noise.std()), 1e-6))
    soft = np.clip(_blur(hole.astype(np.float32), 2.0 * scale) * 1.5, 0.0, 1.0)
    soft[hole] = 1.0
    return np.clip(img * (1.0 - soft) + fill * soft, 0, 255).round().astype(np.uint8)
