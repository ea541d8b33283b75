"""``jcs-viewer bench models``: slices/s of the lite networks (and the full ones on CUDA).

Figures: lite segmentation at 256² and lite classification + Grad-CAM at 224², batch 16, channels-last,
``torch.inference_mode``, batch norm folded as :func:`jcs_viewer.models.load` does, median of
``--repeats`` runs over ``--slices`` slices (``*_best``: the fastest run, which shows the capacity when
other processes share the cores; ``load_avg_1min`` says how busy the machine was). Weights are random:
speed does not depend on them.
The full official models (joint at 512², classifier + Grad-CAM at 224²) are measured on CUDA, or on
CPU when ``JCS_BENCH_FULL=1`` is set (slow), with fp32 and AMP and their largest probability gap.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable

BATCH = 16


def bench_models(args: argparse.Namespace) -> int:
    """Measure and print the figures; returns 0."""
    import torch

    from jcs_viewer.models.device import resolve_device

    device = resolve_device(getattr(args, "device", "auto"))
    repeats = max(1, int(getattr(args, "repeats", 5)))
    slices = max(1, int(getattr(args, "slices", 300)))
    results: dict[str, object] = {"device": str(device), "threads": torch.get_num_threads(), "batch": BATCH,
                                  "slices_per_run": slices, "repeats": repeats,
                                  "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    torch.manual_seed(0)
    results.update(_bench_lite(device, slices, repeats))
    if device.type == "cuda" or os.environ.get("JCS_BENCH_FULL") == "1":
        results.update(_bench_full(device, slices, repeats))
    if getattr(args, "json", False):
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:40s} {value}")
    return 0


def _timed(run_batch: Callable[[int], None], slices: int, repeats: int, device) -> tuple[float, float]:
    """(median, best) slices/s of ``repeats`` runs, each over ``slices`` slices in batches of ``BATCH``."""
    import torch

    run_batch(0)  # warm-up: oneDNN/cuDNN choose and cache their kernels here
    batches = math.ceil(slices / BATCH)
    rates = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(batches):
            run_batch(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(batches * BATCH / (time.perf_counter() - t0))
    return round(statistics.median(rates), 1), round(max(rates), 1)


def _bench_lite(device, slices: int, repeats: int) -> dict[str, object]:
    import torch

    from jcs_viewer.models.device import inference_context, prepare_input, prepare_model
    from jcs_viewer.models.factory import build
    from jcs_viewer.models.gradcam import gradcam
    from jcs_viewer.models.inference import fold_batchnorm

    out: dict[str, object] = {}
    seg = build("jcs_seg_lite")
    cls = build("jcs_cls_lite", attributes=True)
    out["lite_seg_params"] = sum(p.numel() for p in seg.parameters())
    out["lite_cls_params"] = sum(p.numel() for p in cls.parameters())
    seg = prepare_model(fold_batchnorm(seg), device)
    cls = prepare_model(fold_batchnorm(cls), device)
    xs = prepare_input(torch.randn(BATCH, 3, 256, 256), device)
    xc = prepare_input(torch.randn(BATCH, 3, 224, 224), device)

    def run_seg(_: int) -> None:
        with inference_context(device):
            seg(xs)[:, 0].float().cpu()

    def run_cls(_: int) -> None:
        with inference_context(device):
            probs, cams = gradcam(cls, xc)
            probs.cpu(), cams.cpu()

    for key, fn in (("lite_seg_256", run_seg), ("lite_cls_gradcam_224", run_cls)):
        out[f"{key}_slices_per_s"], out[f"{key}_slices_per_s_best"] = _timed(fn, slices, repeats, device)
    return out


def _bench_full(device, slices: int, repeats: int) -> dict[str, object]:
    import torch

    from jcs_viewer.models.device import inference_context, prepare_input, prepare_model
    from jcs_viewer.models.factory import build
    from jcs_viewer.models.gradcam import gradcam

    from jcs_viewer.models.inference import fold_batchnorm
    from jcs_viewer.models.registry import list_weights, load

    out: dict[str, object] = {}
    models = {}
    for arch in ("jcs_joint", "jcs_cls"):
        # Real official weights when the user has them (meaningful fp32-vs-AMP gaps), else random ones.
        entry = next((e for e in list_weights() if e.arch == arch), None)
        if entry is not None:
            models[arch] = prepare_model(load(entry.name, device)[0], device)
        else:
            models[arch] = prepare_model(fold_batchnorm(build(arch)), device)
        out[f"full_{arch}_weights"] = entry.name if entry is not None else "random"
    joint, cls = models["jcs_joint"], models["jcs_cls"]
    xj = prepare_input(torch.randn(BATCH, 3, 512, 512), device)
    xc = prepare_input(torch.randn(BATCH, 3, 224, 224), device)
    for amp in (False, True):
        tag = "amp" if amp else "fp32"

        def run_joint(_: int, amp: bool = amp) -> None:
            with inference_context(device, amp=amp):
                joint(xj)[:, 0].float().cpu()

        def run_cls(_: int, amp: bool = amp) -> None:
            with inference_context(device, amp=amp):
                p, c = gradcam(cls, xc)
                p.cpu(), c.cpu()

        out[f"full_joint_512_{tag}_slices_per_s"] = _timed(run_joint, slices, repeats, device)[0]
        out[f"full_cls_gradcam_224_{tag}_slices_per_s"] = _timed(run_cls, slices, repeats, device)[0]
    with inference_context(device, amp=False):
        pj32, (pc32, cam32) = joint(xj[:4]).float(), gradcam(cls, xc)
    with inference_context(device, amp=True):
        pj16, (pc16, cam16) = joint(xj[:4]).float(), gradcam(cls, xc)
    out["full_joint_amp_max_prob_diff"] = float((pj32 - pj16).abs().max())
    out["full_cls_amp_max_prob_diff"] = float((pc32 - pc16).abs().max())
    out["full_cls_amp_max_cam_diff"] = float((cam32 - cam16).abs().max())
    return out
