"""The staged runner with real (tiny, random-initialised) JCS networks on a small phantom."""

import numpy as np
import pytest
import torch
from torch import nn

from jcs_viewer.errors import Cancelled
from jcs_viewer.pipeline import STAGES, AnalysisOptions, CancelToken, LoadedModels, StudyResult, analyze
from test_pipeline_support import small_phantom, tiny_models

OPTS = dict(device="cpu", batch_size=4, segment_all_slices=True)


@pytest.fixture(scope="module")
def volume():
    return small_phantom(8, 96, seed=2).to_volume()


@pytest.fixture(scope="module")
def baseline(volume):
    events = []
    result = analyze(volume, AnalysisOptions(**OPTS), progress=events.append, models=tiny_models())
    return result, events


def test_result_is_complete(volume, baseline):
    result, events = baseline
    n, h, w = volume.shape
    assert isinstance(result, StudyResult)
    assert result.slice_probability.shape == (n,) and result.slice_probability.dtype == np.float32
    assert ((result.slice_probability >= 0) & (result.slice_probability <= 1)).all()
    assert result.cams.shape == (n, 64, 64) and result.cams.dtype == np.uint8
    assert result.lesion_probability.shape == (n, h, w) and result.lesion_probability.dtype == np.uint8
    assert result.lesion_mask.dtype == np.uint8 and set(np.unique(result.lesion_mask)) <= {0, 1}
    # Every slice with lung is segmented (the first, below the lung bases, has none: no score either).
    assert np.array_equal(result.segmented_slices, result.scored_slices) and not result.scored_slices[0]
    assert result.slice_probability[0] == 0 and not result.slice_positive[0]
    # The binary mask is the thresholded probability restricted to (dilated) lungs.
    assert not (result.lesion_mask.astype(bool) & (result.lesion_probability < 128)).any()
    assert set(np.unique(result.lung_mask)) == {0, 1, 2}
    assert result.decision in ("positive", "negative")
    assert result.positive_slices == int(result.slice_positive.sum())
    assert result.models["cls"]["name"] == "test-cls" and result.models["seg"]["arch"] == "jcs_seg_lite"
    assert set(STAGES) <= set(result.timings) and result.timings["total"] > 0
    assert [e.stage for e in events if e.done == e.total and e.total] == list(STAGES)
    classify = [e.done for e in events if e.stage == "classify"]
    assert classify == [0, 4, 7]  # the 7 slices with lung, in batches of 4


def test_classifier_score_segments_only_its_positive_slices(volume):
    """The paper's flow: the classifier alone flags slices and only those are segmented."""
    models = tiny_models()
    paper = dict(device="cpu", slice_score="classifier")
    first = analyze(volume, AnalysisOptions(**paper, slice_cutoff=1.0), models=models)
    assert not first.segmented_slices.any() and not first.lesion_mask.any()
    assert first.lesion_evidence is None and np.array_equal(first.slice_probability, first.classifier_probability)
    every = analyze(volume, AnalysisOptions(**paper, slice_cutoff=0.0, threshold=3), models=models)
    # Every slice with lung (all but the first, below the lung bases) is flagged and segmented.
    assert np.array_equal(every.segmented_slices, every.scored_slices) and every.scored_slices[1:].all()
    assert every.decision == "positive" and every.threshold == 3
    assert "set by the user" in every.threshold_rule and "classifier's COVID probability" in every.slice_rule


def test_joint_score_averages_the_classifier_and_the_lesion_evidence(volume):
    from jcs_viewer.pipeline.slice_score import evidence_window_mm, lesion_evidence

    result = analyze(volume, AnalysisOptions(device="cpu"), models=tiny_models())
    assert result.slice_score == "joint" and np.array_equal(result.segmented_slices, result.scored_slices)
    np.testing.assert_allclose(result.slice_probability,
                               (result.classifier_probability + result.lesion_evidence) / 2, rtol=1e-6)
    assert np.array_equal(result.slice_positive, result.slice_probability >= result.slice_cutoff)
    # The evidence is recomputable from the stored lesion probability and the lungs.
    from jcs_viewer.pipeline.lungs import restrict_region

    region = restrict_region(result.lung_mask, volume.spacing, 5.0)
    # 40 mm slices and no SliceThickness: the square is 16 mm (the widest)
    again = lesion_evidence(result.lesion_probability, region, volume.spacing[1:], evidence_window_mm(40.0))
    # include_lesions may grow the stored lung mask, so the recomputed evidence can only be larger.
    assert (again >= result.lesion_evidence - 1e-6).all()
    assert "segmenter's lesion evidence" in result.slice_rule and "16 mm square" in result.slice_rule


