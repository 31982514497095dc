"""Train/eval iterators: determinism, exact resume, multi-host sharding, eval padding,
the seeded few-shot draw, and the synthetic dataset itself (split files: test_split_files.py)."""
import itertools

import numpy as np
import pytest

from data_pipelines.video import DATASETS, get_dataset, register_dataset, splits, synthetic
from data_pipelines.video.input_pipeline import dataset_info, default_data_config, make_eval_iterator, make_train_iterator
from tcvideo.core.sharding import process_share


def _cfg(**kw):
    c = default_data_config()
    c.num_frames, c.input_size = 4, 24
    c.synthetic.num_classes, c.synthetic.videos_per_class, c.synthetic.test_videos_per_class = 6, 4, 3
    c.synthetic.num_frames, c.synthetic.resolution = 8, (32, 32)
    for k, v in kw.items():
        c[k] = v
    return c


def _take(it, n):
    return list(itertools.islice(it, n))


def test_train_batches_shapes_and_determinism():
    c = _cfg()
    a = _take(make_train_iterator(c, global_batch_size=4, seed=3), 3)
    b = _take(make_train_iterator(c, global_batch_size=4, seed=3), 3)
    d = _take(make_train_iterator(c, global_batch_size=4, seed=4), 3)
    x = a[0]
    assert x["video"].shape == (4, 4, 24, 24, 3) and x["video"].dtype == np.float32
    assert x["label"].dtype == np.int32 and x["targets"].shape == (4, 6)
    np.testing.assert_allclose(x["targets"].sum(1), 1.0, atol=1e-5)
    for p, q in zip(a, b):
        for k in p:
            np.testing.assert_array_equal(p[k], q[k])
    assert not np.array_equal(a[0]["video"], d[0]["video"])


def test_resume_is_exact_and_epochs_cover_every_example():
    c = _cfg()
    n = dataset_info(c)["num_examples"]["train"]  # 24 = 6 epochs of 4-example batches
    # Mixup drawn per group of 2 clips (the per-device micro-batch): still a function of (seed, step).
    full = _take(make_train_iterator(c, global_batch_size=4, seed=0, mixup_group_size=2), 9)
    resumed = _take(make_train_iterator(c, global_batch_size=4, seed=0, start_step=5, mixup_group_size=2), 4)
    for p, q in zip(full[5:], resumed):
        for k in p:
            np.testing.assert_array_equal(p[k], q[k])
    # Without mixup/augment the label stream shows each epoch is a permutation of all examples.
    labels = np.concatenate([b["label"] for b in full[:6]])
    assert len(labels) == n and np.bincount(labels).tolist() == [4] * 6


def test_multi_process_shards_are_the_global_batch():
    c = _cfg(mixup_alpha=0.0, cutmix_alpha=0.0)  # mixup pairs within a process batch
    whole = _take(make_train_iterator(c, global_batch_size=4, seed=1), 2)
    parts = [_take(make_train_iterator(c, global_batch_size=4, seed=1, process_index=i, process_count=2), 2)
             for i in range(2)]
    for s in range(2):
        np.testing.assert_array_equal(np.concatenate([parts[0][s]["video"], parts[1][s]["video"]]), whole[s]["video"])
        np.testing.assert_array_equal(np.concatenate([parts[0][s]["label"], parts[1][s]["label"]]), whole[s]["label"])


@pytest.mark.parametrize("clips,crops", [(1, 1), (2, 1), (4, 3)])
def test_eval_every_example_once_with_padding(clips, crops):
    c = _cfg()
    n = dataset_info(c)["num_examples"]["test"]  # 18
    seen = []
    for pi in range(2):
        batches = list(make_eval_iterator(c, split="test", batch_size=8, num_clips=clips, num_crops=crops,
                                          process_index=pi, process_count=2))
        assert len(batches) == 3  # ceil(ceil(18 / 2) / 4): same count on every process
        for b in batches:
            assert b["video"].shape == (4, clips * crops, 4, 24, 24, 3) and b["mask"].dtype == bool
            seen.extend(b["label"][b["mask"]].tolist())
    assert len(seen) == n
    src = get_dataset("synthetic", config=c).split("test")
    assert seen == src.labels.tolist()
    # Deterministic views.
    again = next(make_eval_iterator(c, split="test", batch_size=8, num_clips=clips, num_crops=crops, process_count=2))
    first = next(make_eval_iterator(c, split="test", batch_size=8, num_clips=clips, num_crops=crops, process_count=2))
    np.testing.assert_array_equal(again["video"], first["video"])


