"""Metric functions of jcs_viewer.train.metrics against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jcs_viewer.train import metrics as m


def _masks():
    gt = np.zeros((4, 4), bool)
    gt[0, :2] = True  # 2 px
    pred = np.zeros((4, 4), bool)
    pred[0, 1:4] = True  # 3 px, 1 overlapping
    return pred, gt


def test_dice_and_iou_by_hand():
    pred, gt = _masks()
    assert m.dice(pred, gt) == pytest.approx(2 * 1 / (3 + 2))
    assert m.iou(pred, gt) == pytest.approx(1 / 4)
    empty = np.zeros((4, 4), bool)
    assert m.dice(empty, empty) == 1.0 and m.iou(empty, empty) == 1.0
    assert m.dice(pred, empty) == 0.0


def test_e_measure_by_hand():
    pred, gt = _masks()
    # Bias matrices: gt mean 2/16, pred mean 3/16; four pixel classes by (pred, gt).
    p, g = pred.astype(float), gt.astype(float)
    ap, ag = p - 3 / 16, g - 2 / 16
    vals = {}
    for pv, gv in itertools.product((0.0, 1.0), repeat=2):
        a, b = pv - 3 / 16, gv - 2 / 16
        align = 2 * a * b / (a * a + b * b)
        vals[(pv, gv)] = (align + 1) ** 2 / 4
    counts = {(1.0, 1.0): 1, (1.0, 0.0): 2, (0.0, 1.0): 1, (0.0, 0.0): 12}
    expected = sum(vals[k] * c for k, c in counts.items()) / 15
    assert m.e_measure(pred, gt) == pytest.approx(expected, rel=1e-9)
    assert ap.shape == ag.shape
    # Perfect prediction scores (n / (n - 1)) as in the authors' normalisation; empty gt: background share.
    assert m.e_measure(gt, gt) == pytest.approx(16 / 15)
    empty = np.zeros((4, 4), bool)
    assert m.e_measure(pred, empty) == pytest.approx(13 / 15)


def test_jcs_protocol_uses_twice_the_mean():
    prob = np.array([[0.9, 0.5, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]])  # mean 0.25 -> threshold 0.5 (strict >)
    gt = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
    # Only 0.9 > 0.5, so P = {(0,0)}, G has 2 px: IoU 1/2.
    assert m.jcs_protocol_iou(prob, gt) == pytest.approx(0.5)
    # A 0.5 fixed threshold would give IoU 1: the adaptive threshold is what differs.
    assert m.iou(prob >= 0.5, gt > 0.5) == 1.0


def test_auc_matches_brute_force_pair_count():
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(60), 1)  # many ties
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    brute = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
    assert m.auc(scores, labels) == pytest.approx(brute)
    with pytest.raises(ValueError):
        m.auc(scores, np.ones(60))


def test_classification_metrics_treat_covid_as_positive():
    prob = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])  # TP 2, FN 1, FP 1, TN 2
    r = m.classification_metrics(prob, labels)
    assert r["sensitivity"] == pytest.approx(2 / 3)
    assert r["specificity"] == pytest.approx(2 / 3)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["accuracy"] == pytest.approx(4 / 6)
    # Asymmetric case: F1 of the COVID class, not of the non-COVID class.
    # COVID: TP 1, FP 1, FN 0 -> F1 2/3; the non-COVID class would give F1 0.8 (precision 1, recall 2/3).
    r = m.classification_metrics(np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 0, 0, 0]))
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["sensitivity"] == 1.0 and r["specificity"] == pytest.approx(2 / 3)


def test_segmentation_metrics_average_per_image():
    pred, gt = _masks()
    probs = [pred.astype(float), gt.astype(float)]
    r = m.segmentation_metrics(probs, [gt, gt])
    assert r["dice"] == pytest.approx((0.4 + 1.0) / 2)
    assert r["iou"] == pytest.approx((0.25 + 1.0) / 2)
    assert r["dice_pooled"] == pytest.approx(2 * (1 + 2) / (3 + 2 + 2 + 2))
    assert r["n"] == 2
