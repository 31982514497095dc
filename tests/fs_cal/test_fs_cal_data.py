"""FS-CAL data: ActivityNet 1.3 / THUMOS'14 annotation parsing (small files written here), feature files,
class splits and episode construction (no query/support leakage, ground truth, fixed test episodes)."""
import json
import os

import numpy as np
import pytest

import train_fixtures as tf_
from data_pipelines.video.annotations import AnnotationError
from data_pipelines.temporal import episodes as ep_lib
from data_pipelines.temporal import sources
from data_pipelines.temporal import annotations as ann_lib
from data_pipelines.temporal.video import Segment

ANET = {"version": "VERSION 1.3", "database": {
    "vid1": {"subset": "training", "duration": 100.0, "url": "",
             "annotations": [{"segment": [10.0, 30.0], "label": "Long jump"},
                             {"segment": [60.0, 70.0], "label": "Long jump"}]},
    "vid2": {"subset": "validation", "duration": 50.0,
             "annotations": [{"segment": [5.0, 20.0], "label": "Long jump"},
                             {"segment": [40.0, 55.0], "label": "Surfing"}]},
    "vid3": {"subset": "testing", "duration": 20.0, "annotations": []},
}}


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_parse_activitynet(tmp_path):
    p = _write(tmp_path / "anet.json", json.dumps(ANET))
    segs = ann_lib.parse_activitynet(p)
    videos = ann_lib.activitynet_videos(p)
    assert sorted(segs) == ["vid1", "vid2", "vid3"]
    assert videos["vid1"] == {"duration": 100.0, "subset": "training"}
    assert segs["vid2"] == [Segment(5.0, 20.0, "Long jump"), Segment(40.0, 55.0, "Surfing")]
    fs_segs, durations = sources.load_annotations("activitynet", p)  # FS-CAL's: training + validation
    assert sorted(fs_segs) == ["vid1", "vid2"] and fs_segs["vid2"] == segs["vid2"]
    assert durations == {"vid1": 100.0, "vid2": 50.0}
    # seconds -> snippets: T / duration (vid2: 25 snippets over 50 s); clipped to [0, T]
    snip = ann_lib.to_snippets(segs["vid2"], 25, snippets_per_second=99.0, duration=videos["vid2"]["duration"])
    assert snip == [Segment(2.5, 10.0, "Long jump"), Segment(20.0, 25.0, "Surfing")]


@pytest.mark.parametrize("bad, match", [
    ({"database": {"v": {"subset": "training", "annotations": []}}}, r"database\['v'\]\.duration"),
    ({"database": {"v": {"duration": 9, "annotations": [{"segment": [5, 2], "label": "x"}]}}}, "end < start"),
    ({"database": {"v": {"duration": 9, "annotations": [{"label": "x"}]}}}, r"annotations\[0\]"),
    ({"database": {"v": {"duration": 9, "annotations": [{"segment": ["a", 2], "label": "x"}]}}}, "'a' is not a time"),
    ({"videos": []}, "'database'"),
])
def test_parse_activitynet_errors_name_file_and_field(tmp_path, bad, match):
    p = _write(tmp_path / "bad.json", json.dumps(bad))
    with pytest.raises(AnnotationError, match=match) as e:
        sources.load_annotations("activitynet", p)
    assert "bad.json" in str(e.value)


