"""Evaluation metrics for lesion segmentation and COVID classification.

All functions take numpy arrays and return plain floats so that results can be
written to JSON directly. Conventions (documented because papers differ):

* Segmentation masks are boolean; an image whose ground truth and prediction are
  both empty scores 1 for Dice and IoU (a correct "no lesion" answer), never NaN.
* Classification uses COVID as the positive class (label 1) for sensitivity, F1
  and AUC; the COVID-CT scripts computed F1 for the non-COVID class instead.
"""

from __future__ import annotations

import numpy as np

_EPS = np.finfo(np.float64).eps


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient 2|P∩G| / (|P| + |G|) of two binary masks."""
    p, g = np.asarray(pred, bool), np.asarray(gt, bool)
    denom = int(p.sum()) + int(g.sum())
    if denom == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, g).sum()) / denom


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Foreground intersection over union |P∩G| / |P∪G| of two binary masks."""
    p, g = np.asarray(pred, bool), np.asarray(gt, bool)
    union = int(np.logical_or(p, g).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(p, g).sum()) / union


def e_measure(pred: np.ndarray, gt: np.ndarray) -> float:
    """Enhanced-alignment measure E_phi of a binary prediction (Fan et al., IJCAI 2018).

    Bias matrices are the maps minus their means; the alignment matrix is
    ``2 φG∘φP / (φG∘φG + φP∘φP)``, mapped through ``f(x) = (1 + x)^2 / 4`` and
    averaged over the pixels (``/(w·h − 1)`` as in the authors' code). An empty
    ground truth scores the fraction of background predicted as background; a
    full one the fraction predicted as foreground.
    """
    p = np.asarray(pred, bool).astype(np.float64)
    g = np.asarray(gt, bool).astype(np.float64)
    n = p.size
    if g.sum() == 0:
        enhanced = 1.0 - p
    elif g.sum() == n:
        enhanced = p
    else:
        ap = p - p.mean()
        ag = g - g.mean()
        align = 2.0 * ag * ap / (ag * ag + ap * ap + _EPS)
        enhanced = (align + 1.0) ** 2 / 4.0
    return float(enhanced.sum() / (n - 1 + _EPS))


def jcs_protocol_iou(prob: np.ndarray, gt: np.ndarray) -> float:
    """IoU of one image under the official JCS test protocol (IoUEval.py).

    The probability map is binarised at twice its own mean (adaptive threshold),
    the ground truth at 0.5; the caller averages over images ("mIoU" in JCS).
    """
    prob = np.asarray(prob, np.float64)
    pred = prob > 2.0 * prob.mean()
    return iou(pred, np.asarray(gt) > 0.5)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(score_pos > score_neg), ties counted one half.

    Computed from average ranks (Mann-Whitney U), O(n log n).
    """
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative sample.")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def classification_metrics(prob_covid: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, sensitivity, specificity, precision, F1 (COVID positive) and AUC.

    Args:
        prob_covid: probability of COVID per image.
        labels: 1 for COVID, 0 for non-COVID.
        threshold: a probability at or above it predicts COVID.
    """
    prob = np.asarray(prob_covid, np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    pred = prob >= threshold
    tp = int(np.sum(pred & y))
    tn = int(np.sum(~pred & ~y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    sens = tp / (tp + fn) if tp + fn else 0.0
    spec = tn / (tn + fp) if tn + fp else 0.0
    prec = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * prec * sens / (prec + sens) if prec + sens else 0.0
    return {
        "accuracy": (tp + tn) / len(y),
        "sensitivity": sens,
        "specificity": spec,
        "precision": prec,
        "f1": f1,
        "auc": auc(prob, y),
        "n": int(len(y)),
        "n_covid": int(y.sum()),
    }


def segmentation_metrics(probs: list[np.ndarray], gts: list[np.ndarray], threshold: float = 0.5) -> dict[str, float]:
    """Mean per-image Dice, IoU, E-measure and the JCS protocol IoU, plus pooled Dice.

    Args:
        probs: lesion probability maps in [0, 1], each the size of its mask.
        gts: binary ground-truth masks.
        threshold: probability at or above which a pixel is lesion (Dice/IoU/E).
    """
    if not probs or len(probs) != len(gts):
        raise ValueError("segmentation_metrics needs one probability map per mask.")
    d, j, e, jcs = [], [], [], []
    inter = total = 0
    for prob, gt in zip(probs, gts):
        g = np.asarray(gt) > 0.5
        p = np.asarray(prob) >= threshold
        d.append(dice(p, g))
        j.append(iou(p, g))
        e.append(e_measure(p, g))
        jcs.append(jcs_protocol_iou(prob, g))
        inter += int(np.logical_and(p, g).sum())
        total += int(p.sum()) + int(g.sum())
    return {
        "dice": float(np.mean(d)),
        "iou": float(np.mean(j)),
        "e_measure": float(np.mean(e)),
        "jcs_miou": float(np.mean(jcs)),
        "dice_pooled": 2.0 * inter / total if total else 1.0,
        "n": len(probs),
    }


def peak_index(activation: np.ndarray, decimals: int = 4) -> int:
    """Flat index of a map's peak, ties within ``10**-decimals`` going to the first.

    An upsampled coarse map has plateaus (a border cell spreads over many pixels); rounding first makes
    the chosen pixel independent of float noise (folded vs unfolded BN, channels-last or not).
    """
    return int(np.argmax(np.round(np.asarray(activation, np.float64), decimals)))
