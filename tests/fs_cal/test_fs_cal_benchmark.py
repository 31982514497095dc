"""The common-action benchmark's ActivityNet files (data_pipelines/temporal/cal_benchmark.py): small files
written here in its format (a pickled list of 6-entry numpy object arrays, ActivityNet-style GT JSON), read
by the restricted unpickler, mapped to per-video features, and evaluated by `tcvideo eval` (1 and 5 shots)
on exactly those episodes; a pickle holding a class is refused naming the file."""
import json
import os
import pickle

import numpy as np
import pytest

import train_fixtures as tf_
from data_pipelines.temporal import cal_benchmark as cb
from tcvideo.core.config import ConfigError, load_config_file
from tcvideo.core.safe_pickle import UnsafePickleError

CLASSES = ["jump", "run", "swim", "kick", "row", "ski"]  # "jump" is the benchmark's (test) class here
VIDEO_LEN = 90  # snippets at 1 per second = 270 benchmark frames


def _entry(video, subset, start, end, wins, query_id=None):
    """One entry of the benchmark's pickles (the R-C3D roidb fields it carries, frames at 3 fps)."""
    e = {"wins": np.asarray(wins, np.float64), "durations": np.asarray([w[1] - w[0] for w in wins], np.float64),
         "gt_classes": np.ones(len(wins), np.int64), "flipped": False,
         "frames": np.asarray([[0, start, end, 1]], np.int64),
         "fg_name": f"dataset/activitynet13/train_val_frames_3/{subset}/{video}",
         "bg_name": f"dataset/activitynet13/train_val_frames_3/{subset}/{video}"}
    if query_id:
        e["video_id"] = query_id
    return e


def _instance(c, v):
    """Seconds of the one instance of class c in its video v."""
    return 10.0 + 5 * v + c, 30.0 + 5 * v + c


def _episode(k, query_end, query_start=3):
    """Query: video jump_k, frames [query_start, query_end); supports: the instances of the other jump videos."""
    s, e = _instance(0, k)
    q = _entry(f"jump_{k}", "validation", query_start, query_end, [[s * 3 - query_start, e * 3 - query_start]],
               f"query_{k:05d}")
    sups = []
    for j in [j for j in range(4) if j != k] * 2:
        a, b = _instance(0, j)
        sups.append(_entry(f"jump_{j}", "training", int(a * 3), int(b * 3), [[0, (b - a) * 3]]))
    arr = np.empty(6, object)
    arr[:] = [q] + sups[:5]
    return arr


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    fdir = root / "feats"
    fdir.mkdir()
    db = {}
    for c, name in enumerate(CLASSES):
        for v in range(6):
            vid = f"{name}_{v}"
            s, e = _instance(c, v)
            db[vid] = {"subset": "training" if v % 2 else "validation", "duration": float(VIDEO_LEN),
                       "annotations": [{"segment": [s, e], "label": name}]}
            np.save(fdir / f"v_{vid}.npy", rng.normal(size=(VIDEO_LEN, 6)).astype(np.float32))
    ann = root / "anet.json"
    ann.write_text(json.dumps({"version": "VERSION 1.3", "database": db}))
    episodes = [_episode(0, 240, 4), _episode(1, 120), _episode(2, 240)]  # query 1: 39 snippets, a short bucket
    with open(root / "test_data.pkl", "wb") as f:
        pickle.dump(episodes, f, protocol=3)
    gt = {"taxonomy": "", "version": "", "database": {}}
    for k, ep in enumerate(episodes):
        w = ep[0]["wins"].tolist()
        gt["database"][f"query_{k:05d}"] = {"duration": w[0][1] - w[0][0], "subset": "trainval",
                                            "annotations": [{"segment": w[0], "label": "c1"}]}
    gt["database"]["query_00002"]["annotations"].append({"segment": [1600.0, 1700.0], "label": "c1"})
    (root / "test_gt.json").write_text(json.dumps(gt))
    return {"root": root, "feature_dir": str(fdir), "annotations": str(ann), "test_file": str(root / "test_data.pkl"),
            "gt_file": str(root / "test_gt.json")}


