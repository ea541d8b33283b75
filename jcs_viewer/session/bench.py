"""Editing benchmark: time from a brush stroke to updated numbers, undo memory, autosave time.

Run ``python -m jcs_viewer.session.bench [--slices 300]`` (or ``jcs-viewer bench edit`` once
registered). Prints medians on a synthetic 512x512 study.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def ground_truth_result(volume, lung_mask, lesion_mask):
    """A StudyResult whose AI mask is the phantom's ground truth (no network needed)."""
    import numpy as np

    from jcs_viewer.pipeline.decision import patient_decision, slice_threshold
    from jcs_viewer.pipeline.quantify import quantify
    from jcs_viewer.pipeline.result import StudyResult

    n = volume.array.shape[0]
    positive = lesion_mask.reshape(n, -1).any(axis=1)
    threshold, rule = slice_threshold(n, volume.spacing[0])
    decision, count = patient_decision(positive, threshold)
    return StudyResult(
        n_slices=n, spacing=volume.spacing, origin=volume.origin, direction=volume.direction,
        slice_probability=positive.astype(np.float32), slice_cutoff=0.5, slice_positive=positive,
        positive_slices=count, threshold=threshold, threshold_rule=rule, decision=decision, cams=None,
        lesion_probability=None, lesion_mask=lesion_mask.astype(np.uint8), segmented_slices=positive.copy(),
        lung_mask=lung_mask, attributes=None, quant=quantify(volume, lung_mask, lesion_mask))


def realistic_strokes(n_slices: int, spacing, count: int = 100, seed: int = 1) -> list:
    """``count`` strokes as a reader makes them inside the lungs of a 512² chest slice.

    Drags of 30-150 mm (40 mouse moves) with brushes of 3-25 mm radius: per ten strokes, eight
    brush, one eraser and one 3-D ball brush (8-15 mm). Returns ``(kind, z, radius_mm, path)`` with
    ``path`` a list of ``(row, col)`` pixel positions.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    _, sy, sx = spacing
    strokes = []
    for i in range(count):
        kind = "3-D brush" if i % 10 == 9 else ("eraser" if i % 5 == 4 else "brush")
        radius_mm = float(rng.uniform(8, 15) if kind == "3-D brush" else rng.uniform(3, 25))
        length_mm = float(rng.uniform(30, 150))
        z = int(rng.integers(n_slices // 5, max(n_slices // 5 + 1, 4 * n_slices // 5)))
        y0, x0 = rng.uniform(150, 360), rng.uniform(90, 420)
        heading = rng.uniform(0, 2 * np.pi) + rng.uniform(-1.0, 1.0) * np.linspace(0.0, 1.0, 40)
        ys = np.clip(y0 + np.cumsum(np.sin(heading)) * length_mm / 40 / sy, 0, 511)
        xs = np.clip(x0 + np.cumsum(np.cos(heading)) * length_mm / 40 / sx, 0, 511)
        strokes.append((kind, z, radius_mm, list(zip(ys.tolist(), xs.tolist()))))
    return strokes


def paint_path(labels, kind: str, z: int, radius_mm: float, path, spacing) -> None:
    """Dab along ``path`` as the window's brush, eraser or 3-D brush does (inside an open stroke)."""
    from jcs_viewer.session.tools import ball_sections, brush_radius_px

    value = 0 if kind == "eraser" else 1
    sections = (ball_sections(z, radius_mm, spacing) if kind == "3-D brush"
                else [(z, brush_radius_px(radius_mm, spacing[1:]))])
    for cy, cx in path:
        for zz, radius_px in sections:
            labels.paint_disk(zz, (cy, cx), radius_px, value)


def bench_edit(args: argparse.Namespace) -> int:
    """Stroke-to-quantification latency, undo/redo latency, undo memory and session save time."""

    from jcs_viewer.io.phantom import make_phantom
    from jcs_viewer.session.store import save_session
    from jcs_viewer.session.study_session import StudySession

    n = int(getattr(args, "slices", 300))
    repeats = max(1, int(getattr(args, "repeats", 5)))
    phantom = make_phantom(n_slices=n, size=512)
    volume = phantom.to_volume()
    ai = ground_truth_result(volume, phantom.lung_mask, phantom.lesion_mask)
    t0 = time.perf_counter()
    session = StudySession(volume, ai, undo_depth=100)
    open_s = time.perf_counter() - t0
    stroke_ms, undo_ms = [], []
    for kind, z, radius_mm, path in realistic_strokes(n, volume.spacing):
        t = time.perf_counter()
        with session.labels.stroke(kind):
            paint_path(session.labels, kind, z, radius_mm, path, volume.spacing)
        stroke_ms.append((time.perf_counter() - t) * 1000)
    history = session.labels.history_nbytes
    stale = session.lesion_count_stale  # True: the 3-D count runs off the GUI thread after a pause
    for _ in range(repeats):
        t = time.perf_counter()
        session.labels.undo()
        undo_ms.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    job, revision = session.lesion_count_job()
    session.set_lesion_count(job(), revision)
    count_s = time.perf_counter() - t
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        save_session(session.snapshot(), Path(tmp) / "bench.jcssession")
    save_s = time.perf_counter() - t
    figures = {
        "study": f"{n}x512x512",
        "session_open_s": round(open_s, 3),
        "stroke_to_quant_ms_median": round(statistics.median(stroke_ms), 1),
        "stroke_to_quant_ms_max": round(max(stroke_ms), 1),
        "undo_ms_median": round(statistics.median(undo_ms), 1),
        "undo_history_100_strokes_kib": round(history / 1024, 1),
        "strokes": "100: 80 brush, 10 eraser, 10 3-D brush; 3-25 mm radius, 30-150 mm drags",
        "session_save_s": round(save_s, 3),
        "lesion_count_deferred": stale,
        "full_3d_lesion_count_s": round(count_s, 3),
    }
    if getattr(args, "json", False):
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:34s} {value}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    raise SystemExit(bench_edit(parser.parse_args()))