def test_the_evidence_square_follows_the_slice_thickness_not_the_gap_between_slices(volume):
    """1 mm slices every 40 mm (a sampled high-resolution series) are thin: the 8 mm square; without a thickness
    the spacing stands for it."""
    import dataclasses

    from jcs_viewer.pipeline.slice_score import evidence_window_mm, lesion_evidence
    from jcs_viewer.pipeline.lungs import restrict_region

    sampled = dataclasses.replace(volume, info=dataclasses.replace(volume.info, slice_thickness=1.0))
    result = analyze(sampled, AnalysisOptions(device="cpu"), models=tiny_models())
    assert "8 mm square of lung)" in result.slice_rule and "thickness" not in result.slice_rule
    region = restrict_region(result.lung_mask, volume.spacing, 5.0)
    again = lesion_evidence(result.lesion_probability, region, volume.spacing[1:], evidence_window_mm(1.0))
    assert (again >= result.lesion_evidence - 1e-6).all()


def test_cancel_after_first_batch_raises_and_returns_nothing(volume):
    token = CancelToken()
    seen = []

    def progress(event):
        seen.append(event)
        if event.stage == "classify" and event.done > 0:
            token.cancel()

    with pytest.raises(Cancelled):
        analyze(volume, AnalysisOptions(**OPTS), progress=progress, cancel=token, models=tiny_models())
    assert max(e.done for e in seen if e.stage == "classify") == 4  # stopped after one batch
    assert not any(e.stage == "segment" for e in seen)


class FlakyOOM(nn.Module):
    """Wraps a network and raises CUDA out-of-memory on its first ``failures`` calls."""

    def __init__(self, inner: nn.Module, failures: int) -> None:
        super().__init__()
        self.inner = inner
        self.failures = failures
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        if self.failures > 0:
            self.failures -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return self.inner(x)


def test_oom_halves_the_batch(volume, baseline):
    models = tiny_models()
    flaky = FlakyOOM(models.seg_model, failures=1)
    result = analyze(volume, AnalysisOptions(**OPTS), models=LoadedModels(models.cls_model, models.cls_entry,
                                                                           flaky, models.seg_entry))
    assert flaky.batches == [4, 2, 2, 2, 1]  # the 7 slices with lung
    assert any("reduced from 4 to 2" in m for m in result.messages)
    np.testing.assert_array_equal(result.lesion_probability, baseline[0].lesion_probability)


def test_oom_at_batch_one_falls_back_to_cpu(volume, baseline):
    models = tiny_models()
    flaky = FlakyOOM(models.seg_model, failures=3)  # batch 4, 2, 1 all fail
    events = []
    result = analyze(volume, AnalysisOptions(**OPTS), progress=events.append,
                     models=LoadedModels(models.cls_model, models.cls_entry, flaky, models.seg_entry))
    assert flaky.batches[:4] == [4, 2, 1, 4]  # then the CPU's default segmentation batch
    assert any("continued on the CPU" in m for m in result.messages)
    assert any("continued on the CPU" in e.message for e in events)
    assert result.options["device_used"] == "cpu"
    np.testing.assert_array_equal(result.lesion_probability, baseline[0].lesion_probability)


def test_attribute_head_and_center_crop(volume):
    models = tiny_models(cls_overrides={"attributes": True})
    crop_entry = type("Entry", (), {k: getattr(models.cls_entry, k) for k in
                                    ("name", "arch", "sha256", "mean", "std", "window")})()
    crop_entry.input_size, crop_entry.resize = 48, 64  # Resize(64) + CenterCrop(48)
    models.cls_entry = crop_entry
    result = analyze(volume, AnalysisOptions(device="cpu", slice_cutoff=1.0), models=models)
    assert result.attributes.shape == (volume.n_slices, 5)
    scored = result.scored_slices
    assert ((result.attributes[scored] > 0) & (result.attributes[scored] < 1)).all()
    assert not result.attributes[~scored].any()  # no lung, no classification
    # The 8-pixel border outside the 48/64 crop has no activation.
    border = result.cams[:, :6, :]
    assert border.max() == 0 and result.cams.max() > 0


