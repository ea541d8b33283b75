"""``jcs-viewer bench pipeline`` prints its figures (tiny study: wiring, not speed)."""

import json
from argparse import Namespace

from jcs_viewer.pipeline.bench import bench_pipeline, peak_rss_mb


def test_bench_prints_stage_medians_and_memory(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(tmp_path))  # no weights: random lite models
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert bench_pipeline(Namespace(slices=2, repeats=1, device="cpu", json=True)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["slices"] == 2 and report["repeats"] == 1
    assert {"lungs", "classify", "segment", "quantify", "total"} <= set(report["median_s"])
    assert report["end_to_end_s"] > 0 and report["peak_rss_mb"] >= peak_rss_mb() * 0.5 > 0
    assert "random" in report["note"]
