"""Run bookkeeping: seeds, data hashes, JSON run log, progress bar, atomic writes."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from jcs_viewer.atomic import atomic_write_bytes


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU) RNGs."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def hash_files(paths: Iterable[Path], root: Path | None = None) -> str:
    """sha256 over the sorted file list (names relative to ``root``) and the file contents.

    Independent of git and of where the data folder lives, so that two machines
    with the same data get the same hash.
    """
    paths = sorted(Path(p) for p in paths)
    digest = hashlib.sha256()
    for path in paths:
        name = str(path.relative_to(root)) if root is not None else path.name
        digest.update(name.encode("utf-8") + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of one file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_json(path: Path, obj: Any) -> None:
    """Pretty JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file and ``os.replace``."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_safetensors(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Save a state dict as safetensors atomically (tensors made contiguous)."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    atomic_write_bytes(path, data)


class Progress:
    """A small progress bar on stderr: redraws in place on a terminal, prints a line every 10 % otherwise."""

    def __init__(self, total: int, label: str, stream=None) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.count = 0
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, n: int = 1, **info: float) -> None:
        """Advance by ``n`` steps; ``info`` values (loss, lr) are shown after the bar."""
        self.count += n
        now = time.monotonic()
        elapsed = now - self.start
        eta = elapsed / self.count * (self.total - self.count)
        extra = " ".join(f"{k}={v:.4g}" for k, v in info.items())
        frac = self.count / self.total
        if self.tty:
            if now - self._last_draw < 0.2 and self.count < self.total:
                return
            bar = "#" * int(frac * 30)
            self.stream.write(
                f"\r{self.label} [{bar:<30}] {self.count}/{self.total} {elapsed:.0f}s<{eta:.0f}s {extra}   "
            )
            if self.count >= self.total:
                self.stream.write("\n")
        else:
            decile = int(frac * 10)
            if decile == self._last_decile and self.count < self.total:
                return
            self._last_decile = decile
            self.stream.write(
                f"{self.label} {self.count}/{self.total} ({frac:4.0%}) {elapsed:.0f}s eta {eta:.0f}s {extra}\n"
            )
        self._last_draw = now
        self.stream.flush()


def poly_lr(base_lr: float, step: int, total: int, power: float = 0.9, warmup: int = 0) -> float:
    """Poly decay ``base·(1 − step/total)^power`` after a linear warm-up from 0.1·base."""
    if warmup and step < warmup:
        return base_lr * (0.1 + 0.9 * step / warmup)
    return base_lr * max(0.0, 1.0 - step / max(1, total)) ** power
