"""Review state (plain Python) and the per-slice overlay builders the viewer draws with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jcs_viewer.gui import overlays
from jcs_viewer.session.review import ReviewDecision, ReviewState


def test_review_progress_navigation_and_events():
    state = ReviewState([30, 5, 12], [0.9, 0.6, 0.7])
    events = []
    state.subscribe(lambda z, d: events.append((z, d)))
    assert state.flagged == (5, 12, 30)
    assert state.scores[5] == pytest.approx(0.6)
    assert state.progress_text() == "0 of 3 reviewed"
    assert state.next_flagged(0) == 5 and state.next_flagged(12) == 30
    assert state.next_flagged(30) == 5  # wraps
    assert state.next_flagged(30, wrap=False) is None
    assert state.previous_flagged(12) == 5 and state.previous_flagged(5) == 30
    state.confirm(12)
    state.reject(30)
    state.confirm(12)  # unchanged: no second event
    state.confirm(40)  # a slice the AI did not flag: recorded, not counted in progress
    assert state.progress_text() == "2 of 3 reviewed"
    assert events == [(12, ReviewDecision.CONFIRMED), (30, ReviewDecision.REJECTED),
                      (40, ReviewDecision.CONFIRMED)]
    state.clear(30)
    assert state.decision(30) is None and state.reviewed == 1
    restored = ReviewState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.decisions() == state.decisions() and restored.flagged == state.flagged


def test_review_rejects_bad_input():
    with pytest.raises(ValueError):
        ReviewState([1, 2], [0.5])
    with pytest.raises(ValueError):
        ReviewState([1]).set_decision(-1, "confirmed")
    with pytest.raises(ValueError):
        ReviewState([1]).set_decision(1, "maybe")
    empty = ReviewState()
    assert empty.next_flagged(3) is None and empty.progress_text() == "0 of 0 reviewed"


def test_colormap_lut_fades_weak_activation():
    for name in overlays.COLORMAPS:
        lut = overlays.colormap_lut(name)
        assert lut.shape == (256, 4) and lut.dtype == np.uint8
        assert lut[0, 3] == 0 and lut[255, 3] == 255
        assert np.all(np.diff(lut[:, 3].astype(int)) >= 0)
    jet = overlays.colormap_lut("jet")
    assert jet[255, 0] > jet[255, 2]  # hot end is red, cold end blue
    assert jet[0, 2] > jet[0, 0]
    with pytest.raises(ValueError):
        overlays.colormap_lut("rainbow")


def test_activation_map_colouring_keeps_resolution():
    cam = np.zeros((8, 8), np.uint8)
    cam[1, 6] = 255
    lut = overlays.colormap_lut("jet")
    rgba = overlays.activation_rgba(cam, lut)
    assert rgba.shape == (8, 8, 4) and rgba.dtype == np.uint8
    assert tuple(rgba[1, 6]) == tuple(lut[255]) and rgba[0, 0, 3] == 0


def test_masks_composed_into_one_overlay():
    lesion = np.zeros((12, 12), np.uint8)
    lesion[4:7, 4:7] = 1
    lung = np.zeros((12, 12), np.uint8)
    lung[1:11, 1:6], lung[1:11, 6:11] = 1, 2
    rgba = overlays.masks_rgba((12, 12), lesion, lung, lesion_color=(255, 0, 0), lesion_alpha=0.5,
                               lesion_outline=False, lung_colors={1: (0, 0, 255), 2: (0, 255, 0)}, lung_alpha=1.0)
    assert tuple(rgba[5, 5]) == (255, 0, 0, 128)  # lesion fill, opacity baked into alpha
    assert tuple(rgba[1, 3]) == (0, 0, 255, 255) and tuple(rgba[1, 8]) == (0, 255, 0, 255)
    assert rgba[3, 3, 3] == 0  # inside the lung, no lesion: transparent
    only_lesion = overlays.masks_rgba((12, 12), lesion, None, lesion_color=(255, 0, 0), lesion_alpha=1.0,
                                      lesion_outline=True, lung_colors={}, lung_alpha=1.0)
    assert np.count_nonzero(only_lesion[..., 3]) == 8 and only_lesion[5, 5, 3] == 0


def test_mask_fill_outline_and_lung_labels():
    mask = np.zeros((10, 10), np.uint8)
    mask[2:8, 3:7] = 1
    fill = overlays.mask_rgba(mask, (255, 0, 0), fill_alpha=200)
    assert (fill[..., 3] > 0).sum() == 24 and fill[4, 4, 3] == 200 and tuple(fill[4, 4, :3]) == (255, 0, 0)
    outline = overlays.mask_rgba(mask, (255, 0, 0), outline=True)
    assert outline[4, 4, 3] == 0 and outline[2, 4, 3] == 255 and outline[0, 0, 3] == 0
    assert (outline[..., 3] > 0).sum() == 24 - 8  # the 6x4 box minus its 4x2 interior
    labels = np.zeros((10, 10), np.uint8)
    labels[2:8, 1:5], labels[2:8, 5:9] = 1, 2
    rgba = overlays.masks_rgba(labels.shape, None, labels, lesion_color=(255, 0, 0), lesion_alpha=1.0,
                               lesion_outline=False, lung_colors={1: (0, 0, 255), 2: (0, 255, 0)}, lung_alpha=1.0)
    assert tuple(rgba[2, 2, :3]) == (0, 0, 255) and tuple(rgba[2, 6, :3]) == (0, 255, 0)
    assert rgba[4, 4, 3] == 255 and rgba[4, 5, 3] == 255  # where the two lungs touch, both outlined
    assert rgba[4, 3, 3] == 0
