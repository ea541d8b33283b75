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
    threshold, _ = slice_threshold(1, 1.0)
    assert threshold == 0
    assert patient_decision(np.array([True]), threshold)[0] == "positive"
    assert patient_decision(np.array([False]), threshold)[0] == "negative"
