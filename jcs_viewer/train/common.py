"""Pieces shared by the segmentation and classification training loops."""

from __future__ import annotations

import platform
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jcs_viewer.train.runlog import atomic_write_json


@dataclass
class TrainOptions:
    """Options of one training run (the CLI's flags)."""

    data: Path
    out: Path
    epochs: int
    size: int
    batch: int
    lr: float
    seed: int = 0
    crop: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    threads: int = 2
    arch: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    weight_decay: float = 1e-4
    warmup: int = 50
    medseg_twins: float = 0.0  # cls: fraction of each batch from MedSeg slices and lesion-free twins
    init: Path | None = None  # pretrained-encoder nets: start from this run's weights, not from ImageNet
    ctseg: bool = False  # cls: CT-Seg training-group slices join the MedSeg crops (half of them)
    cam_weight: float = 0.0  # cls: weight of the loss that puts the Grad-CAM map on the crops' lesions
    lung_crop: bool = False  # cls: train and validate on the square around each image's lungs
    average_from: int | None = None  # cls: average the weights of every epoch from this one on (SWA)
    sgd: bool = False  # cls: SGD with Nesterov momentum 0.9 instead of Adam (steps in proportion to the gradient)
    freeze_bn: bool = False  # cls: BatchNorm statistics stay as --init left them (eval-mode BN in training)
    distil: Path | None = None  # cls: teacher targets (ct_trunk --teacher-out) as soft labels
    distil_weight: float = 1.0  # cls: weight of the teacher's soft label
    distil_features: float = 0.0  # cls: weight of the teacher-feature term (0: off)
    densify: float = 0.0  # seg, lungs: probability that a slice's lesions are rendered as consolidation
    dependent_lobes: float = 0.0  # lungs: probability that a slice's dependent lung is drawn consolidated
    medseg_lungs: str | None = None  # lungs: MedSeg slices join, labelled by this lung net + the lesion masks
    command: str = ""  # the full ``jcs-viewer train`` command line that reproduces this run


class RunLog:
    """The JSON log of a run (``run.json`` in the output folder), rewritten atomically after each epoch."""

    def __init__(self, opts: TrainOptions, task: str, data_hashes: dict[str, str]) -> None:
        import torch

        self.path = Path(opts.out) / "run.json"
        self.record: dict[str, Any] = {
            "task": task,
            "command": opts.command or " ".join(shlex.quote(a) for a in sys.argv),
            "argv": list(sys.argv),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
            "data_sha256": data_hashes,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "epochs": [],
        }
        self.save()

    def epoch(self, **values: Any) -> None:
        self.record["epochs"].append(values)
        self.save()

    def finish(self, **values: Any) -> None:
        self.record.update(values)
        self.record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.record)


def load_init(model, path: Path) -> None:
    """Continue an earlier run: its weights into ``model`` (strict: the same architecture and configuration).

    Raises:
        ModelLoadError: the weights do not fit the model, in one sentence.
    """
    from safetensors.torch import load_file

    from jcs_viewer.errors import ModelLoadError

    state = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        ours = set(model.state_dict())
        raise ModelLoadError(
            f"--init: {path} does not fit this architecture ({len(ours - set(state))} of its tensors missing, "
            f"{len(set(state) - ours)} unknown, or shapes differ); pass the weights of a run with the same "
            "--arch and --config."
        ) from None


def out_of_time(start: float, opts: TrainOptions, step: int) -> bool:
    """True once ``--max-steps`` or ``--max-minutes`` is reached."""
    if opts.max_steps is not None and step >= opts.max_steps:
        return True
    return opts.max_minutes is not None and (time.monotonic() - start) / 60.0 >= opts.max_minutes


