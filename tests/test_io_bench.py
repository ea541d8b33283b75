"""``jcs-viewer bench load`` runs end to end on a tiny series and prints one JSON object."""

from __future__ import annotations

import json

import numpy as np

from jcs_viewer.cli import main
from jcs_viewer.io import load_study
from jcs_viewer.io.bench import write_synthetic_series


def test_synthetic_series_loads_in_anatomical_order(tmp_path):
    files = write_synthetic_series(tmp_path, 4, size=32)
    vol = load_study(tmp_path)
    assert vol.shape == (4, 32, 32) and vol.spacing[0] == 1.0
    assert list(vol.source_files) == files  # written in order of increasing z
    assert [int(np.argmax(vol.array[z].max(axis=1) == 300)) for z in range(4)] == [0, 1, 2, 3]


def test_bench_load_json(capsys):
    assert main(["bench", "load", "--slices", "6", "--repeats", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip())
    assert report["slices"] == 6 and report["repeats"] == 2
    for method in ("load_study", "raw_pydicom"):
        figures = report[method]
        assert len(figures["runs_s"]) == 2 and figures["median_s"] > 0
        assert figures["peak_mib"] >= 0
    assert report["time_ratio"] > 0 and isinstance(report["target"]["met"], bool)
