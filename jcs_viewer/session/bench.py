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


def bench_edit(args: argparse.Namespace) -> int:
    """Stroke-to-quantification latency, undo/redo latency, undo memory and session save time."""
    import numpy as np

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
    radius = 10.0 / volume.spacing[1]  # a 10 mm brush
    stroke_ms, undo_ms = [], []
    for i in range(100):  # 100 strokes, each a 20-dab drag on its own slice inside the lungs
        z = (n // 2 - 50 + i) % n
        t = time.perf_counter()
        with session.labels.stroke("brush"):
            for step in range(20):
                session.labels.paint_disk(z, (200 + 3 * step, 130 + 2 * step), radius, 1)
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
