"""``jcs-viewer bench batch``: studies per minute of the batch engine, measured for 1 and 2 workers and modelled
beyond.

Four copies of the demo study (``--slices`` slices, 8 by default) are listed as one batch. Each setting runs it
``--repeats`` times after one warm-up run (worker processes start, import torch and load the models once);
the figure is the median over the timed runs, from the call to the summary written (the driver's model check,
fingerprints and summary included, a local Ray runtime's start not). Settings: in this process without Ray
(``--workers 1``), and a local Ray runtime with 1 and 2 workers.

Beyond two workers the figure is modelled with Amdahl's law: the speed-up measured from 1 to 2 Ray workers
gives the parallel fraction p = 2 (1 - 1/S2), and n workers run ``rate1 / ((1 - p) + p / n)`` studies a minute;
where the second worker had no free core (a small or busy machine) p is low and the model pessimistic, so the
linear bound ``n * rate1`` (a core per worker, nothing shared) is printed beside it. A cluster adds its network
file system and scheduling on top.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

STUDIES = 4
MODELLED_WORKERS = (4, 8, 16, 32, 64)


def _rates(items, config, repeats: int) -> tuple[float, list[float]]:
    """(cold studies/min of the first run, warm studies/min of each later run); a fresh output folder each."""
    from jcs_viewer.batch.engine import run_batch

    rates = []
    for run in range(repeats + 1):
        config.out = config.out.with_name(f"out-{time.monotonic_ns()}-{run}")
        start = time.perf_counter()
        outcome = run_batch(items, config)
        seconds = time.perf_counter() - start
        if any(row["status"] != "ok" for row in outcome.rows):
            raise RuntimeError(f"a bench study failed: {outcome.rows}")
        rates.append(60.0 * len(items) / seconds)
        shutil.rmtree(config.out, ignore_errors=True)
    return rates[0], rates[1:]


def amdahl(rate1: float, rate2: float) -> tuple[float, dict[int, float]]:
    """The parallel fraction from the 1 -> 2 worker speed-up, and the modelled studies/min at more workers."""
    p = min(1.0, max(0.0, 2.0 * (1.0 - rate1 / rate2))) if rate2 > 0 else 0.0
    return p, {n: rate1 / ((1.0 - p) + p / n) for n in MODELLED_WORKERS}


def bench_batch(args: argparse.Namespace) -> int:
    from jcs_viewer.batch.engine import BatchConfig, import_ray, ray_runtime
    from jcs_viewer.batch.fingerprint import make_items
    from jcs_viewer.io.phantom import write_demo_study
    from jcs_viewer.pipeline import AnalysisOptions

    repeats = max(1, args.repeats)
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="jcs-bench-batch-") as tmp:
        root = Path(tmp)
        demo = write_demo_study(root / "demo", n_slices=args.slices) / "dicom"
        paths = [shutil.copytree(demo, root / f"study{i}") for i in range(STUDIES)]
        items = make_items(paths, root)
        options = AnalysisOptions(device=args.device)
        settings, ray = [("in-process (no Ray)", 1, False)], None
        try:
            ray = import_ray()
            settings += [("Ray, 1 worker", 1, True), ("Ray, 2 workers", 2, True)]
        except Exception as exc:  # noqa: BLE001 - the in-process figure still stands
            print(f"note: {exc}")
        for name, workers, use_ray in settings:
            config = BatchConfig(out=root / "out", options=options, workers=workers, ray=use_ray)
            with ray_runtime(ray, config) if use_ray else contextlib.nullcontext():
                cold, warm = _rates(items, config, repeats)
            figures[name] = {"workers": workers, "median_per_min": statistics.median(warm), "best_per_min":
                             max(warm), "cold_per_min": cold}
    report = {"studies": STUDIES, "slices": args.slices, "device": args.device, "repeats": repeats,
              "cpus": os.cpu_count(), "load_average": [round(v, 1) for v in os.getloadavg()], "settings": figures}
    if "Ray, 2 workers" in figures:
        p, modelled = amdahl(figures["Ray, 1 worker"]["median_per_min"], figures["Ray, 2 workers"]["median_per_min"])
        report["parallel_fraction"] = p
        report["modelled_per_min"] = modelled
        # the other bound: every worker on a core of its own, nothing shared
        report["linear_per_min"] = {n: n * figures["Ray, 1 worker"]["median_per_min"] for n in MODELLED_WORKERS}
    if getattr(args, "json", False):
        print(json.dumps(report))
        return 0
    print(f"batch benchmark: {STUDIES} demo studies of {args.slices} slices, device {args.device}, "
          f"median of {repeats} runs after a warm-up; {report['cpus']} CPUs, load average after "
          f"{report['load_average'][1]} (other processes share these cores)")
    print(f"{'setting':<22}{'studies/min':>12}{'best':>8}{'cold':>8}")
    for name, f in figures.items():
        print(f"{name:<22}{f['median_per_min']:>12.1f}{f['best_per_min']:>8.1f}{f['cold_per_min']:>8.1f}")
    if "modelled_per_min" in report:
        print(f"Amdahl from 1 -> 2 Ray workers: parallel fraction p = {report['parallel_fraction']:.2f}; modelled "
              "studies/min (one core per worker): "
              + ", ".join(f"{n} workers {r:.0f}" for n, r in report["modelled_per_min"].items()))
        print("Linear bound (a free core per worker, nothing shared): "
              + ", ".join(f"{n} workers {r:.0f}" for n, r in report["linear_per_min"].items()))
    return 0
