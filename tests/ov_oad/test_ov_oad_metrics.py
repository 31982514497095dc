"""Per-frame AP against sklearn, calibrated AP against a hand computation, mAP with background excluded and
the ambiguous-window drop."""
import numpy as np
from sklearn.metrics import average_precision_score

from tcvideo.ov_oad import metrics as m


def test_ap_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    for trial in range(5):
        y = rng.integers(0, 2, 200)
        s = np.round(rng.random(200) + 0.3 * y, 1)  # rounding makes many ties
        np.testing.assert_allclose(m.average_precision(s, y), average_precision_score(y, s), rtol=1e-12)


def test_calibrated_ap_by_hand():
    # Scores descending: labels 1, 0, 1, 0, 0, 0 -> 2 positives, 4 negatives, w = 2.
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    y = np.array([1, 0, 1, 0, 0, 0])
    # At rank 1: TP=1, FP=0 -> cPrec = 1. At rank 3: TP=2, FP=1 -> 2 / (2 + 1/2) = 0.8.
    np.testing.assert_allclose(m.calibrated_average_precision(s, y), (1.0 + 0.8) / 2)
    # Plain AP of the same ranking: (1 + 2/3) / 2.
    np.testing.assert_allclose(m.average_precision(s, y), (1.0 + 2 / 3) / 2)
    # With as many positives as negatives (w = 1) cAP equals AP.
    y2 = np.array([1, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(m.calibrated_average_precision(s, y2), m.average_precision(s, y2))


def test_calibrated_ap_against_a_loop():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100) * (rng.random(100) < 0.4)
    s = rng.random(100) + 0.5 * y  # distinct scores
    order = np.argsort(-s)
    w = (y == 0).sum() / y.sum()
    tp = fp = 0
    acc = 0.0
    for i in order:
        tp += y[i]
        fp += 1 - y[i]
        if y[i]:
            acc += tp / (tp + fp / w)
    np.testing.assert_allclose(m.calibrated_average_precision(s, y), acc / y.sum(), rtol=1e-12)


def test_map_excludes_background_and_drops_ambiguous_windows():
    rng = np.random.default_rng(2)
    labels = np.zeros((50, 3))
    cls = rng.integers(0, 3, 50)
    labels[np.arange(50), cls] = 1
    scores = rng.random((50, 3))
    out = m.per_frame_map(scores, labels, class_names=["bg", "a", "b"])
    want = 100 * np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in (1, 2)])
    np.testing.assert_allclose(out["mAP"], want)
    assert set(out["per_class"]) == {"a", "b"}
    amb = np.zeros(50, bool)
    amb[10] = True
    keep = m.ambiguous_window_mask(amb, window=4)
    np.testing.assert_array_equal(np.nonzero(~keep)[0], [10, 11, 12, 13])
    out2 = m.per_frame_map(scores, labels, valid=keep)
    want2 = 100 * np.mean([average_precision_score(labels[keep, c], scores[keep, c]) for c in (1, 2)])
    np.testing.assert_allclose(out2["mAP"], want2)
    cal = m.per_frame_map(scores, labels, calibrated=True)
    np.testing.assert_allclose(cal["mcAP"], 100 * np.mean([m.calibrated_average_precision(scores[:, c], labels[:, c])
                                                           for c in (1, 2)]))