def schedule_factor(opts: TrainOptions, step: int, total: int, start: float) -> float:
    """Learning-rate factor: linear warm-up, then poly decay (power 0.9) to zero at the end of training.

    The end is whichever comes first of the step budget and ``--max-minutes``, so a run cut
    short by its time limit on a busy machine still finishes its decay instead of stopping at
    a high learning rate. Without ``--max-minutes`` the schedule depends on the step only.
    """
    from jcs_viewer.train.runlog import poly_lr

    warmup = min(opts.warmup, total // 10)
    if step < warmup:
        return poly_lr(1.0, step, total, warmup=warmup)
    done = step / max(1, total)
    if opts.max_minutes:
        done = max(done, (time.monotonic() - start) / 60.0 / opts.max_minutes)
    return poly_lr(1.0, min(done, 1.0) * 1_000_000, 1_000_000)


class TrainingSteps:
    """The optimiser steps of a run: each epoch a fresh shuffle of ``n_items`` cut into batches of ``per_batch``
    indices, until the epochs, ``--max-steps`` or ``--max-minutes`` end the run; the learning rate of each step
    and a progress bar.

    Usage::

        steps = TrainingSteps(opts, len(images), opts.batch, gen, "train seg")
        for epoch in range(opts.epochs):
            for idx in steps.batches():
                lr = steps.set_lr(optim)
                ...
                steps.done(optimizer_step(optim, loss), lr)
    """

    def __init__(self, opts: TrainOptions, n_items: int, per_batch: int, gen: Any, label: str) -> None:
        from jcs_viewer.train.runlog import Progress

        self.opts, self.n_items, self.per_batch, self.gen = opts, n_items, per_batch, gen
        self.per_epoch = max(1, n_items // per_batch)
        self.total = opts.epochs * self.per_epoch
        if opts.max_steps is not None:
            self.total = min(self.total, opts.max_steps)
        self.progress = Progress(self.total, label)
        self.start, self.step = time.monotonic(), 0

    def batches(self) -> Iterator[Any]:
        """One epoch's batches of indices (a tensor each); stops early when the run is out of steps or time."""
        import torch

        order = torch.randperm(self.n_items, generator=self.gen)
        for b in range(self.per_epoch):
            if out_of_time(self.start, self.opts, self.step):
                return
            yield order[b * self.per_batch : (b + 1) * self.per_batch]

    def set_lr(self, optim) -> float:
        """Give ``optim`` this step's learning rate (:func:`schedule_factor` of ``--lr``); returns it."""
        lr = self.opts.lr * schedule_factor(self.opts, self.step, self.total, self.start)
        set_lr(optim, lr)
        return lr

    def done(self, loss: float, lr: float) -> None:
        """Count the step just taken and show it."""
        self.step += 1
        self.progress.update(loss=loss, lr=lr)

    @property
    def minutes(self) -> float:
        """Minutes since the first step, for the run log."""
        return round((time.monotonic() - self.start) / 60.0, 2)


def set_lr(optim, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optim.param_groups:
        group["lr"] = lr


def optimizer_step(optim, loss) -> float:
    """Backpropagate ``loss`` and step; returns its value."""
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return float(loss.detach())


def end_epoch(log: RunLog, model, optim, opts: TrainOptions, *, epoch: int, step: int, losses: list[float],
              metrics: dict[str, Any], score: float, best: float, start: float) -> float:
    """Keep ``best.safetensors`` when ``score`` beats ``best``, write ``last.pt`` and log the epoch.

    Returns:
        The best score so far.
    """
    import numpy as np

    from jcs_viewer.train.runlog import atomic_save_safetensors, atomic_torch_save

    out = Path(opts.out)
    improved = score > best
    if improved:
        best = score
        atomic_save_safetensors(model.state_dict(), out / "best.safetensors", {"arch": opts.arch})
    atomic_torch_save({"model": model.state_dict(), "optim": optim.state_dict(), "epoch": epoch, "step": step},
                      out / "last.pt")
    log.epoch(epoch=epoch, step=step, loss=float(np.mean(losses)), val=metrics, best=improved,
              minutes=round((time.monotonic() - start) / 60.0, 2))
    return best


class WeightAverage:
    """The equal-weight running mean of a model's parameters over epochs (stochastic weight averaging,
    Izmailov et al. 2018), which tends to sit in a flatter optimum than any one epoch's weights. Buffers
    (BatchNorm statistics) are the latest epoch's: they do not belong to the averaged weights, and ``finalize``
    re-estimates them."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.count = 0

    def update(self, model) -> None:
        params = {name for name, _ in model.named_parameters()}
        self.count += 1
        for k, v in model.state_dict().items():
            v = v.detach()
            if k not in params:
                self.state[k] = v.clone()
            elif self.count == 1:
                self.state[k] = v.float().clone()
            else:
                self.state[k] += (v.float() - self.state[k]) / self.count

    def save(self, path: Path, arch: str) -> None:
        from jcs_viewer.train.runlog import atomic_save_safetensors

        if self.count:
            atomic_save_safetensors(self.state, path, {"arch": arch, "epochs_averaged": str(self.count)})
