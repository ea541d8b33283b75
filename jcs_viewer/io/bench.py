"""``jcs-viewer bench load``: time and memory of :func:`load_study` beside a raw pydicom read.

A synthetic uncompressed CT series (``--slices`` files of 512x512 int16) is written to a
temporary folder. Each method then runs in its own fresh Python process, ``--repeats``
times; we report the median wall time and the peak memory: the process's peak resident
set size (``ru_maxrss``) minus its resident size after imports and a one-file warm-up. RSS sees every
byte (numpy buffers and pydicom's bytes alike), which ``tracemalloc`` does not for memory allocated outside
Python's allocator hooks.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 0.6
TARGET_RATIO = 1.2
METHODS = ("load_study", "raw_pydicom")


def write_synthetic_series(folder: Path, n_slices: int, size: int = 512) -> list[Path]:
    """Write an axial CT series (explicit VR little endian, signed 16-bit, intercept -1024).

    Files are named in reverse anatomical order so that a loader sorting by name would be wrong.
    """
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    base = np.where(radius < size * 0.45, 40, -1000).astype(np.int16)
    base[(radius < size * 0.3) & (np.abs(xx - size / 2) > size * 0.05)] = -850  # lungs either side
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    files = []
    for i in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.Modality = "Bench^Synthetic", "BENCH", "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.ImagePositionPatient = [-180.0, -180.0, -300.0 + i * 1.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        pixels = base.copy()
        pixels[i % size, :] = 300  # a per-slice line, so slices differ
        ds.PixelData = (pixels + 1024).astype(np.int16).tobytes()
        path = folder / f"IM{n_slices - i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def _raw_read(folder: Path):
    """The naive baseline: read every file fully, sort by z, stack ``pixel_array``."""
    import numpy as np
    import pydicom

    datasets = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array for ds in datasets])


def _current_rss_kb() -> int:
    """Resident set size now (Linux /proc); else the peak so far, which can only under-report growth."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(method: str, folder: Path, repeats: int) -> dict:
    """Run one method ``repeats`` times in this (fresh) process; times and peak RSS growth."""
    import gc

    from jcs_viewer.io import load_study

    first = sorted(folder.iterdir())[0]
    if method == "load_study":
        run = lambda: load_study(folder)  # noqa: E731
        load_study(first)  # warm-up: lazy imports, one file
    else:
        run = lambda: _raw_read(folder)  # noqa: E731
        import pydicom

        pydicom.dcmread(first).pixel_array  # noqa: B018 - warm-up of the decoder plugins
    gc.collect()
    baseline_kb = _current_rss_kb()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        shape = list(result.array.shape if hasattr(result, "array") else result.shape)
        del result
        gc.collect()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"runs_s": times, "peak_mib": (peak_kb - baseline_kb) / 1024.0, "shape": shape}


def _measure(method: str, folder: Path, repeats: int) -> dict:
    cmd = [sys.executable, "-m", "jcs_viewer.io.bench", "--child", method, str(folder), str(repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child for {method} failed:\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["median_s"] = statistics.median(figures["runs_s"])
    return figures


def bench_load(args: argparse.Namespace) -> int:
    """Print median load time and peak memory of ``load_study`` vs a raw pydicom read."""
    n_slices = int(getattr(args, "slices", 300))
    repeats = max(1, int(getattr(args, "repeats", 5)))
    size = int(getattr(args, "size", 512))
    with tempfile.TemporaryDirectory(prefix="jcs-bench-load-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_synthetic_series(folder, n_slices, size)
        write_s = time.perf_counter() - start
        figures = {m: _measure(m, folder, repeats) for m in METHODS}
    ours, raw = figures["load_study"], figures["raw_pydicom"]
    volume_mib = n_slices * size * size * 2 / 2**20
    report = {
        "benchmark": "load",
        "slices": n_slices,
        "size": size,
        "repeats": repeats,
        "volume_mib": round(volume_mib, 1),
        "write_s": round(write_s, 2),
        "memory_method": "peak RSS (ru_maxrss) minus RSS after imports + warm-up, fresh child process per method",
        "load_study": _figures(ours),
        "raw_pydicom": _figures(raw),
        "time_ratio": round(ours["median_s"] / raw["median_s"], 3),
        "memory_ratio": round(ours["peak_mib"] / raw["peak_mib"], 3) if raw["peak_mib"] > 0 else None,
        "target": {"max_s": TARGET_SECONDS, "max_ratio": TARGET_RATIO},
    }
    report["target"]["met"] = (
        ours["median_s"] <= TARGET_SECONDS and ours["median_s"] <= TARGET_RATIO * raw["median_s"]
    )
    if getattr(args, "json", False):
        print(json.dumps(report))
        return 0
    print(f"load benchmark: {n_slices} slices of {size}x{size} int16 ({volume_mib:.0f} MiB), "
          f"median of {repeats} runs, each method in a fresh process")
    print(f"{'method':<14}{'median s':>10}{'best s':>10}{'peak MiB':>10}")
    for name in METHODS:
        figures = report[name]
        print(f"{name:<14}{figures['median_s']:>10.3f}{figures['min_s']:>10.3f}{figures['peak_mib']:>10.1f}")
    met = "met" if report["target"]["met"] else "NOT met"
    print(f"time ratio {report['time_ratio']:.2f}x raw, memory ratio {report['memory_ratio']}x raw; "
          f"target <= {TARGET_SECONDS} s and <= {TARGET_RATIO}x raw: {met}")
    print(f"(memory = {report['memory_method']})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
    else:
        sys.exit("usage: python -m jcs_viewer.io.bench --child METHOD FOLDER REPEATS (use `jcs-viewer bench load`)")


def _figures(run: dict) -> dict:
    """Median, minimum and peak memory of one method's runs, rounded for the report."""
    return {"median_s": round(run["median_s"], 4), "min_s": round(min(run["runs_s"]), 4),
            "peak_mib": round(run["peak_mib"], 1), "runs_s": [round(t, 4) for t in run["runs_s"]]}
