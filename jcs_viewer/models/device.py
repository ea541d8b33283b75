"""Device selection and the inference context (CUDA: autocast fp16/bf16 and channels-last)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from jcs_viewer.errors import JCSError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU raises :class:`JCSError`."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise JCSError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto.")
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise JCSError(f"Unknown device {device!r}; expected auto, cpu or cuda.")


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``device``: bf16 where the GPU supports it, else fp16; None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def prepare_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move ``model`` to ``device`` in channels-last layout and eval mode."""
    device = resolve_device(device)
    return model.to(device=device, memory_format=torch.channels_last).eval()


def prepare_input(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Move an N x C x H x W float batch to ``device`` in channels-last layout."""
    device = resolve_device(device)
    return x.to(device=device, dtype=torch.float32, non_blocking=True).contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def inference_context(device: torch.device | str, amp: bool = True, grad: bool = False) -> Iterator[None]:
    """No-grad (inference mode) plus autocast on CUDA when ``amp``.

    Args:
        device: the model's device.
        amp: autocast to bf16/fp16 on CUDA (ignored on CPU, where fp32 is faster and exact).
        grad: keep autograd on (needed only for ``gradcam(method="autograd")``).
    """
    device = resolve_device(device)
    dtype = amp_dtype(device) if amp else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.enable_grad() if grad else torch.inference_mode())
        if dtype is not None:
            stack.enter_context(torch.autocast(device_type="cuda", dtype=dtype))
        yield
