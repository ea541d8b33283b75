"""``jcs-viewer bench WHAT``: benchmarks that print figures (medians of several runs)."""

from __future__ import annotations

import argparse
import importlib

HELP = "measure speed and memory: load, models, pipeline, gui, view3d, edit, batch"

# name -> "module:function"; each function takes the parsed args and prints its figures.
BENCHMARKS = {
    "load": "jcs_viewer.io.bench:bench_load",
    "models": "jcs_viewer.models.bench:bench_models",
    "pipeline": "jcs_viewer.pipeline.bench:bench_pipeline",
    "gui": "jcs_viewer.gui.bench:bench_gui",
    "view3d": "jcs_viewer.gui.bench:bench_view3d",
    "edit": "jcs_viewer.session.bench:bench_edit",
    "batch": "jcs_viewer.batch.bench:bench_batch",
}
#: --slices where a benchmark's own default is not 300 (the batch runs several small studies)
DEFAULT_SLICES = {"batch": 8}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=sorted(BENCHMARKS), help="what to measure")
    parser.add_argument("--slices", type=int, help="slices in the generated study (default 300; batch: 8 a study)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure; the median is reported")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="inference device")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.slices is None:
        args.slices = DEFAULT_SLICES.get(args.what, 300)
    module_name, func_name = BENCHMARKS[args.what].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(args) or 0)
