"""Temporal localisation metrics: temporal IoU, greedy NMS, ActivityNet-style AP / mAP.

AP at one tIoU threshold (ActivityNet's detection protocol): all detections of a class, pooled over
its episodes, sorted by score (ties keep input order); each one is a true positive when it overlaps a
not-yet-matched ground truth of its own episode with tIoU >= threshold (best-overlapping first), else a
false positive. AP is the area under the precision-recall curve with precision made monotonically
non-increasing (interpolated), recall over all ground truths of the class. mAP is the mean over the
classes that have ground truth; the average mAP is the mean over thresholds 0.5:0.05:0.95.

The common-action benchmark's evaluator (ECCV 2020 code, ``evaluation/eval_detection.py``) labels
every query "c1": its number is ONE AP over the detections of all episodes pooled
(``pooled_average_precision``, keys ``AP@<thr>`` / ``AP@avg``). The per-class mean
(``mean_average_precision``, keys ``mAP@<thr>``) is tcvideo's; it weighs classes equally.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())


def temporal_iou(a, b, xp=np):
    """a [..., N, 2], b [..., M, 2] (start, end) -> tIoU [..., N, M]; works for numpy and jax.numpy."""
    s = xp.maximum(a[..., :, None, 0], b[..., None, :, 0])
    e = xp.minimum(a[..., :, None, 1], b[..., None, :, 1])
    inter = xp.maximum(e - s, 0.0)
    union = (a[..., :, None, 1] - a[..., :, None, 0]) + (b[..., None, :, 1] - b[..., None, :, 0]) - inter
    return inter / xp.maximum(union, 1e-8)


def nms(segments: np.ndarray, scores: np.ndarray, iou_threshold: float, top_k: int) -> np.ndarray:
    """Greedy NMS: indices of the kept segments [K <= top_k], highest score first; a segment is dropped
    when its tIoU with an already kept one is > iou_threshold."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    segs = np.asarray(segments, np.float64)
    while order.size and len(keep) < top_k:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        iou = temporal_iou(segs[i:i + 1], segs[order[1:]])[0]
        order = order[1:][iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the PR curve with precision replaced by its running maximum from the right."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def average_precision(detections: Sequence[tuple], ground_truth: dict, threshold: float) -> float:
    """detections: (episode, score, start, end) of one class; ground_truth: episode -> [G, 2]."""
    return _ap_from_ious(*_match_table(detections, ground_truth), threshold)


def _match_table(detections: Sequence[tuple], ground_truth: dict):
    """-> (tIoU of each detection, sorted by score, with its episode's ground truths (list of [G]),
    number of ground truths); ties keep input order."""
    n_gt = sum(len(np.asarray(g).reshape(-1, 2)) for g in ground_truth.values())
    order = sorted(range(len(detections)), key=lambda k: -detections[k][1])
    rows = []
    for k in order:
        ep, _, s, e = detections[k]
        g = np.asarray(ground_truth.get(ep, np.zeros((0, 2))), np.float64).reshape(-1, 2)
        rows.append((ep, temporal_iou(np.asarray([[s, e]], np.float64), g)[0]))
    return rows, n_gt


def _ap_from_ious(rows: list, n_gt: int, threshold: float) -> float:
    if n_gt == 0:
        return float("nan")
    if not rows:
        return 0.0
    used: dict = {}
    tp = np.zeros(len(rows))
    for rank, (ep, iou) in enumerate(rows):
        if not len(iou) or iou.max() < threshold:
            continue
        taken = used.setdefault(ep, np.zeros(len(iou), bool))
        for j in np.argsort(-iou, kind="stable"):  # best-overlapping unmatched ground truth
            if iou[j] < threshold:
                break
            if not taken[j]:
                taken[j] = True
                tp[rank] = 1
                break
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, len(tp) + 1)
    recall = ctp / n_gt
    return interpolated_ap(precision, recall)


def mean_average_precision(episodes: Iterable[dict], thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """episodes: {'id', 'label', 'gt' [G, 2], 'segments' [K, 2], 'scores' [K]} ->
    {'mAP@0.5': ..., 'mAP@0.55': ..., 'mAP@avg': mean over thresholds, 'num_classes': C}
    (percentages; per-class AP grouped by episode label)."""
    dets: dict[str, list] = {}
    gts: dict[str, dict] = {}
    for ep in episodes:
        dets.setdefault(ep["label"], [])
        gts.setdefault(ep["label"], {})[ep["id"]] = np.asarray(ep["gt"], np.float64).reshape(-1, 2)
        dets[ep["label"]] += [(ep["id"], float(sc), float(s), float(e))
                              for (s, e), sc in zip(np.asarray(ep["segments"]).reshape(-1, 2), ep["scores"])]
    tables = {c: _match_table(dets[c], gts[c]) for c in sorted(gts)}
    out = {}
    for thr in thresholds:
        aps = [_ap_from_ious(*tables[c], thr) for c in sorted(gts)]
        aps = [a for a in aps if not np.isnan(a)]
        out[f"mAP@{thr:g}"] = 100.0 * float(np.mean(aps)) if aps else 0.0
    out["mAP@avg"] = float(np.mean([out[f"mAP@{t:g}"] for t in thresholds]))
    out["num_classes"] = len(gts)
    return out


def pooled_average_precision(episodes: Iterable[dict], thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """The benchmark's metric: every episode labelled as one class, one AP over all their detections.
    episodes as in ``mean_average_precision`` -> {'AP@0.5': ..., 'AP@avg': mean over thresholds}
    (percentages)."""
    one = [{**ep, "label": "c1"} for ep in episodes]
    res = mean_average_precision(one, thresholds)
    out = {f"AP@{t:g}": res[f"mAP@{t:g}"] for t in thresholds}
    out["AP@avg"] = res["mAP@avg"]
    return out
