"""`tcvideo predict` / `tcvideo visualize` on generated mp4 files, with a tiny random TC-CLIP.

Checks: the eval-pipeline preprocessing is the one of make_eval_iterator; batching several files
gives the same probabilities as one at a time; unreadable files are reported and skipped; a training
workdir loads like a model dir; the seed -> context-token tracing agrees with the merges themselves.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.video import synthetic
from data_pipelines.video.video_io import write_mp4
from tcvideo import cli, notebook
from tcvideo.classification import predict
from tcvideo.tc_clip import visualize
from tcvideo.tc_clip import context_summary as cs

CLASSES = ["moving left", "moving right", "growing", "shrinking"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    model_dir = notebook.random_model_dir(str(d / "model"), seed=1)
    rng = np.random.default_rng(0)
    paths = {}
    for name in ("moving left", "growing"):
        paths[name] = str(d / (name.replace(" ", "_") + ".mp4"))
        write_mp4(paths[name], synthetic.render_video(name, rng, 16, 48, 64))
    bad = d / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    return {"dir": d, "model": model_dir, "videos": paths, "bad": str(bad), "missing": str(d / "missing.mp4")}


@pytest.fixture(scope="module")
def model(files):
    """The model of files['model'] loaded once (each load compiles its own forward pass)."""
    return predict.load_model(files["model"])


def test_eval_views_match_eval_iterator():
    """predict's preprocessing is make_eval_iterator's (same sampling, resize, crop, normalisation)."""
    from data_pipelines.video.input_pipeline import make_eval_iterator
    cfg = notebook.load_config("configs/demo.py")
    data = cfg.data
    per_class = -(-4 // len(data.synthetic.classes))  # at least the 4 videos of one batch
    data.synthetic.test_videos_per_class = per_class
    batch = next(make_eval_iterator(data, split="test", batch_size=4, num_clips=2))
    videos, _ = synthetic.generate(data.synthetic.classes, "test", per_class, data.synthetic.num_frames,
                                   *data.synthetic.resolution, data.synthetic.seed)
    for i in range(4):
        np.testing.assert_allclose(predict.eval_views(videos[i], data, num_clips=2), batch["video"][i], atol=1e-5)


def test_predict_cli_batches_and_skips(files, model, capsys):
    vids = list(files["videos"].values())
    rc = cli.main(["predict", *vids, files["bad"], files["missing"], "--checkpoint", files["model"],
                   "--classes", ",".join(CLASSES), "--top-k", "3", "--json"])
    captured = capsys.readouterr()
    assert rc == 1  # some files were skipped
    out = json.loads(captured.out)
    assert [p["path"] for p in out["predictions"]] == vids
    assert {s["path"]: s["reason"].split(":")[0] for s in out["skipped"]} == {files["bad"]: "open_failed",
                                                                              files["missing"]: "missing"}
    assert "skipped" in captured.err and files["bad"] in captured.err
    # Batched probabilities equal one-file-at-a-time ones, and the ranking is sorted.
    for p in out["predictions"]:
        probs = [e["probability"] for e in p["top_k"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        single, fails = predict.predict_files(model, [p["path"]], CLASSES, top_k=3)
        assert not fails
        np.testing.assert_allclose([x for _, x in single[0].ranked], probs, rtol=1e-5, atol=1e-6)
        assert [c for c, _ in single[0].ranked] == [e["class"] for e in p["top_k"]]
    # The probabilities are the softmax of the classifier's logits on the eval views.
    views = predict.load_video(vids[0], model.data)
    logits = model.classifier.logits(views, CLASSES)[0]
    ref = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(sorted(ref, reverse=True)[:3], [e["probability"] for e in out["predictions"][0]["top_k"]],
                               rtol=1e-5)


def test_predict_text_output_classes_file_and_errors(files, capsys, tmp_path):
    names = tmp_path / "classnames.csv"
    names.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(CLASSES)))
    vid = files["videos"]["growing"]
    assert predict.main([vid, "--checkpoint", files["model"], "--classes-file", str(names), "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == vid and len(out) == 3 and out[1].strip().startswith("1.")
    assert predict.main([vid, "--checkpoint", str(tmp_path), "--classes", "a,b"]) == 2
    assert "neither a model directory" in capsys.readouterr().err
    assert predict.main([vid, "--checkpoint", files["model"]]) == 2  # a model dir does not know its classes
    assert "--classes" in capsys.readouterr().err


def test_workdir_checkpoint(files, model, tmp_path):
    """A training workdir (config.json + orbax checkpoints/) loads with its training classes and eval settings."""
    from tcvideo.core import train
    from tcvideo.core import checkpoints
    from tcvideo.core import model_dir as store
    cfg = notebook.load_config("configs/demo.py")
    cfg.async_checkpointing = False
    cfg.data.synthetic.classes = tuple(CLASSES)  # the random model's classes and frames, not the demo's
    cfg.data.num_frames = notebook.DEMO_MODEL["num_frames"]
    params, _ = store.load_model(files["model"])
    train.save_resolved_config(cfg, str(tmp_path))
    latest, best = checkpoints._managers(str(tmp_path), cfg)
    checkpoints._save(latest, {"params": params, "step": np.int32(7)}, 7)
    latest.wait_until_finished()
    latest.close()
    best.close()
    from_workdir = predict.load_model(str(tmp_path))
    assert from_workdir.source == "workdir" and from_workdir.class_names == CLASSES
    assert from_workdir.data.input_size == 32 and from_workdir.data.normalization == "imagenet"
    vid = files["videos"]["moving left"]
    a, _ = predict.predict_files(from_workdir, [vid], CLASSES)
    b, _ = predict.predict_files(model, [vid], CLASSES)
    np.testing.assert_allclose([p for _, p in a[0].ranked], [p for _, p in b[0].ranked], rtol=1e-5)


@jax.jit
def _merge_one_hots(x):
    """Bipartite summary of x [21, 6] (k 5, r 4) and the same merges applied to one one-hot per token."""
    ctx, sizes, plans = cs.bipartite_summary(x, 5, 4)
    onehot, size = jnp.eye(x.shape[0]), jnp.ones((x.shape[0], 1))
    for p in plans:
        onehot, size = cs.apply_plan(p, onehot, size)
    return ctx, sizes, plans, onehot


def test_seed_to_context_matches_merges():
    """Tracing the merge plans gives exactly the seeds summed into each context token."""
    x = jax.random.normal(jax.random.PRNGKey(0), (21, 6))
    ctx, sizes, plans, onehot = jax.device_get(_merge_one_hots(x))
    assert len(plans) >= 3  # several steps, so the tracing composes index maps
    assign = visualize.seed_to_context(plans, 21)
    assert assign.min() == 0 and assign.max() == 4
    np.testing.assert_array_equal(np.bincount(assign, minlength=5), sizes)
    # Column m of the merged one-hots is nonzero exactly in row assign[m] (each seed lands in one token).
    np.testing.assert_array_equal(np.argmax(onehot, axis=0), assign)
    np.testing.assert_array_equal((onehot > 0).sum(axis=0), np.ones(21))
    np.testing.assert_allclose(onehot @ np.asarray(x), ctx, rtol=1e-5, atol=1e-6)


def test_visualize(files, model, capsys):
    out = str(files["dir"] / "viz")
    cmap, paths = visualize.visualize_video(model, files["videos"]["moving left"], out)
    assert paths["overview"] == os.path.join(out, "overview.png")
    names = set(os.listdir(out))
    assert {"overview.png", "context_tokens.gif", "context_tokens.json"} <= names
    assert {f"frame_{t:02d}.png" for t in range(8)} <= names
    from PIL import Image
    with Image.open(os.path.join(out, "context_tokens.gif")) as gif:
        assert gif.n_frames == 8
    with open(os.path.join(out, "context_tokens.json")) as f:
        m = json.load(f)
    seeds, ctx = np.array(m["seed_index"]), np.array(m["seed_context"])
    assert seeds.shape == ctx.shape == (8, 4)  # int(16 patches * 0.3) = 4 seeds per frame
    np.testing.assert_array_equal(np.bincount(ctx.ravel(), minlength=8), m["context_sizes"])
    # Seeds are each frame's top patches by CLS attention.
    att = cmap.cls_attention.reshape(8, -1)
    for t in range(8):
        assert set(cmap.seed_index[t]) == set(np.argsort(-att[t], kind="stable")[:4])
    assert cmap.frames.dtype == np.uint8 and cmap.frames.shape == (8, 32, 32, 3)
    # A layer that makes no context tokens is refused with the valid ones named.
    with pytest.raises(ValueError, match="made at layers"):
        visualize.context_token_map(model, predict.load_video(files["videos"]["growing"], model.data)[0], layer=5)
    assert cli.main(["visualize", files["bad"], "--checkpoint", files["model"], "--out", out]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_clip_model_dir_is_zero_shot_clip(files, tmp_path):
    """A converted CLIP dir predicts as CLIP: mean of frame embeddings vs 'a photo of a {class}.' prompts."""
    from tcvideo.core import model_dir as store
    from tcvideo.clip import model as clip_lib
    from tcvideo.classification.prompts import tokenize_prompts
    cfg = clip_lib.get_config("tiny")
    params = clip_lib.init_params(cfg, jax.random.PRNGKey(3))
    store.save_model(str(tmp_path / "clip"), params, {"model": "clip", "config": cfg.to_dict()})
    model = predict.load_model(str(tmp_path / "clip"), num_frames=4)
    assert model.source == "model_dir:clip" and model.data.normalization == "clip" and model.config.num_frames == 4
    vid = files["videos"]["moving left"]
    pred, _ = predict.predict_files(model, [vid], CLASSES, top_k=4)
    clip = clip_lib.CLIP(cfg)

    @jax.jit
    def clip_probs(p, video, ids):
        v = clip_lib.l2_normalize(clip.apply({"params": p}, video, method="encode_video").mean(axis=1))
        t = clip_lib.l2_normalize(clip.apply({"params": p}, ids, method="encode_text"))
        return jax.nn.softmax(jnp.exp(p["logit_scale"]) * v @ t.T, axis=-1)

    video = predict.load_video(vid, model.data)  # [1, 4, 32, 32, 3]
    ref = np.asarray(clip_probs(params, video, tokenize_prompts(CLASSES, cfg.context_length, "a photo of a")))[0]
    np.testing.assert_allclose(dict(pred[0].ranked)[CLASSES[0]], ref[0], rtol=1e-4)
    np.testing.assert_allclose(sorted(ref, reverse=True), [p for _, p in pred[0].ranked], rtol=1e-4)
