"""StudyResult: summary keys, save/load round trip, damaged folders."""

import json

import numpy as np
import pytest

from jcs_viewer.errors import StudyLoadError
from jcs_viewer.pipeline import AnalysisOptions, StudyResult, analyze
from test_pipeline_support import small_phantom, tiny_models


@pytest.fixture(scope="module")
def result():
    vol = small_phantom(6, 96, seed=4).to_volume()
    return analyze(vol, AnalysisOptions(device="cpu", segment_all_slices=True),
                   models=tiny_models(cls_overrides={"attributes": True}))


def test_round_trip_gives_an_equal_object(result, tmp_path):
    result.save(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["arrays.npz", "results.json"]
    loaded = StudyResult.load(tmp_path / "out")
    assert loaded == result
    assert loaded.quant == result.quant
    assert loaded.attributes.dtype == np.float32 and loaded.cams.dtype == np.uint8
    # Equality is real: a changed voxel is noticed.
    loaded.lesion_mask = loaded.lesion_mask.copy()
    loaded.lesion_mask[0, 0, 0] ^= 1
    assert loaded != result


def test_summary_has_the_documented_keys(result, tmp_path):
    result.save(tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    for key in ("decision", "positive_slices", "threshold", "lesion_volume_ml", "lung_volume_ml",
                "involvement_percent", "per_slice", "timings", "schema_version", "app_version", "models",
                "threshold_rule", "options"):
        assert key in doc, key
    assert doc["decision"] in ("positive", "negative")
    assert set(doc["involvement_percent"]) == {"left", "right", "total"}
    assert len(doc["per_slice"]) == result.n_slices
    row = doc["per_slice"][0]
    assert {"index", "position_mm", "probability", "positive", "lesion_area_mm2", "lesion_count",
            "ground_glass_opacity"} <= set(row)
    assert doc["lung_volume_ml"]["total"] == pytest.approx(result.quant.lung_volume_ml["total"])


def test_damaged_or_missing_results_raise_one_sentence(result, tmp_path):
    with pytest.raises(StudyLoadError, match="missing"):
        StudyResult.load(tmp_path)
    result.save(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(StudyLoadError, match="damaged"):
        StudyResult.load(tmp_path)
    result.save(tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    doc["schema_version"] = 99
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(StudyLoadError, match="newer"):
        StudyResult.load(tmp_path)
