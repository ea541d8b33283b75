"""Patient decision and the slice-threshold rule."""

import numpy as np
import pytest

from jcs_viewer.pipeline.decision import patient_decision, slice_threshold


@pytest.mark.parametrize(
    "n_slices, spacing, expected",
    [
        (300, 1.0, 25),  # the paper's setting
        (400, 0.8, 31),  # more, thinner slices of a similar chest: more slices needed
        (60, 5.0, 5),  # thick slices: the same 25 mm, not 25 of 60 slices
        (600, 0.5, 50),
        (30, 1.0, 2),  # a partial study: the fraction 25/300 applies
        (3, 5.0, 1),  # clamped to at least one slice
    ],
)
def test_threshold_scales_with_study(n_slices, spacing, expected):
    threshold, rule = slice_threshold(n_slices, spacing)
    assert threshold == expected
    assert str(threshold) in rule and rule.endswith(".")


def test_thick_slice_study_can_be_positive():
    threshold, _ = slice_threshold(60, 5.0)
    positive = np.zeros(60, dtype=bool)
    positive[20:20 + threshold + 1] = True  # 30 mm of disease
    assert patient_decision(positive, threshold) == ("positive", threshold + 1)
    positive[20 + threshold] = False
    assert patient_decision(positive, threshold) == ("negative", threshold)


def test_single_slice_study():
    """The slice's own result is counted (the decision is "not assessable": assess.py); the rule sentence does not
    promise a patient decision (it said "positive when that slice is positive")."""
    threshold, rule = slice_threshold(1, 1.0)
    assert threshold == 0 and "no patient threshold" in rule and "positive" not in rule
    assert patient_decision(np.array([True]), threshold)[0] == "positive"
    assert patient_decision(np.array([False]), threshold)[0] == "negative"


def test_lesion_evidence_is_the_best_lung_window():
    from jcs_viewer.pipeline.slice_score import EVIDENCE_WINDOW_MM, combine, lesion_evidence

    prob = np.zeros((3, 64, 64), np.uint8)
    prob[1, 10:30, 10:30] = 255  # a lesion filling more than the 8 mm window (1 mm pixels)
    prob[2, ::4, ::4] = 255  # scattered single pixels: 1 in 16
    region = np.ones_like(prob, dtype=bool)
    ev = lesion_evidence(prob, region, (1.0, 1.0))
    assert ev[0] == 0 and ev[1] == pytest.approx(1.0) and ev[2] < 0.1
    half = np.zeros_like(prob)
    half[0, 0:64, 0:4] = 255  # a strip half the window wide
    assert lesion_evidence(half, region, (1.0, 1.0))[0] == pytest.approx(4 / EVIDENCE_WINDOW_MM)
    outside = region.copy()
    outside[1] = False  # the lesion lies outside the lungs and their margin
    assert lesion_evidence(prob, outside, (1.0, 1.0))[1] == 0
    assert combine(np.array([0.2, 0.8]), np.array([1.0, 0.0]), "joint").tolist() == pytest.approx([0.6, 0.4])
    with pytest.raises(ValueError):
        combine(np.array([0.2]), None, "joint")


def test_cli_and_settings_choices_match_the_pipeline():
    from jcs_viewer.pipeline.options import SLICE_SCORES, AnalysisOptions
    from jcs_viewer.settings import DEVICES
    from jcs_viewer.settings import SLICE_SCORES as SETTINGS

    assert SETTINGS == SLICE_SCORES
    for device in DEVICES:
        AnalysisOptions(device=device)  # each accepted
    with pytest.raises(ValueError):
        AnalysisOptions(device="quantum")
