"""`tcvideo predict`, `tcvideo eval --checkpoint` and `tcvideo visualize` on a training workdir of a model
family other than TC-CLIP (a tiny VicTR): the workdir's own family and config are used, not TC-CLIP's.

The workdir is written as the trainer writes one (``save_resolved_config``: config.json; orbax
checkpoints/) without running train steps: compiling VicTR's train step would triple this file's time,
and tests/victr trains through the CLI already.
"""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from absl import flags

import train_fixtures as tf_
from data_pipelines.video import synthetic
from data_pipelines.video.video_io import write_mp4
from tcvideo import cli
from tcvideo.classification import predict
from tcvideo.core import checkpoints, train
from tcvideo.core.checkpoints import load_checkpoint_params

CLASSES = ["moving left", "moving right", "growing", "shrinking"]  # tf_.tiny_config's synthetic classes


def _victr_config() -> ml_collections.ConfigDict:
    """tests/victr's tiny VicTR training config (one layer per tower, 16 px frames)."""
    from tcvideo.victr.family import victr_config_defaults
    c = tf_.tiny_config("vifi_clip")
    c.model.family = "victr"
    c.model.clip_overrides = ml_collections.ConfigDict(dict(vision_layers=1, text_layers=1, image_resolution=16))
    c.model.overrides = ml_collections.ConfigDict()
    c.data.input_size = 16
    c.model.victr = victr_config_defaults()
    c.model.victr.prompt_context_length = 12
    c.model.victr.aux_prompts = os.path.join(tf_.REPO, "configs", "victr", "aux_prompts_synthetic.json")
    c.async_checkpointing = False
    return c


def _write_workdir(config, workdir: str, step: int = 4) -> None:
    """config.json + checkpoints/STEP holding VicTR params (random head, as after init), like the trainer."""
    from tcvideo.victr.family import initial_params, model_config
    params = initial_params(config, model_config(config))
    os.makedirs(workdir)
    train.save_resolved_config(config, workdir)
    latest, best = checkpoints._managers(workdir, config)
    checkpoints._save(latest, {"params": params, "step": np.int32(step)}, step)
    latest.wait_until_finished()
    latest.close()
    best.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("victr_workdir")
    workdir = str(d / "run")
    config = _victr_config()
    _write_workdir(config, workdir)
    video = str(d / "moving_left.mp4")
    write_mp4(video, synthetic.render_video("moving left", np.random.default_rng(0), 16, 48, 64))
    with open(os.path.join(workdir, "config.json")) as f:
        resolved = ml_collections.ConfigDict(json.load(f))
    return {"dir": d, "workdir": workdir, "video": video, "config": config, "resolved": resolved}


def _victr_probabilities(config, workdir: str, video: str) -> np.ndarray:
    """Class probabilities [C] of the VicTR module itself on the checkpoint params (softmax averaged over views)."""
    from tcvideo.classification.prompts import tokenize_prompts
    from tcvideo.victr.family import model_config
    from tcvideo.victr.model import VicTR
    mc = model_config(config)
    params = load_checkpoint_params(workdir)
    views = predict.load_video(video, config.data, int(config.eval.num_clips), int(config.eval.num_crops))
    ids = tokenize_prompts(CLASSES, mc.prompt_context_length, prefix=config.prompt_prefix,
                           split_camel_case=mc.split_camel_case)  # the training prompts (class_prompts)
    logits = VicTR(mc).apply({"params": params}, jnp.asarray(views), jnp.asarray(ids))["logits"]  # [V, C]
    return np.asarray(jax.nn.softmax(logits.astype(jnp.float32), -1).mean(0))


def test_predict_uses_the_workdirs_model_family(run, capsys):
    rc = cli.main(["predict", run["video"], "--checkpoint", run["workdir"], "--top-k", "4", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    ranked = json.loads(captured.out)["predictions"][0]["top_k"]  # classes: the workdir's training classes
    got = {e["class"]: e["probability"] for e in ranked}
    assert sorted(got) == sorted(CLASSES)
    want = _victr_probabilities(run["resolved"], run["workdir"], run["video"])
    np.testing.assert_allclose([got[c] for c in CLASSES], want, rtol=1e-5, atol=1e-6)
    assert want.max() - want.min() > 1e-4  # not uniform: the comparison tells models apart
    model = predict.load_model(run["workdir"])
    assert model.family == "victr" and type(model.classifier.model).__name__ == "VicTR"


def test_unknown_family_names_file_and_field(run, tmp_path, capsys):
    cfg = run["resolved"].to_dict()
    cfg["model"]["family"] = "no_such_family"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert predict.main([run["video"], "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'config.json'}: model.family: unknown model family 'no_such_family'" in err
    assert "'victr'" in err and "'tc_clip'" in err  # the known ones are listed


def test_eval_checkpoint_uses_the_workdirs_config(run, capsys):
    ref = train.evaluate_workdir(run["config"], str(run["dir"] / "eval_ref"), checkpoint=run["workdir"])
    want = ref["fine_tuned"]["results"]["synthetic"]  # the VicTR config given (same family: accepted)
    out = str(run["dir"] / "eval_out")
    with pytest.raises(SystemExit) as e:
        cli.main(["eval", f"--checkpoint={run['workdir']}", f"--workdir={out}"])  # no --config
    assert e.value.code in (0, None), capsys.readouterr().err[-2000:]
    with open(os.path.join(out, "eval_results.json")) as f:
        res = json.load(f)
    assert res["params_source"] == "checkpoint"
    got = res["fine_tuned"]["results"]["synthetic"]
    assert got["count"] == want["count"] == 8
    assert (got["top1"], got["top5"]) == pytest.approx((want["top1"], want["top5"]))
    # this run's --checkpoint / --config presence do not carry over to the next in-process run
    assert flags.FLAGS.checkpoint is None and flags.FLAGS["config"].present == 0


def test_eval_checkpoint_with_another_family_config_fails(run, capsys):
    out = str(run["dir"] / "eval_demo")
    with pytest.raises(SystemExit) as e:
        cli.main(["eval", f"--config={os.path.join(tf_.REPO, 'configs', 'demo.py')}",
                  f"--checkpoint={run['workdir']}", f"--workdir={out}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "config.model.family: 'tc_clip', but --checkpoint" in err and "'victr'" in err
    assert not os.path.exists(os.path.join(out, "eval_results.json"))
    # the Python API: the workdir's own config passes the check; another task is named
    other = run["resolved"].to_dict()
    other["task"] = "fs_cal"
    with pytest.raises(train.ConfigError, match=r"config.task: 'fs_cal', but --checkpoint"):
        train.evaluate_workdir(ml_collections.ConfigDict(other), out, checkpoint=run["workdir"])


def test_visualize_refuses_a_non_tc_clip_model(run, capsys):
    out = str(run["dir"] / "viz")
    assert cli.main(["visualize", run["video"], "--checkpoint", run["workdir"], "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tcvideo visualize: ")
    assert "TC-CLIP" in err and "'victr'" in err
    assert not os.path.exists(out)
