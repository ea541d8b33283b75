"""Batched inference with cancellation, progress and out-of-memory recovery.

On a CUDA out-of-memory error the batch is halved and retried, down to one slice; if one
slice still does not fit, the models move to the CPU (fp32) and the stage goes on there.
Each step writes into arrays the runner owns, so a cancelled run leaves nothing behind.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any

from jcs_viewer.errors import JCSError
from jcs_viewer.pipeline.progress import CancelToken, ProgressEvent

ProgressCallback = Callable[[ProgressEvent], None]


class InferenceEngine:
    """Holds the current device/precision and the models it may have to move.

    Args:
        device: the torch device to start on.
        amp: autocast on CUDA.
        modules: the models to move on a CPU fallback.
        messages: list the engine appends user-facing sentences to (the result's ``messages``).
        progress: optional progress callback.
        cancel: optional cancel token.
    """

    def __init__(self, device: Any, amp: bool, modules: Sequence[Any], messages: list[str],
                 progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        self.device = device
        self.amp = amp
        self.modules = [m for m in modules if m is not None]
        self.messages = messages
        self.progress = progress
        self.cancel = cancel
        self.fell_back = False

    def check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    def report(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(stage, done, total, message))

    def fallback_to_cpu(self, stage: str) -> None:
        """Move every model to the CPU in fp32 (after an OOM with a batch of one)."""
        import torch

        from jcs_viewer.models import prepare_model

        cpu = torch.device("cpu")
        for module in self.modules:
            prepare_model(module, cpu)
        self.device, self.amp, self.fell_back = cpu, False, True
        _free_cuda()
        message = (f"The GPU ran out of memory during '{stage}' even one slice at a time; "
                   "the analysis continued on the CPU.")
        self.messages.append(message)
        self.report(stage, 0, 0, message)

    def run(self, stage: str, indices: Sequence[int], batch_size: int,
            step: Callable[[list[int]], None], cpu_batch_size: int | None = None) -> None:
        """Call ``step(batch_of_indices)`` over ``indices``, reporting progress after each batch.

        Args:
            stage: progress stage name.
            indices: slice indices to process, in order.
            batch_size: initial batch size.
            step: does the work for one batch on ``self.device`` (reads it at each call).
            cpu_batch_size: batch size to use after a CPU fallback (default: unchanged).
        """
        import torch

        total = len(indices)
        done = 0
        batch = max(1, int(batch_size))
        self.report(stage, 0, total)
        while done < total:
            self.check_cancel()
            chunk = list(indices[done : done + batch])
            oom = False
            try:
                step(chunk)
            except torch.cuda.OutOfMemoryError:
                oom = True  # handled below, once the traceback no longer pins the batch's tensors
            if oom:
                _free_cuda()
                if batch > 1:
                    new = max(1, batch // 2)
                    message = f"GPU memory: '{stage}' batch reduced from {batch} to {new} slices."
                    self.messages.append(message)
                    self.report(stage, done, total, message)
                    batch = new
                    continue
                if self.fell_back:
                    raise JCSError(f"Out of memory during '{stage}' even on the CPU with one slice at a time.")
                self.fallback_to_cpu(stage)
                batch = max(1, cpu_batch_size or batch)
                continue
            done += len(chunk)
            self.report(stage, done, total)
        self.check_cancel()


def _free_cuda() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
