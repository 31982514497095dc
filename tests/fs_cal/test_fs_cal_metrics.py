"""Temporal IoU, NMS and the ActivityNet-style AP / mAP evaluator on hand-computed cases."""
import numpy as np
import pytest

from tcvideo.fs_cal import metrics as fm


def test_temporal_iou():
    a = np.array([[0.0, 10.0]])
    b = np.array([[5.0, 15.0], [10.0, 20.0], [0.0, 10.0], [2.0, 4.0], [30.0, 40.0]])
    np.testing.assert_allclose(fm.temporal_iou(a, b), [[1 / 3, 0.0, 1.0, 0.2, 0.0]])
    assert fm.temporal_iou(b, b).shape == (5, 5)


def test_nms():
    segs = np.array([[0, 10], [1, 11], [20, 30], [5, 15]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    # [1, 11] overlaps [0, 10] by 9/11 > 0.4: dropped; [5, 15] overlaps it by 1/3 <= 0.4: kept
    np.testing.assert_array_equal(fm.nms(segs, scores, 0.4, 300), [0, 2, 3])
    np.testing.assert_array_equal(fm.nms(segs, scores, 0.4, 2), [0, 2])
    np.testing.assert_array_equal(fm.nms(segs, scores, 0.9, 300), [0, 1, 2, 3])
    np.testing.assert_array_equal(fm.nms(segs[::-1], scores[::-1], 0.4, 300), [3, 1, 0])


def test_average_precision_hand_computed():
    gt = {"e0": np.array([[0.0, 10.0]])}
    # TP then FP: precision [1, 1/2], recall [1, 1] -> AP 1
    assert fm.average_precision([("e0", 0.9, 0, 10), ("e0", 0.8, 20, 30)], gt, 0.5) == pytest.approx(1.0)
    # FP then TP: interpolated precision 1/2 over recall [0, 1] -> AP 1/2
    assert fm.average_precision([("e0", 0.9, 20, 30), ("e0", 0.8, 0, 10)], gt, 0.5) == pytest.approx(0.5)
    # two episodes: TP, FP, TP, duplicate (FP): P = [1, 1/2, 2/3, 1/2], R = [1/2, 1/2, 1, 1]
    # -> 1/2 * 1 + 1/2 * 2/3
    gt2 = {"e0": np.array([[0.0, 10.0]]), "e1": np.array([[50.0, 60.0]])}
    dets = [("e0", 0.9, 0, 10), ("e1", 0.8, 0, 10), ("e1", 0.7, 51, 60), ("e0", 0.6, 0, 9)]
    assert fm.average_precision(dets, gt2, 0.5) == pytest.approx(0.5 + 1 / 3)
    # a detection matches only ground truth of its own episode
    assert fm.average_precision([("e1", 0.9, 0, 10)], gt2, 0.5) == 0.0
    # threshold: tIoU 0.6 counts at 0.5, not at 0.7
    assert fm.average_precision([("e0", 0.9, 0, 6)], gt, 0.5) == pytest.approx(1.0)
    assert fm.average_precision([("e0", 0.9, 0, 6)], gt, 0.7) == 0.0
    assert fm.average_precision([], gt, 0.5) == 0.0


def test_mean_average_precision_over_classes_and_thresholds():
    eps = [
        {"id": 0, "label": "a", "gt": [[0, 10]], "segments": [[0, 8]], "scores": [0.9]},  # tIoU 0.8
        {"id": 1, "label": "b", "gt": [[0, 10]], "segments": [[20, 30], [0, 10]], "scores": [0.9, 0.8]},
        {"id": 2, "label": "c", "gt": [[0, 10]], "segments": np.zeros((0, 2)), "scores": []},  # nothing found
    ]
    out = fm.mean_average_precision(eps)
    # at 0.5: AP a = 1, b = 1/2, c = 0
    assert out["mAP@0.5"] == pytest.approx(100 * 1.5 / 3)
    # a is a hit for the 7 thresholds 0.5 ... 0.8 and a miss for 0.85 ... 0.95; b is 1/2 at every threshold
    assert out["mAP@avg"] == pytest.approx(100 * (0.7 + 0.5 + 0.0) / 3)
    assert out["num_classes"] == 3 and len(fm.THRESHOLDS) == 10
    assert fm.mean_average_precision(eps[:1], thresholds=(0.5, 0.9)) == {"mAP@0.5": 100.0, "mAP@0.9": 0.0,
                                                                         "mAP@avg": 50.0, "num_classes": 1}


def test_pooled_average_precision_hand_computed():
    """The benchmark's AP: all episodes' detections in one ranking (every query is class "c1")."""
    eps = [
        {"id": 0, "label": "a", "gt": [[0, 10]], "segments": [[0, 8]], "scores": [0.9]},  # tIoU 0.8
        {"id": 1, "label": "b", "gt": [[0, 10]], "segments": [[20, 30], [0, 10]], "scores": [0.85, 0.8]},
        {"id": 2, "label": "c", "gt": [[0, 10]], "segments": np.zeros((0, 2)), "scores": []},
    ]
    out = fm.pooled_average_precision(eps)
    # ranking TP (0.9), FP (0.85), TP (0.8) over 3 ground truths: P = [1, 1/2, 2/3], R = [1/3, 1/3, 2/3]
    # -> 1/3 * 1 + 1/3 * 2/3 = 5/9 (the per-class mean is (1 + 1/2 + 0) / 3 = 1/2)
    assert out["AP@0.5"] == pytest.approx(100 * 5 / 9)
    assert fm.mean_average_precision(eps)["mAP@0.5"] == pytest.approx(100 * 1 / 2)
    # from 0.85 on, episode 0's detection misses: FP, FP, TP -> P = 1/3 at R = 1/3 -> 1/9
    assert out["AP@0.85"] == pytest.approx(100 / 9)
    assert out["AP@avg"] == pytest.approx(100 * (7 * 5 / 9 + 3 * 1 / 9) / 10)