def test_parse_thumos14(tmp_path):
    _write(tmp_path / "BaseballPitch_val.txt", "video_validation_0000051 67.5 75.9\nvideo_validation_0000052 1.0 3.0\n")
    _write(tmp_path / "HighJump_val.txt", "video_validation_0000051 10.0 12.5\n\n")
    _write(tmp_path / "Ambiguous_val.txt", "video_validation_0000051 0.0 99.0\nvideo_validation_0000053 1.0 2.0\n")
    _write(tmp_path / "HighJump_test.txt", "video_test_0000004 1.0 2.0\n")
    ann = ann_lib.labelled_segments(ann_lib.parse_thumos14(str(tmp_path), "val"))
    assert sorted(ann) == ["video_validation_0000051", "video_validation_0000052"]  # not 53: only ambiguous
    v = ann["video_validation_0000051"]
    assert v == [Segment(10.0, 12.5, "HighJump"), Segment(67.5, 75.9, "BaseballPitch")]
    # no durations: the feature rate converts seconds to snippets
    assert ann_lib.to_snippets(v, 1000, snippets_per_second=2.0)[0] == Segment(20.0, 25.0, "HighJump")
    # FS-CAL pools the val and test files, without durations
    pooled, durations = sources.load_annotations("thumos14", str(tmp_path))
    assert sorted(pooled) == ["video_test_0000004", *sorted(ann)] and durations == {}
    assert list(ann_lib.parse_thumos14(str(tmp_path), "test")) == ["video_test_0000004"]
    _write(tmp_path / "Diving_val.txt", "video_validation_0000051 4.0\n")
    with pytest.raises(AnnotationError, match=r"Diving_val.txt:1"):
        ann_lib.parse_thumos14(str(tmp_path), "val")
    with pytest.raises(AnnotationError, match=r"Diving_val.txt:1"):
        sources.load_annotations("thumos14", str(tmp_path))
    with pytest.raises(AnnotationError, match="no '<Class>_nope.txt'"):
        ann_lib.parse_thumos14(str(tmp_path), "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnnotationError, match="no <Class>_val.txt or <Class>_test.txt"):
        sources.load_annotations("thumos14", str(tmp_path / "empty"))


def test_feature_files_and_source(tmp_path):
    p = _write(tmp_path / "anet.json", json.dumps(ANET))
    segs = ann_lib.parse_activitynet(p)
    durations = {v: m["duration"] for v, m in ann_lib.activitynet_videos(p).items()}
    fdir = tmp_path / "feats"
    fdir.mkdir()
    np.save(fdir / "vid1.npy", np.arange(50 * 3, dtype=np.float32).reshape(50, 3))  # 2 s per snippet
    np.savez(fdir / "v_vid2.npz", features=np.ones((25, 3), np.float32))  # ActivityNet's v_ prefix
    src = sources.NpyFeatureSource(segs, str(fdir), snippets_per_second=1.0, durations=durations)
    assert src.missing == ["vid3"] and src.feature_dim == 3 and src.num_snippets == {"vid1": 50, "vid2": 25}
    assert Segment(5.0, 15.0, "Long jump", video="vid1") in src.instances
    assert src.features("vid1").shape == (50, 3) and src.features("vid2").dtype == np.float32
    assert src.class_names() == ["Long jump", "Surfing"]
    np.save(fdir / "vid3.npy", np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match="disagree on D"):
        sources.NpyFeatureSource(segs, str(fdir), 1.0, durations=durations)
    np.save(fdir / "vid3.npy", np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"vid3.npy: features must be \[T, D\]"):
        sources.NpyFeatureSource(segs, str(fdir), 1.0, durations=durations)


def test_split_classes(tmp_path):
    names = [f"c{i}" for i in range(10)]
    s = sources.split_classes(names, (0.6, 0.2, 0.2), seed=3)
    assert [len(s[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(names)
    assert s == sources.split_classes(list(reversed(names)), (0.6, 0.2, 0.2), seed=3)
    p = _write(tmp_path / "split.json", json.dumps({"train": ["c0"], "test": ["c1", "c0"]}))
    with pytest.raises(ValueError, match="'c0' is in both"):
        sources.split_classes(names, (1, 0, 0), 0, split_file=p)


class _Source(sources.FeatureSource):
    """Hand-made source: 6 videos of 40 snippets, class 'x' in every video, class 'y' in video 0."""

    def __init__(self):
        self.feature_dim = 2
        self.num_snippets = {f"v{i}": 40 for i in range(6)}
        self.instances = [Segment(5.0 + i, 12.0 + 2 * i, "x", video=f"v{i}") for i in range(6)]
        self.instances += [Segment(20.0, 26.5, "x", video="v0"), Segment(30.0, 34.0, "y", video="v0")]

    def features(self, video):
        i = int(video[1:])
        return np.stack([np.arange(40, dtype=np.float32), np.full(40, i, np.float32)], -1)


def test_episodes_no_leakage_and_ground_truth():
    src = _Source()
    sampler = ep_lib.EpisodeSampler(src, ["x"], shots=5, query_len=24, support_len=4)
    assert sampler.classes == ["x"]
    for k in range(60):
        spec = sampler.sample(np.random.default_rng([0, k]))
        sup_videos = [s[0] for s in spec["supports"]]
        assert spec["query_video"] not in sup_videos  # the query is never a support
        assert len(set(map(tuple, spec["supports"]))) == 5  # distinct support instances
        ws = spec["window_start"]
        assert 0 <= ws <= 40 - 24
        arr = sampler.materialize(spec)
        assert arr["query"].shape == (24, 2) and arr["support"].shape == (5, 4, 2)
        np.testing.assert_array_equal(arr["query"][:, 0], np.arange(ws, ws + 24))  # the window's snippets
        # ground truth: the class-x instances of the query video overlapping the window, clipped to it
        want = sorted([max(i.start, ws) - ws, min(i.end, ws + 24) - ws] for i in src.instances
                      if i.video == spec["query_video"] and i.label == "x" and i.end > ws and i.start < ws + 24)
        assert spec["gt"] == want and len(want) >= 1
        assert arr["gt_mask"].sum() == len(want)
        # supports: the instance's snippets resampled to 4 segments
        v, s, e = spec["supports"][0]
        np.testing.assert_allclose(arr["support"][0, :, 0], np.linspace(int(s), np.ceil(e) - 1, 4), atol=1e-5)
        np.testing.assert_allclose(arr["support"][0, :, 1], int(v[1:]))
    with pytest.raises(ValueError, match="can form a 7-shot episode"):
        ep_lib.EpisodeSampler(src, ["x"], shots=7, query_len=24, support_len=4)


def test_test_episodes_fixed_saved_and_checked(tmp_path):
    sampler = ep_lib.EpisodeSampler(_Source(), ["x"], shots=2, query_len=24, support_len=4)
    eps = ep_lib.make_episodes(sampler, 20, seed=1)
    assert eps == ep_lib.make_episodes(sampler, 20, seed=1)
    assert eps != ep_lib.make_episodes(sampler, 20, seed=2)
    path = str(tmp_path / "episodes.json")
    meta = {"shots": 2, "query_len": 24}
    ep_lib.save_episodes(path, eps, meta)
    assert ep_lib.load_episodes(path, sampler, meta) == eps
    with pytest.raises(ValueError, match="meta.shots is 2, the config asks for 5"):
        ep_lib.load_episodes(path, sampler, {"shots": 5})
    bad = json.loads(open(path).read())
    bad["episodes"][3]["supports"][1][0] = bad["episodes"][3]["query_video"]
    _write(path, json.dumps(bad))
    with pytest.raises(ValueError, match=r"episodes\[3\]: the query video .* is also a support"):
        ep_lib.load_episodes(path, sampler, meta)


def test_fs_cal_task_on_activitynet_files(tmp_path):
    """configs/fs_cal/activitynet.py builds the task from real-format ActivityNet annotations + feature
    files: class split, episodes, the test episode file, and errors naming the config field."""
    from tcvideo.core.registry import get_task
    from tcvideo.core.config import ConfigError
    rng = np.random.default_rng(0)
    db = {}
    fdir = tmp_path / "feats"
    fdir.mkdir()
    for c in range(4):
        for v in range(4):
            vid = f"c{c}v{v}"
            db[vid] = {"subset": "training" if v < 3 else "validation", "duration": 60.0,
                       "annotations": [{"segment": [10.0 + v, 25.0 + v], "label": f"class {c}"}]}
            np.save(fdir / f"v_{vid}.npy", rng.normal(size=(30, 6)).astype(np.float32))
    ann = _write(tmp_path / "anet.json", json.dumps({"database": db}))
    cfg = _load_config("activitynet")
    f = cfg.fs_cal
    assert f.dataset == "activitynet" and f.test_episodes == 1000 and f.nms_threshold == 0.4 and f.top_k == 300
    f.annotations, f.feature_dir = ann, str(fdir)
    f.class_fractions = (0.5, 0.0, 0.5)
    f.shots, f.query_len, f.support_len, f.test_episodes = 2, 16, 4, 6
    f.test_episodes_file = str(tmp_path / "test_episodes.json")
    f.model.update(dict(hidden_dim=8, anchor_scales=(4, 8), num_pseudo_classes=2))
    task = get_task(cfg)
    assert sorted(task.splits["train"] + task.splits["test"]) == [f"class {c}" for c in range(4)]
    assert task.source.feature_dim == 6 and task.num_train_examples == 8
    eps = task.episodes("test")
    assert os.path.exists(f.test_episodes_file) and len(eps) == 6
    assert {e["label"] for e in eps} <= set(task.splits["test"])
    assert all(e["query_video"] not in [s[0] for s in e["supports"]] for e in eps)
    again = get_task(cfg)  # a second run reads the same episodes back from the file
    assert again.episodes("test") == eps
    b = next(task.train_iterator(global_batch_size=4, seed=0, start_step=3, process_index=0, process_count=1))
    assert b["query"].shape == (4, 16, 6) and b["support"].shape == (4, 2, 4, 6) and b["pseudo"].shape == (4,)
    b2 = next(task.train_iterator(global_batch_size=4, seed=0, start_step=3, process_index=1, process_count=2))
    np.testing.assert_array_equal(b2["query"], b["query"][2:])  # process 1 of 2 gets rows 2, 3
    f.feature_dir = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="config.fs_cal.feature_dir"):
        get_task(cfg)
    f.feature_dir = str(fdir)
    f.model.softmax_over = "columns"
    with pytest.raises(ConfigError, match="config.fs_cal.model: softmax_over"):
        get_task(cfg)


def _load_config(name):
    from tcvideo.core.config import load_config_file
    return load_config_file(os.path.join(tf_.REPO, "configs", "fs_cal", f"{name}.py"))


def test_thumos14_protocol_config_on_small_files(tmp_path):
    """configs/fs_cal/thumos14.py builds the task from THUMOS'14 per-class files (val + test pooled) and
    per-video features; the "auto" test episode file lands next to the features."""
    from tcvideo.core.registry import get_task
    from tcvideo.core.config import ConfigError
    cfg = _load_config("thumos14")
    with pytest.raises(ConfigError, match="config.fs_cal.annotations"):
        get_task(cfg)  # no annotations given
    adir, fdir = tmp_path / "ann", tmp_path / "feats"
    adir.mkdir()
    fdir.mkdir()
    rng = np.random.default_rng(1)
    classes = ["BaseballPitch", "CliffDiving", "HighJump", "Diving", "Shotput"]
    for split in ("val", "test"):
        for ci, c in enumerate(classes):
            lines = []
            for v in range(3):
                vid = f"video_{'validation' if split == 'val' else 'test'}_{ci}{v:06d}"
                lines.append(f"{vid} {4.0 + v:.1f} {9.0 + v:.1f}")
                if not (fdir / f"{vid}.npy").exists():
                    np.save(fdir / f"{vid}.npy", rng.normal(size=(60, 8)).astype(np.float32))  # 32 s at 30/16 Hz
            _write(adir / f"{c}_{split}.txt", "\n".join(lines) + "\n")
    f = cfg.fs_cal
    f.annotations, f.feature_dir = str(adir), str(fdir)
    f.shots, f.query_len, f.test_episodes = 1, 32, 5
    f.model.update(dict(hidden_dim=8, anchor_scales=(2, 4, 8), num_pseudo_classes=2))
    task = get_task(cfg)
    assert len(task.source.num_snippets) == 30 and len(task.source.instances) == 30
    inst = [i for i in task.source.instances if i.video == "video_validation_0000000"][0]
    assert (inst.start, inst.end) == (pytest.approx(4.0 * 30 / 16), pytest.approx(9.0 * 30 / 16))
    assert [len(task.splits[k]) for k in ("train", "val", "test")] == [3, 1, 1]
    eps = task.episodes("test")
    assert os.path.exists(fdir / "fs_cal_test_episodes_thumos14_1shot_s0.json") and len(eps) == 5
    assert all(e["query_video"] != e["supports"][0][0] for e in eps)