def test_episode_and_gt_files_read_and_mapped_to_features(bench):
    eps = cb.load_episode_file(bench["test_file"], bench["gt_file"])
    assert [e["id"] for e in eps] == ["query_00000", "query_00001", "query_00002"]
    s0, e0 = _instance(0, 0)
    assert eps[0]["query"] == {"video": "jump_0", "start": 4, "end": 240}
    assert eps[0]["gt"] == [[s0 * 3 - 4, e0 * 3 - 4]]  # frames relative to the query start
    assert len(eps[2]["gt"]) == 1  # the JSON's instance from frame 1600 on is dropped, as its evaluator does
    assert cb.load_gt_file(bench["gt_file"])["query_00002"][0] == eps[2]["gt"][0]
    assert [s["video"] for s in cb.supports_for(eps[0], 5)] == ["jump_1", "jump_2", "jump_3", "jump_1", "jump_2"]
    # the benchmark loader's i % 5: its 5th support is the untrimmed query itself
    assert cb.supports_for(eps[0], 5, "reference_loader")[-1] == eps[0]["query"]
    assert cb.supports_for(eps[0], 1, "reference_loader") == cb.supports_for(eps[0], 1)
    num = {f"{c}_{v}": VIDEO_LEN for c in CLASSES for v in range(6)}
    specs = cb.to_specs(eps, num, shots=5, snippets_per_second=1.0)
    sp = specs[0]
    # frames [4, 240) at 3 fps: seconds [1.33, 80), snippets [1, 80)
    assert (sp["query_video"], sp["window_start"], sp["window_len"]) == ("jump_0", 1, 79)
    np.testing.assert_allclose(np.asarray(sp["gt"]) + sp["window_start"], [[s0, e0]])  # seconds = snippets here
    a1, b1 = _instance(0, 1)
    assert sp["supports"][0][0] == "jump_1"
    np.testing.assert_allclose(sp["supports"][0][1:], [a1, b1])
    assert specs[1]["window_len"] == 39
    # twice the snippet rate: twice the snippets
    sp2 = cb.to_specs(eps, {k: 2 * VIDEO_LEN for k in num}, shots=1, snippets_per_second=2.0)[0]
    np.testing.assert_allclose(np.asarray(sp2["gt"]) + sp2["window_start"], [[2 * s0, 2 * e0]])
    with pytest.raises(ValueError, match="jump_0"):
        cb.to_specs(eps, {k: v for k, v in num.items() if k != "jump_0"}, shots=5, snippets_per_second=1.0)


class NotData:  # a class in a pickle: restricted unpickling refuses it
    pass


def test_pickle_holding_a_class_is_refused_naming_the_file(bench, tmp_path):
    ep = _episode(0, 240)
    ep[1]["flipped"] = NotData()
    path = tmp_path / "evil_test_data.pkl"
    with open(path, "wb") as f:
        pickle.dump([ep], f, protocol=3)
    with pytest.raises(UnsafePickleError, match=r"evil_test_data\.pkl.*NotData"):
        cb.load_episode_file(str(path))
    cfg = _config(bench, **{"fs_cal.benchmark.test_file": str(path)})
    with pytest.raises(ConfigError, match=r"config\.fs_cal\.benchmark\.test_file: .*evil_test_data\.pkl"):
        _task(cfg)


