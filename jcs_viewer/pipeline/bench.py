"""``jcs-viewer bench pipeline``: end-to-end pipeline speed and peak memory on a phantom."""

from __future__ import annotations

import dataclasses
import json
import resource
import statistics
import sys
import time
from typing import Any

from jcs_viewer.vocabulary import LUNG_WINDOW


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM, else getrusage)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_pipeline(args: Any) -> int:
    """Generate a ``--slices`` x 512^2 phantom, analyse it ``--repeats`` times, print medians.

    Uses the installed default weights; without any, random-initialised lite models with the
    lite input sizes (the timing is the same, the decisions are meaningless), said in the output.
    """
    from jcs_viewer.errors import ModelLoadError
    from jcs_viewer.io.phantom import make_phantom
    from jcs_viewer.models import resolve_device
    from jcs_viewer.pipeline import AnalysisOptions, analyze
    from jcs_viewer.pipeline.runner import load_models

    slices = int(getattr(args, "slices", 300))
    repeats = max(1, int(getattr(args, "repeats", 5)))
    options = AnalysisOptions(device=getattr(args, "device", "auto"))
    device = resolve_device(options.device)
    t0 = time.perf_counter()
    volume = make_phantom(slices, 512, seed=0).to_volume()
    t_phantom = time.perf_counter() - t0
    note = ""
    try:
        models = load_models(options, device)
    except ModelLoadError:
        models = _random_lite_models()
        note = "no weights installed: random-initialised lite models (256^2 seg, 224^2 cls)"
    runs: list[dict[str, float]] = []
    hu_only: list[float] = []
    cpu_times: list[float] = []
    hu_options = AnalysisOptions(device=options.device, learned_lungs=False)
    hu_models = dataclasses.replace(models, lung_model=None, lung_entry=None, grey_lung_model=None,
                                    grey_lung_entry=None)
    for _ in range(repeats):
        c0 = time.process_time()
        result = analyze(volume, options, models=models)
        cpu_times.append(time.process_time() - c0)
        runs.append(dict(result.timings))
        if models.lung_model is not None:  # side by side: the same run with the HU lungs alone
            hu_only.append(analyze(volume, hu_options, models=hu_models).timings["total"])
    stages = list(runs[0])
    medians = {stage: statistics.median(r[stage] for r in runs) for stage in stages}
    report = {
        "slices": slices,
        "size": 512,
        "device": str(device),
        "repeats": repeats,
        "models": {k: v["name"] for k, v in result.models.items()},
        "segmented_slices": int(result.segmented_slices.sum()),
        "median_s": {k: round(v, 3) for k, v in medians.items()},
        "end_to_end_s": round(medians.get("total", 0.0), 3),
        # CPU seconds of this process (all threads): on a shared machine, wall time / cpu time shows contention.
        "process_cpu_s": round(statistics.median(cpu_times), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "phantom_s": round(t_phantom, 2),
        "hu_lungs_only_end_to_end_s": round(statistics.median(hu_only), 3) if hu_only else None,
        "note": note,
    }
    if getattr(args, "json", False):
        print(json.dumps(report))
        return 0
    out = sys.stdout
    print(f"pipeline on {slices} x 512^2 phantom, device {device}, median of {repeats} run(s)", file=out)
    print(f"models: {report['models']}; segmented slices: {report['segmented_slices']}", file=out)
    for stage, value in medians.items():
        print(f"  {stage:<12} {value:8.3f} s", file=out)
    print(f"end-to-end median {report['end_to_end_s']:.3f} s (process CPU time {report['process_cpu_s']:.1f} s); "
          f"peak RSS {report['peak_rss_mb']:.0f} MB", file=out)
    if hu_only:
        ratio = report["end_to_end_s"] / max(report["hu_lungs_only_end_to_end_s"], 1e-9)
        print(f"the same with HU lungs only (no lung net): {report['hu_lungs_only_end_to_end_s']:.3f} s; "
              f"learned lungs cost {ratio:.2f}x", file=out)
    if note:
        print(f"note: {note}", file=out)
    return 0


def _random_lite_models():
    import torch

    from jcs_viewer.models import WeightsEntry, build
    from jcs_viewer.models.inference import fold_batchnorm
    from jcs_viewer.pipeline.runner import LoadedModels

    torch.manual_seed(0)
    cls = fold_batchnorm(build("jcs_cls_lite"))
    seg = fold_batchnorm(build("jcs_seg_lite"))
    common = dict(file="", window=LUNG_WINDOW)
    return LoadedModels(
        cls, WeightsEntry(name="random:jcs_cls_lite", task="cls", arch="jcs_cls_lite", input_size=224, **common),
        seg, WeightsEntry(name="random:jcs_seg_lite", task="seg", arch="jcs_seg_lite", input_size=256, **common),
    )