def test_eval_process_share_bounds():
    for n, b, p in [(1, 4, 1), (7, 2, 3), (18, 4, 2), (10, 5, 2), (3, 2, 4)]:
        shards = [process_share(n, b, i, p, min_batches=1) for i in range(p)]
        assert len({nb for _, nb in shards}) == 1
        pos = np.concatenate([s for s, _ in shards])
        assert sorted(pos[pos >= 0].tolist()) == list(range(n))


def test_few_shot_subset_reproducible_and_sized():
    labels = np.repeat(np.arange(5), 20)
    a = splits.few_shot_indices(labels, 4, seed=7)
    assert len(a) == 20 and np.bincount(labels[a]).tolist() == [4] * 5
    np.testing.assert_array_equal(a, splits.few_shot_indices(labels, 4, seed=7))
    assert not np.array_equal(a, splits.few_shot_indices(labels, 4, seed=8))
    with pytest.raises(ValueError):
        splits.few_shot_indices(labels, 21, seed=0)
    c = _cfg(few_shot_k=2)
    info = dataset_info(c)
    assert info["num_examples"] == {"train": 12, "test": 18}
    labels = np.concatenate([b["label"] for b in _take(make_train_iterator(c, global_batch_size=4, seed=0), 3)])
    assert np.bincount(labels, minlength=6).tolist() == [2] * 6


def test_synthetic_deterministic_and_temporal_pairs_are_reverses():
    names = ["moving left", "moving right", "growing", "shrinking", "appearing", "disappearing", "red circle"]
    v1, l1 = synthetic.generate(names, "train", 2, 16, 32, 48, seed=5)
    v2, _ = synthetic.generate(list(names), "train", 2, 16, 32, 48, seed=5)
    np.testing.assert_array_equal(v1, v2)
    assert v1.shape == (14, 16, 32, 48, 3) and v1.dtype == np.uint8
    assert not np.array_equal(v1, synthetic.generate(names, "test", 2, 16, 32, 48, seed=5)[0])

    def centroid_x(v):
        m = v.astype(float).max(-1) > 100
        return [np.nonzero(f)[1].mean() if f.any() else np.nan for f in m]

    def area(v):
        return (v.astype(float).max(-1) > 100).sum(axis=(1, 2))

    left, right = v1[l1 == 0][0], v1[l1 == 1][0]
    assert centroid_x(left)[0] > centroid_x(left)[-1] and centroid_x(right)[0] < centroid_x(right)[-1]
    grow, shrink = v1[l1 == 2][0], v1[l1 == 3][0]
    assert area(grow)[0] < area(grow)[-1] and area(shrink)[0] > area(shrink)[-1]
    appear, disappear = v1[l1 == 4][0], v1[l1 == 5][0]
    assert appear[0].std() < appear[-1].std() and disappear[0].std() > disappear[-1].std()
    red = v1[l1 == 6][0].reshape(-1, 3).astype(int)
    assert ((red[:, 0] > 150) & (red[:, 1] < 100)).any()


def test_synthetic_colour_classes_differ_only_across_frames():
    """'steady colour' keeps the shape's colour; 'colour change' switches it at frame T/2; the colours
    of single frames are spread alike in both classes (only comparing frames separates them)."""
    videos, labels = synthetic.generate(list(synthetic.CONSISTENCY_CLASSES), "train", 24, 16, 36, 36, seed=0)

    def colour(frame):  # the shape's colour: the mean of the brightest channel-max pixels
        px = frame.reshape(-1, 3).astype(float)
        return px[px.max(-1) >= np.percentile(px.max(-1), 95)].mean(0)

    def jump(v):
        return float(np.abs(colour(v[7]) - colour(v[8])).max())

    def within(v):
        return float(np.abs(colour(v[0]) - colour(v[7])).max())

    steady, change = videos[labels == 0], videos[labels == 1]
    assert max(jump(v) for v in steady) < 30
    assert min(jump(v) for v in change) > 60
    assert max(within(v) for v in change) < 30  # one colour per half
    # first-frame colours: both classes draw from the same palette
    nearest = lambda c: int(np.argmin([np.abs(c - np.array(p)).sum() for p in synthetic.COLORS.values()]))
    assert len({nearest(colour(v[0])) for v in steady}) >= 4
    assert len({nearest(colour(v[0])) for v in change}) >= 4


def test_registry():
    assert "synthetic" in DATASETS or get_dataset("synthetic").class_names
    assert "video_folder" in DATASETS

    @register_dataset("tiny_test_ds")
    def _tiny(config=None, **kw):
        return get_dataset("synthetic", num_classes=2, videos_per_class=2, num_frames=4, resolution=(16, 16))

    assert get_dataset("tiny_test_ds").class_names == ["moving left", "moving right"]
    with pytest.raises(KeyError):
        get_dataset("no_such_dataset")