def test_hu_and_8bit_volumes_share_preprocessing(volume):
    """An 8-bit lung-window copy of the study gives the model (almost) the same input."""
    from jcs_viewer.io.volume import Volume
    from jcs_viewer.pipeline.preprocess import prepare_batch

    models = tiny_models()
    entry = models.cls_entry
    center, width = entry.window
    u8 = np.clip((volume.array.astype(np.float32) - (center - width / 2)) / width * 255, 0, 255)
    vol8 = Volume(array=np.rint(u8).astype(np.int16), spacing=volume.spacing, is_hu=False)
    a = prepare_batch(volume.array[:3], entry, True, torch.device("cpu"))
    b = prepare_batch(vol8.array[:3], entry, False, torch.device("cpu"))
    assert a.shape == (3, 3, 64, 64)
    assert torch.allclose(a, b, atol=0.05)


def test_8bit_studies_get_the_grey_default_lesion_net(tmp_path, monkeypatch):
    """A seg entry marked default_grey reads 8-bit studies; HU studies keep the default; named weights read all."""
    import dataclasses
    import shutil

    from jcs_viewer.models.registry import add_manifest_entry, read_manifest
    from jcs_viewer.pipeline.runner import load_models
    from test_pipeline_support import register_tiny_weights

    folder = tmp_path / "weights"
    folder.mkdir()
    names = register_tiny_weights(folder)
    seg = next(e for e in read_manifest(folder) if e.task == "seg")
    shutil.copy(seg.path, folder / "grey.safetensors")
    add_manifest_entry(dataclasses.replace(seg, name="test-seg-grey", file="grey.safetensors", default=False,
                                           default_grey=True), folder)
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no-user-weights"))
    assert {e.name: (e.default, e.default_grey) for e in read_manifest(folder) if e.task == "seg"} == {
        names["seg"]: (True, False), "test-seg-grey": (False, True)}

    models = load_models(AnalysisOptions(device="cpu"))
    assert models.lesion_net(is_hu=True)[1].name == names["seg"]
    assert models.lesion_net(is_hu=False)[1].name == "test-seg-grey"
    volume = small_phantom(6, 96, seed=4).to_volume()
    grey = dataclasses.replace(volume, array=np.clip((volume.array + 1350) * 255 // 1500, 0, 255).astype(np.int16),
                               is_hu=False)
    assert analyze(volume, AnalysisOptions(**OPTS), models=models).models["seg"]["name"] == names["seg"]
    assert analyze(grey, AnalysisOptions(**OPTS), models=models).models["seg"]["name"] == "test-seg-grey"
    named = load_models(AnalysisOptions(device="cpu", seg_weights=names["seg"]))
    assert named.grey_seg_model is None and named.lesion_net(is_hu=False)[1].name == names["seg"]


def test_8bit_studies_get_the_grey_default_lung_net(tmp_path, monkeypatch):
    """A lung entry marked default_grey finds the lungs of 8-bit studies; HU studies keep the default lung net;
    named lung weights (or none: --no-learned-lungs) read every study."""
    import dataclasses
    import shutil

    from jcs_viewer.models.registry import add_manifest_entry, get_weights, read_manifest
    from jcs_viewer.pipeline.runner import load_models
    from test_pipeline_support import register_tiny_weights

    shipped = get_weights("lung_lite-ctseg-v2")
    folder = tmp_path / "weights"
    folder.mkdir()
    register_tiny_weights(folder)
    for name, flags in (("test-lung", {"default": True}), ("test-lung-grey", {"default_grey": True})):
        shutil.copy(shipped.path, folder / f"{name}.safetensors")
        add_manifest_entry(dataclasses.replace(shipped, name=name, file=f"{name}.safetensors", root=folder,
                                               **{"default": False, "default_grey": False, **flags}), folder)
    monkeypatch.setenv("JCS_VIEWER_WEIGHTS", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no-user-weights"))
    assert {e.name for e in read_manifest(folder) if e.task == "lung"} == {"test-lung", "test-lung-grey"}

    models = load_models(AnalysisOptions(device="cpu"))
    assert models.lung_net(is_hu=True)[1].name == "test-lung"
    assert models.lung_net(is_hu=False)[1].name == "test-lung-grey"
    assert models.grey_lung_model in models.networks()
    volume = small_phantom(6, 96, seed=4).to_volume()
    grey = dataclasses.replace(volume, array=np.clip((volume.array + 1350) * 255 // 1500, 0, 255).astype(np.int16),
                               is_hu=False)
    assert analyze(volume, AnalysisOptions(**OPTS), models=models).models["lung"]["name"] == "test-lung"
    assert analyze(grey, AnalysisOptions(**OPTS), models=models).models["lung"]["name"] == "test-lung-grey"
    named = load_models(AnalysisOptions(device="cpu", lung_weights="test-lung"))
    assert named.grey_lung_model is None and named.lung_net(is_hu=False)[1].name == "test-lung"
    none = load_models(AnalysisOptions(device="cpu", learned_lungs=False))
    assert none.lung_net(is_hu=False) == (None, None) and none.lung_net(is_hu=True) == (None, None)


def test_test_mirror_reads_each_slice_with_its_mirror(volume, tmp_path):
    """A classifier entry with ``test_mirror`` gives each slice the mean of its and its mirror's probability
    (and maps): the scores move, stay probabilities, and the manifest keeps the field (and refuses a non-bool)."""
    import dataclasses

    from jcs_viewer.models.gradcam import class_probability
    from jcs_viewer.models.registry import WeightsEntry
    from jcs_viewer.pipeline.preprocess import prepare_batch

    models = tiny_models()
    mirrored = dataclasses.replace(models, cls_entry=dataclasses.replace(models.cls_entry, test_mirror=True))
    plain = analyze(volume, AnalysisOptions(**OPTS), models=models)
    both = analyze(volume, AnalysisOptions(**OPTS), models=mirrored)
    scored = plain.scored_slices
    assert np.array_equal(both.scored_slices, scored) and scored.any()
    p, q = np.asarray(plain.classifier_probability)[scored], np.asarray(both.classifier_probability)[scored]
    assert not np.array_equal(p, q) and ((q >= 0) & (q <= 1)).all()
    assert both.cams.shape == plain.cams.shape
    assert both.models["cls"]["test_mirror"] is True and plain.models["cls"]["test_mirror"] is False
    # Without lung boxes (a whole-slice entry) the pipeline's number is class_probability(mirror=True) itself.
    k = int(np.flatnonzero(scored)[0])
    with torch.inference_mode():
        x = prepare_batch(volume.array[k : k + 1], mirrored.cls_entry, True, "cpu", None)
        expected = class_probability(models.cls_model, x, mirror=True)
    assert both.classifier_probability[k] == pytest.approx(float(expected[0]), abs=1e-7)
    assert both.classifier_probability[k] != plain.classifier_probability[k]

    record = dataclasses.replace(mirrored.cls_entry, file="cls.safetensors").to_json()
    assert record["test_mirror"] is True and "test_mirror" not in models.cls_entry.to_json()
    assert WeightsEntry.from_json(record, tmp_path).test_mirror is True
    with pytest.raises(ValueError, match="test_mirror"):
        WeightsEntry.from_json({**record, "test_mirror": "yes"}, tmp_path)


def test_test_sizes_average_the_lesion_net_over_input_sides(volume, tmp_path):
    """An entry's ``test_sizes`` read each slice at every side and average; the manifest keeps them."""
    import dataclasses

    from jcs_viewer.models.registry import WeightsEntry
    from jcs_viewer.pipeline.preprocess import lesion_probabilities

    models = tiny_models()
    entry = models.seg_entry
    sizes = (entry.input_size, entry.input_size + 32)
    slices, out_hw = volume.array[:2], volume.array.shape[1:]
    with torch.inference_mode():
        single = [lesion_probabilities(models.seg_model, slices, dataclasses.replace(entry, input_size=s),
                                       True, "cpu", out_hw) for s in sizes]
        both = lesion_probabilities(models.seg_model, slices, dataclasses.replace(entry, test_sizes=sizes),
                                    True, "cpu", out_hw)
    assert both.shape == (2, 1, *out_hw)
    assert not torch.allclose(single[0], single[1], atol=1e-3)  # the sides do see different images
    assert torch.allclose(both, (single[0] + single[1]) / 2, atol=1e-6)

    record = dataclasses.replace(entry, file="seg.safetensors", test_sizes=sizes).to_json()
    assert record["test_sizes"] == list(sizes)
    assert WeightsEntry.from_json(record, tmp_path).test_sizes == sizes
    assert "test_sizes" not in entry.to_json()  # manifests without the field stay as they were

    result = analyze(volume, AnalysisOptions(device="cpu", slice_score="joint"),
                     models=dataclasses.replace(models, seg_entry=dataclasses.replace(entry, test_sizes=sizes)))
    plain = analyze(volume, AnalysisOptions(device="cpu", slice_score="joint"), models=models)
    assert result.lesion_probability.shape == plain.lesion_probability.shape
    assert not np.array_equal(result.lesion_probability, plain.lesion_probability)