def _config(bench, **extra):
    over = {"fs_cal.annotations": bench["annotations"], "fs_cal.feature_dir": bench["feature_dir"],
            "fs_cal.benchmark.test_file": bench["test_file"], "fs_cal.benchmark.gt_file": bench["gt_file"],
            "fs_cal.query_len": 80, "fs_cal.query_buckets": (40, 80), "fs_cal.support_len": 4,
            "fs_cal.class_fractions": (0.5, 0.0, 0.5), "fs_cal.shots": 1, "fs_cal.val_episodes": 2,
            "fs_cal.test_episodes_file": "", "fs_cal.model.hidden_dim": 8, "fs_cal.model.anchor_scales": (4, 16),
            "fs_cal.model.dynamics_kernels": (1, 2), "fs_cal.model.num_pseudo_classes": 2,
            "eval.batch_size": 4, "batch_size": 4, "per_device_batch_size": 4}
    over.update(extra)
    return load_config_file(os.path.join(tf_.REPO, "configs", "fs_cal", "activitynet.py"), over)


def _task(cfg):
    from tcvideo.core.registry import get_task
    return get_task(cfg)


def test_config_errors_name_the_field_before_compute(bench, tmp_path):
    with pytest.raises(ConfigError, match=r"config\.fs_cal\.benchmark\.gt_file: no such file"):
        _task(_config(bench, **{"fs_cal.benchmark.gt_file": str(tmp_path / "none.json")}))
    with pytest.raises(ConfigError, match=r"config\.fs_cal\.benchmark\.test_file: no such file"):
        _task(_config(bench, **{"fs_cal.benchmark.test_file": str(tmp_path / "none.pkl")}))
    with pytest.raises(ConfigError, match=r"config\.fs_cal\.query_len: 64 .*79 snippets"):
        _task(_config(bench, **{"fs_cal.query_len": 64, "fs_cal.query_buckets": (32, 64)}))
    bad = tmp_path / "gt.json"
    bad.write_text(json.dumps({"database": {"query_00000": {"annotations": []}}}))
    with pytest.raises(ConfigError, match=r"config\.fs_cal\.benchmark\.gt_file: .*query_00001"):
        _task(_config(bench, **{"fs_cal.benchmark.gt_file": str(bad)}))


@pytest.mark.parametrize("shots", [1, 5])
def test_tcvideo_eval_runs_exactly_the_benchmark_episodes(bench, tmp_path, shots):
    from tcvideo.core import train
    cfg = _config(bench, **{"fs_cal.shots": shots})
    task = _task(cfg)
    eps = task.episodes("test")
    assert [e["benchmark_id"] for e in eps] == ["query_00000", "query_00001", "query_00002"]
    assert {e["label"] for e in eps} == {"jump"}  # matched through the annotations
    assert "jump" in task.splits["test"] and "jump" not in task.splits["train"]  # never a training class
    assert [task.samplers["test"].bucket(e) for e in eps] == [80, 40, 80]
    assert all(len(e["supports"]) == shots for e in eps)
    out = train.evaluate_workdir(cfg, str(tmp_path / "wd"))
    res = out["fine_tuned"]["results"][f"activitynet_benchmark_{shots}shot"]
    assert res["num_episodes"] == 3
    assert 0.0 <= res["AP@avg"] <= res["AP@0.5"] <= 100.0
    assert res["num_classes"] == 1 and "mAP@0.5" in res  # tcvideo's per-class mean, under its own name


def test_training_file_read(tmp_path):
    """train_data.pkl: a dict class -> R-C3D windows with all their instances (frames relative to the window)."""
    data = {"jump": [_entry("jump_0", "training", 0, 768, [[30.0, 90.0], [300.0, 330.0]])],
            "run": [_entry("run_1", "validation", 768, 1536, [[0.0, 12.0]])]}
    path = tmp_path / "train_data.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=3)
    out = cb.load_training_file(str(path))
    assert sorted(out) == ["jump", "run"]
    assert out["jump"][0] == {"video": "jump_0", "start": 0, "end": 768, "wins": [[30.0, 90.0], [300.0, 330.0]]}
    assert out["run"][0]["start"] == 768
    with open(path, "wb") as f:
        pickle.dump([1, 2], f, protocol=3)
    with pytest.raises(cb.BenchmarkFormatError, match=r"train_data\.pkl: expected a dict"):
        cb.load_training_file(str(path))
