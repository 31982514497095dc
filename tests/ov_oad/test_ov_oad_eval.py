"""OV-OAD evaluation sharded over the mesh: the windows of a target go through the 4 simulated devices in
fixed-size global batches (last one padded and masked), each process builds only its share, and the scores /
mAP / mcAP equal those of a 1-device mesh and of the host-side ``score_video`` path."""
import os

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import train_fixtures as tf_
from data_pipelines.temporal import synthetic as syn
from data_pipelines.temporal.video import BACKGROUND, frame_labels
from data_pipelines.temporal.windows import sliding_windows
from tcvideo.core.config import load_config_file
from tcvideo.core.registry import get_task
from tcvideo.core.sharding import process_share, replicated_value, state_shardings
from tcvideo.ov_oad import metrics as oad_metrics, stream as oad_stream, task as task_mod

BATCH = 52  # 4 test videos x 120 frames = 480 windows: 9 full global batches and one with 40 padding rows


def _config():
    c = load_config_file(os.path.join(tf_.REPO, "configs", "ov_oad", "synthetic.py"))
    c.ov_oad.eval.batch_size = BATCH
    return c


def _test_videos(cfg):
    o = cfg.ov_oad
    return syn.make_videos(o.synthetic.test_videos, split="test", classes=tuple(o.synthetic.classes),
                           num_frames=o.synthetic.num_frames, dim=32, noise=o.synthetic.noise, seed=o.synthetic.seed)


def _host_path(task, params, videos, classes):
    """The evaluation as it was: params on the host, every video through ``score_video`` on one device."""
    o = task.config.ov_oad
    vocab = oad_stream.vocabulary(task.mc, params, classes, context_length=o.context_length, prompt=o.eval.prompt)
    s = np.concatenate([oad_stream.score_video(task.mc, params, v.features, vocab, batch_size=o.eval.batch_size)
                        for v in videos])
    y = np.concatenate([frame_labels(v, classes)[0] for v in videos])
    m = oad_metrics.per_frame_map(s, y, class_names=classes)
    c = oad_metrics.per_frame_map(s, y, class_names=classes, calibrated=True)
    return s, m["mAP"], c["mcAP"]


def test_sharded_eval_splits_windows_and_matches_one_device_and_score_video(monkeypatch):
    cfg = _config()
    task = get_task(cfg)
    params = task.init_params()
    classes = [BACKGROUND, *cfg.ov_oad.synthetic.classes]
    videos = _test_videos(cfg)

    seen = []  # every global array the scoring step gets: (windows, mask) per batch

    def recording(local, sharding):
        out = real(local, sharding)
        seen.append(out)
        return out

    real = task_mod.global_array
    monkeypatch.setattr(task_mod, "global_array", recording)
    four = task.evaluate(params)["results"]["synthetic"]
    monkeypatch.setattr(task_mod, "global_array", real)

    windows, masks = seen[0::2], seen[1::2]
    assert len(windows) == 10 and all(w.shape == (BATCH, 16, 32) for w in windows)
    for w in windows + masks:
        shards = w.addressable_shards
        assert len(shards) == 4 and len({s.device for s in shards}) == 4
        assert {s.data.shape[0] for s in shards} == {BATCH // 4}
    m = np.concatenate([np.asarray(x) for x in masks])
    assert m.sum() == 480 and m[:480].all() and not m[480:].any()  # padding only at the end, masked
    # The step saw the windows in frame order: batch k holds frames 52k .. 52k + 51.
    want = np.concatenate([sliding_windows(v.features, 16) for v in videos])
    np.testing.assert_array_equal(np.concatenate([np.asarray(w) for w in windows])[:480], want)

    # Per-frame scores, in frame order, against score_video (batch shapes differ: float rounding only).
    s_host, map_host, mcap_host = _host_path(task, params, videos, classes)
    mesh, sh, placed = task._on_mesh(params, None, None)
    vocab = task.class_vocabulary(placed, sh, mesh, classes)
    s = task.score_frames(placed, sh, mesh, [v.features for v in videos], vocab)
    assert s.shape == (480, 5) and np.isfinite(s).all()
    np.testing.assert_allclose(s, s_host, rtol=1e-5, atol=1e-6)
    assert task.eval_step_compilations() == 1  # the evaluation and score_frames on one mesh: one compilation

    one_mesh = Mesh(np.asarray(jax.devices()[:1]), ("data",))
    one = task.evaluate(params, None, one_mesh)["results"]["synthetic"]
    assert four["frames"] == one["frames"] == 480
    for r in (one, {"mAP": map_host, "mcAP": mcap_host}):
        assert abs(four["mAP"] - r["mAP"]) < 1e-6 and abs(four["mcAP"] - r["mcAP"]) < 1e-6, (four, r)


def test_in_training_eval_keeps_fsdp_params_on_the_mesh():
    """The trainer's call: FSDP-sharded params and their shardings, during_training, max_videos."""
    cfg = _config()
    with cfg.unlocked():
        cfg.ov_oad.eval.max_videos = 2
    task = get_task(cfg)
    params = task.init_params()
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    sh = state_shardings(jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params), mesh,
                         fsdp=True)
    assert any(not s.is_fully_replicated for s in jax.tree_util.tree_leaves(sh))  # some leaves really sharded
    placed = jax.tree_util.tree_map(replicated_value, params, sh)
    r = task.evaluate(placed, sh, mesh, during_training=True)["results"]["synthetic"]
    assert r["videos"] == 2 and r["frames"] == 240
    classes = [BACKGROUND, *cfg.ov_oad.synthetic.classes]
    _, map_host, mcap_host = _host_path(task, params, _test_videos(cfg)[:2], classes)
    assert abs(r["mAP"] - map_host) < 1e-6 and abs(r["mcAP"] - mcap_host) < 1e-6, (r, map_host, mcap_host)


@pytest.mark.parametrize("num_windows,local_batch,process_count",
                         [(480, 26, 2), (13, 4, 2), (1, 8, 2), (0, 8, 2), (101, 7, 3)])
def test_process_share_covers_every_window_once_in_order(num_windows, local_batch, process_count):
    shares = [process_share(num_windows, local_batch, p, process_count) for p in range(process_count)]
    assert len({nb for _, nb in shares}) == 1  # every process runs the same number of steps
    nb = shares[0][1]
    assert all(len(pos) == nb * local_batch for pos, _ in shares)
    valid = [pos[pos >= 0] for pos, _ in shares]
    assert all((pos[len(v):] == -1).all() for (pos, _), v in zip(shares, valid))  # padding only at the end
    np.testing.assert_array_equal(np.concatenate(valid), np.arange(num_windows))  # once each, in order
    if num_windows >= process_count * local_batch:
        assert all(len(v) > 0 for v in valid)  # nobody idles while another scores everything


def test_two_processes_build_their_rows_and_assemble_in_frame_order():
    """Simulated process_count=2: each builds only its rows of VideoWindows; gathered and assembled they are
    every video's sliding_windows, in order (videos of different lengths, one shorter than the window)."""
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(t, 8)).astype(np.float32) for t in (23, 5, 17)]
    win = oad_stream.VideoWindows(feats, 6, 8)
    assert len(win) == 45
    per, pos = [], []
    for p in range(2):
        share, _ = process_share(len(win), 4, p, 2)
        rows = win.rows(share)
        assert not rows[share < 0].any()  # padding rows are zeros
        per.append(rows)
        pos.append(share)
    got = task_mod.assemble_frames(per, pos, len(win))
    np.testing.assert_array_equal(got, np.concatenate([sliding_windows(f, 6) for f in feats]))
