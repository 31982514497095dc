"""Per-frame online action detection metrics: AP / mAP (THUMOS'14) and calibrated AP / mcAP (TVSeries).

scores, labels: [N, C] over all evaluated frames of all videos. Tied scores form one threshold (as
sklearn's ``average_precision_score``). Calibrated precision (De Geest et al. 2016) weighs false positives
by 1 / w with w = #neg / #pos, so that cAP does not depend on the class's frame share.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def _curve(scores: np.ndarray, labels: np.ndarray):
    """Cumulative TP / FP at every distinct threshold (descending)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of every tie group
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return tp.astype(np.float64), fp.astype(np.float64)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """sum_n (R_n - R_{n-1}) P_n over distinct thresholds; NaN when there is no positive."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel() > 0
    npos = labels.sum()
    if npos == 0:
        return float("nan")
    tp, fp = _curve(scores, labels)
    prec = tp / (tp + fp)
    dr = np.diff(np.r_[0.0, tp]) / npos
    return float((dr * prec).sum())


def calibrated_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """cAP: precision TP / (TP + FP / w), w = #neg / #pos, averaged over the recall steps."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel() > 0
    npos = labels.sum()
    nneg = labels.size - npos
    if npos == 0:
        return float("nan")
    w = nneg / npos
    tp, fp = _curve(scores, labels)
    cprec = tp / np.maximum(tp + fp / w, 1e-12) if w > 0 else np.ones_like(tp)
    dr = np.diff(np.r_[0.0, tp]) / npos
    return float((dr * cprec).sum())


def per_frame_map(scores: np.ndarray, labels: np.ndarray, *, class_names: Optional[Sequence[str]] = None,
                  ignore: Sequence[int] = (0,), valid: Optional[np.ndarray] = None,
                  calibrated: bool = False) -> dict:
    """Mean over classes (except ``ignore``, e.g. background 0) of per-class AP or cAP, in percent.

    scores, labels [N, C]; ``valid`` [N] bool keeps a subset of frames; classes without a positive
    frame are left out of the mean (reported as NaN). -> {'mAP' or 'mcAP': float, 'per_class': {...}}.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ")
    if valid is not None:
        scores, labels = scores[valid], labels[valid]
    fn = calibrated_average_precision if calibrated else average_precision
    names = list(class_names) if class_names is not None else [str(i) for i in range(scores.shape[1])]
    per = {names[c]: 100.0 * fn(scores[:, c], labels[:, c]) for c in range(scores.shape[1]) if c not in ignore}
    vals = [v for v in per.values() if not np.isnan(v)]
    key = "mcAP" if calibrated else "mAP"
    return {key: float(np.mean(vals)) if vals else float("nan"), "per_class": per}


def ambiguous_window_mask(ambiguous: np.ndarray, window: int) -> np.ndarray:
    """ambiguous [T] bool -> keep [T]: False where the window ending at t holds an ambiguous frame
    (the released THUMOS evaluation's drop; off by default in tcvideo)."""
    a = np.asarray(ambiguous, np.int64)
    c = np.r_[0, np.cumsum(a)]
    t = np.arange(len(a))
    lo = np.maximum(t - window + 1, 0)
    return (c[t + 1] - c[lo]) == 0
