"""The whole reading flow on the built-in demo study, driven like a user would (pytest-qt, offscreen).

open demo -> analyse in the background -> score strip -> next flagged -> confirm -> summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from jcs_viewer.settings import SettingsStore  # noqa: E402

from jcs_viewer.gui.main_window import MainWindow  # noqa: E402
from jcs_viewer.gui.synthetic import synthetic_result  # noqa: E402
from jcs_viewer.io import load_study  # noqa: E402
from jcs_viewer.io.phantom import demo_study_path  # noqa: E402
from jcs_viewer.pipeline.progress import STAGES, ProgressEvent  # noqa: E402
from jcs_viewer.session.review import ReviewDecision  # noqa: E402


@pytest.fixture(scope="module")
def demo_root() -> Path:
    return Path(demo_study_path())


def ground_truth_analysis(root: Path):
    """analyze() stand-in built from the demo's ground-truth masks (real NIfTI files, real quantify)."""
    def analyze(volume, options=None, progress=None, cancel=None, models=None):
        for i, stage in enumerate(STAGES):
            cancel.raise_if_cancelled()
            progress(ProgressEvent(stage, 1, 1, ""))
        lesion = load_study(root / "ground_truth" / "lesion_mask.nii.gz").array.astype(np.uint8)
        lung = load_study(root / "ground_truth" / "lung_mask.nii.gz").array.astype(np.uint8)
        assert lesion.shape == volume.array.shape
        return synthetic_result(volume, lung, lesion)
    return analyze


def test_demo_open_analyse_review_summary(qtbot, tmp_path, monkeypatch, demo_root):
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    settings = SettingsStore(tmp_path / "settings.ini")
    window = MainWindow(settings=settings, analyze=ground_truth_analysis(demo_root))
    qtbot.addWidget(window)
    window.show()
    assert window.auto_analyse  # default: analyse on open
    window.open_demo()
    qtbot.waitUntil(lambda: window.state.volume is not None, timeout=60000)
    volume = window.state.volume
    assert volume.n_slices >= 120 and volume.is_hu
    assert window.study_path == demo_root / "dicom"
    assert window.recent.paths()[0] == str(demo_root / "dicom")
    qtbot.waitUntil(lambda: window.state.result is not None, timeout=60000)
    result = window.state.result
    assert result.n_slices == volume.n_slices
    flagged = np.flatnonzero(result.slice_positive)
    assert len(flagged) > 0, "the demo has lesions, so some slices must be flagged"

    # Score strip shows the curve and the flagged runs.
    assert len(window.score_strip.curve.getData()[1]) == volume.n_slices
    assert window.score_strip.flagged_region_count >= 1

    # Start before the first flagged slice; `n` goes to it, `c` confirms it.
    window.state.set_slice(0)
    qtbot.keyClick(window.slice_view, Qt.Key.Key_N)
    z = window.state.z
    assert z == flagged[0]
    assert window.slice_label.text().startswith(f"Slice {z + 1}/{volume.n_slices}")
    qtbot.keyClick(window.slice_view, Qt.Key.Key_C)
    assert window.state.review.decision(z) == ReviewDecision.CONFIRMED
    assert window.review_panel.progress_label.text().startswith(f"<b>1 of {len(flagged)} reviewed")
    # Lesion pixels of this slice are painted in the overlay.
    lesion_here = result.lesion_mask[z] > 0
    assert lesion_here.any() and (window.slice_view.mask_item.image[..., 3][lesion_here] > 0).all()

    text = window.summary_panel.text()
    assert f"Decision: {result.decision.upper()}" in text
    assert f"{result.positive_slices} of {volume.n_slices} slices positive" in text
    assert "Lesion volume" in text and "Involvement" in text and "Research use only" in text
    window.close()


def test_demo_with_the_real_pipeline_and_injected_lite_models(qtbot, tmp_path, monkeypatch, demo_root):
    """The worker runs the real ``pipeline.analyze`` with random-init lite models (64² inputs, quick).

    Random weights say nothing about COVID, so this checks the wiring (worker, progress events,
    the result in strip, review list, overlays and summary), not accuracy: the test above covers
    the review flow with meaningful flags.
    """
    torch = pytest.importorskip("torch")
    from jcs_viewer.models import build
    from jcs_viewer.models.registry import WeightsEntry
    from jcs_viewer.pipeline import AnalysisOptions, LoadedModels

    torch.manual_seed(0)
    window_hu = (-600.0, 1500.0)
    models = LoadedModels(
        build("jcs_cls_lite").eval(),
        WeightsEntry(name="random-cls-lite", task="cls", arch="jcs_cls_lite", file="-", input_size=64,
                     window=window_hu),
        build("jcs_seg_lite").eval(),
        WeightsEntry(name="random-seg-lite", task="seg", arch="jcs_seg_lite", file="-", input_size=64,
                     window=window_hu),
    )
    monkeypatch.setenv("JCS_VIEWER_DATA", str(tmp_path / "data"))
    settings = SettingsStore(tmp_path / "settings.ini")
    window = MainWindow(settings=settings, models=models, options=AnalysisOptions(device="cpu"))
    qtbot.addWidget(window)
    window.show()
    stages = []
    window.open_demo()
    qtbot.waitUntil(lambda: window.analysis_worker is not None, timeout=60000)  # starts on open
    window.analysis_worker.progress.connect(lambda stage, *rest: stages.append(stage))
    qtbot.waitUntil(lambda: window.state.result is not None or window.last_error is not None, timeout=180000)
    assert window.last_error is None
    result = window.state.result
    assert {"classify", "quantify"} <= set(stages)
    assert result.n_slices == window.state.volume.n_slices
    assert window.state.review.total == result.positive_slices == int(np.sum(result.slice_positive))
    assert window.review_panel.list.count() == result.positive_slices
    xs, ys = window.score_strip.curve.getData()
    # Slices without lung have no score: a gap (NaN) in the curve, never a drawn zero.
    expected = np.where(result.scored_slices, result.slice_probability, np.nan)
    assert np.allclose(ys, expected, equal_nan=True)
    window.layers_panel.cam_flagged.setChecked(False)  # random weights may flag nothing: show CAMs everywhere
    qtbot.keyClick(window.slice_view, Qt.Key.Key_Up)
    assert window.slice_view.cam_item.image.shape[:2] == result.cams.shape[1:]
    assert window.slice_view.mask_item.image.shape[:2] == window.state.volume.array.shape[1:]
    text = window.summary_panel.text()
    assert f"Decision: {result.decision.upper()}" in text and "random-cls-lite" in text
    window.close()
