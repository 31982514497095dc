"""VicTR (tcvideo/victr/model.py, family "victr" of the video-classification task): auxiliary prompt
files, attention masks, video-conditioned text, ablation switches, gradients, CLIP init, the jitted
sharded train step, and a short synthetic training through the CLI that learns."""
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import train_fixtures as tf_
from tcvideo.core import train
from tcvideo.core import checkpoints, optimizer
from tcvideo.clip import model as clip_lib
from tcvideo.victr import model as V
from tcvideo.victr.family import victr_config_defaults
from tcvideo.clip.tokenizer import get_tokenizer
from tcvideo.core.config import ConfigError, load_config_file

AUX_CATS = ("objects", "scenes")
AUX_TEXTS = (("a ball", "a box", "a dog"), ("a room", "a beach"))
SYN_AUX = os.path.join(tf_.REPO, "configs", "victr", "aux_prompts_synthetic.json")
# The "tiny" preset cut to one layer per tower and 16 px frames: tests stay fast on a shared CPU.
SMALL = dict(vision_layers=1, text_layers=1, image_resolution=16)
CLIP = clip_lib.CLIPConfig.from_dict({**clip_lib.PRESETS["tiny"].to_dict(), **SMALL})


def _mc(**kw) -> V.VicTRConfig:
    base = dict(clip=CLIP, num_frames=4, head_layers=2, aux_categories=AUX_CATS, aux_texts=AUX_TEXTS,
                prompt_context_length=12)
    return V.VicTRConfig(**{**base, **kw})


@functools.lru_cache(maxsize=None)
def _init(mc: V.VicTRConfig):
    return V.init_params(mc, jax.random.PRNGKey(1))


@functools.lru_cache(maxsize=None)
def _apply(mc: V.VicTRConfig):
    return jax.jit(V.VicTR(mc).apply)


def _ids(n=3):
    return jnp.asarray(get_tokenizer().tokenize([f"a photo of class {i}." for i in range(n)], 12))


def _video(b=2, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(b, 4, 16, 16, 3)), jnp.float32)


def _run(mc, video=None, ids=None, params=None):
    params = _init(mc) if params is None else params
    out = _apply(mc)({"params": params}, _video() if video is None else video, _ids() if ids is None else ids)
    return params, out


def _tiny_train_config(**kw):
    c = tf_.tiny_config("vifi_clip")
    c.model.family = "victr"
    c.model.clip_overrides = ml_collections.ConfigDict(SMALL)
    c.data.input_size = 16
    c.model.overrides = ml_collections.ConfigDict()
    c.model.victr = victr_config_defaults()
    c.model.victr.prompt_context_length = 12
    c.model.victr.aux_prompts = SYN_AUX
    for k, v in kw.items():
        c.model.victr[k] = v
    return c


# ----------------------------------------------------------------------------- auxiliary prompts

def test_aux_prompts_file_and_errors(tmp_path):
    cats, texts = V.load_aux_prompts(SYN_AUX)
    assert cats == ("objects", "scenes") and len(texts[0]) == 5 and len(texts[1]) == 3
    mc = _mc(aux_categories=cats, aux_texts=texts)
    assert mc.num_aux == 8 and mc.aux_ids().shape == (8, 12)
    pool = mc.aux_pooling()  # [k, m] averages each category's prompts
    np.testing.assert_allclose(pool.sum(1), 1.0)
    np.testing.assert_allclose(pool[0, :5], 0.2)
    np.testing.assert_array_equal(pool[0, 5:], 0.0)
    cases = {"bad.json": ("{not json", "not valid JSON"), "list.json": ('["a"]', "non-empty JSON object"),
             "empty.json": ('{"objects": []}', "'objects' must map to a non-empty list"),
             "num.json": ('{"scenes": ["a room", 3]}', "'scenes' item 1 is not a non-empty string")}
    for name, (text, msg) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{name}: .*{msg}"):
            V.load_aux_prompts(str(tmp_path / name))
    with pytest.raises(ValueError, match="missing.json: cannot read"):
        V.load_aux_prompts(str(tmp_path / "missing.json"))
    # through the training config: ConfigError naming the field
    with pytest.raises(ConfigError, match=r"config.model.victr.aux_prompts: .*bad.json"):
        train.Setup(_tiny_train_config(aux_prompts=str(tmp_path / "bad.json")))
    (tmp_path / "long.json").write_text(json.dumps({"objects": ["a very " * 20 + "long text"]}))
    with pytest.raises(ConfigError, match=r"config.model.victr.aux_prompts: .*long.json"):
        train.Setup(_tiny_train_config(aux_prompts=str(tmp_path / "long.json")))
    with pytest.raises(ConfigError, match=r"config.model.victr.attention"):
        train.Setup(_tiny_train_config(attention="sideways"))


# ----------------------------------------------------------------------------- attention masks

def _dependency(axis):
    """Which input tokens each output token of a TokenAttention depends on: bool [T, N, T, N]."""
    t, n, e = 3, 4, 8
    mod = V.TokenAttention(e, 2, axis=axis)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, t, n, e)), jnp.float32)
    p = mod.init(jax.random.PRNGKey(0), x)
    y = mod.apply(p, x)
    assert y.shape == x.shape
    jac = jax.jit(jax.jacrev(lambda z: mod.apply(p, z)))(x)[0, :, :, :, 0]  # [T, N, E, T, N, E]
    return np.abs(np.asarray(jac)).sum(axis=(2, 5)) > 1e-7


def test_cross_modal_attention_stays_within_a_time_step():
    dep = _dependency(axis=2)
    t_out, n_out, t_in, n_in = np.indices(dep.shape)
    np.testing.assert_array_equal(dep, t_out == t_in)  # visual (n=0) sees all text tokens of its frame only


def test_temporal_attention_sees_only_the_same_token_across_time():
    dep = _dependency(axis=1)
    t_out, n_out, t_in, n_in = np.indices(dep.shape)
    np.testing.assert_array_equal(dep, n_out == n_in)


def test_joint_attention_sees_everything():
    assert _dependency(axis=None).all()


def test_temporal_attention_shared_by_visual_and_text_tokens():
    p = _init(_mc())
    # one parameter set: the attention maps the visual and the text token sequences alike
    assert set(p["head_0"]["temporal"]) == {"attn", "ln"}
    mod = V.TokenAttention(64, 1, axis=1)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 4, 3, 64)), jnp.float32)
    swapped = x[:, :, ::-1]  # the visual token (index 0) and a text token trade places
    y1 = mod.apply({"params": p["head_0"]["temporal"]}, x)
    y2 = mod.apply({"params": p["head_0"]["temporal"]}, swapped)
    np.testing.assert_allclose(y1[:, :, ::-1], y2, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- the model

def test_shapes_and_video_conditioned_text():
    mc = _mc()
    params, out = _run(mc)
    assert out["logits"].shape == (2, 3) and out["text_features"].shape == (2, 3, 64)
    assert out["aux_features"].shape == (2, 2, 64) and out["video_embedding"].shape == (2, 64)
    assert out["frame_embeddings"].shape == (2, 4, 64)
    assert np.isfinite(np.asarray(out["logits"])).all()
    # the same class text has a different embedding for each video
    tf = np.asarray(out["text_features"])
    assert np.abs(tf[0] - tf[1]).max() > 1e-3
    # ... and the same one when the video is the same (batched rows do not leak into each other)
    _, alone = _run(mc, video=_video()[1:], params=params)
    np.testing.assert_allclose(np.asarray(alone["text_features"][0]), tf[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(alone["logits"][0]), np.asarray(out["logits"][1]), rtol=1e-4, atol=1e-4)
    # ablation "CLIP text embedding": identical for every video
    _, plain = _run(_mc(text_embedding="clip"), params=params)
    tp = np.asarray(plain["text_features"])
    np.testing.assert_allclose(tp[0], tp[1], rtol=1e-6, atol=1e-6)


def test_frame_order_matters():
    params, out = _run(_mc())
    _, rev = _run(_mc(), video=_video()[:, ::-1], params=params)
    assert np.abs(np.asarray(out["logits"]) - np.asarray(rev["logits"])).max() > 1e-4


def test_ablation_switches():
    base_p, base = _run(_mc())
    # no auxiliary text (no category embeddings); plain CLIP visual embedding (mean CLIP frame embedding);
    # visual-only classifier
    _, o = _run(_mc(use_aux_text=False, visual_embedding="clip", classifier="visual"), params=base_p)
    assert o["aux_features"].shape == (2, 0, 64) and o["logits"].shape == (2, 3)
    np.testing.assert_allclose(np.asarray(o["video_embedding"]),
                               np.asarray(clip_lib.l2_normalize(o["frame_embeddings"].mean(1))), rtol=1e-5, atol=1e-6)
    # affinity re-weighting off changes the result (same parameters)
    _, o = _run(_mc(reweight=False), params=base_p)
    assert np.abs(np.asarray(o["logits"]) - np.asarray(base["logits"])).max() > 1e-4
    # joint attention (one attention module per layer instead of cross-modal + temporal); text-only
    # classifier (a learned query)
    mc = _mc(attention="joint", classifier="text")
    pj = _init(mc)
    assert set(pj["head_0"]) == {"joint", "ln_mlp", "mlp"} and pj["text_query"].shape == (64,)
    _, o = _run(mc, params=pj)
    assert o["logits"].shape == (2, 3) and np.isfinite(np.asarray(o["logits"])).all()
    for bad in (dict(attention="sideways"), dict(classifier="both"), dict(text_embedding="x")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _mc(**bad)


def test_gradients_reach_every_parameter_group():
    mc = _mc()
    params = _init(mc)
    video, ids = _video(), _ids()

    def loss(p):
        logits = V.VicTR(mc).apply({"params": p}, video, ids)["logits"]
        return -jax.nn.log_softmax(logits)[jnp.arange(2), jnp.array([0, 2])].mean()

    grads = jax.jit(jax.grad(loss))(params)
    flat = {optimizer.path_str(k): float(jnp.abs(g).sum()) for k, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
    # CLIP token embedding rows of unused tokens get no gradient: check that the used rows do
    assert flat.pop("text/token_embedding/embedding") > 0
    dead = sorted(k for k, v in flat.items() if not v > 0)
    assert not dead, dead
    groups = {k.split("/")[0] for k in flat}
    assert {"visual", "text", "head_0", "head_1", "time_embedding", "logit_scale", "ln_video"} <= groups
    assert {"cross_modal", "temporal", "mlp", "ln_mlp"} <= {k.split("/")[1] for k in flat if k.startswith("head_1")}


def test_clip_init_params(tmp_path):
    from tcvideo.core import model_dir as store
    from tcvideo.victr.family import initial_params, model_config
    # CLIP-shaped params (the towers of a VicTR init, shifted so that they differ from any fresh init)
    src = _init(_mc())
    clip_params = jax.tree_util.tree_map(lambda x: np.asarray(x) + 0.5,
                                         {k: src[k] for k in ("visual", "text", "logit_scale")})
    # through the training config (config.init_clip = a tcvideo CLIP model dir)
    store.save_model(str(tmp_path / "clip"), clip_params, {"model": "clip", "config": CLIP.to_dict()})
    cfg = _with(init_clip=str(tmp_path / "clip"))
    mc = model_config(cfg)
    p = initial_params(cfg, mc)
    assert jax.tree_util.tree_map(np.shape, p) == jax.tree_util.tree_map(np.shape, V.param_shapes(mc))
    np.testing.assert_array_equal(p["visual"]["resblocks_0"]["mlp"]["c_fc"]["kernel"],
                                  clip_params["visual"]["resblocks_0"]["mlp"]["c_fc"]["kernel"])
    np.testing.assert_array_equal(p["text"]["resblocks_0"]["attn"]["in_proj_kernel"],
                                  clip_params["text"]["resblocks_0"]["attn"]["in_proj_kernel"])
    np.testing.assert_array_equal(p["text"]["token_embedding"]["embedding"],
                                  clip_params["text"]["token_embedding"]["embedding"])
    np.testing.assert_array_equal(p["logit_scale"], clip_params["logit_scale"])
    assert "head_0" in p and "time_embedding" in p
    wrong = dict(clip_params)
    wrong["visual"] = {k: v for k, v in clip_params["visual"].items() if k != "proj"}
    with pytest.raises(ValueError, match="visual/proj is missing"):
        V.clip_init_params(wrong, mc)
    store.save_model(str(tmp_path / "clip2"), clip_params, {"model": "clip", "config": clip_lib.PRESETS["tiny"].to_dict()})
    with pytest.raises(ConfigError, match="config.init_clip: checkpoint is"):
        initial_params(_with(init_clip=str(tmp_path / "clip2")), mc)
def _with(**top):
    c = _tiny_train_config()
    for k, v in top.items():
        c[k] = v
    return c


# ----------------------------------------------------------------------------- training through the CLI

def test_victr_configs_load():
    for name in ("few_shot", "zero_shot_k400", "demo"):
        c = load_config_file(os.path.join(tf_.REPO, "configs", "victr", f"{name}.py"))
        assert c.model.family == "victr" and os.path.exists(c.model.victr.aux_prompts)
    from tcvideo.victr.family import model_config
    assert model_config(c).num_aux == 8  # the demo config resolves


SHORT_RUN = """
import ml_collections

from tcvideo.core.config import load_config_file

def get_config():
    c = load_config_file({demo!r})
    # appearance classes: a short run must learn them (the temporal demo needs the full schedule)
    c.data.synthetic.classes = ("red circle", "blue square", "green triangle", "yellow circle")
    c.data.synthetic.videos_per_class = 16
    c.data.synthetic.test_videos_per_class = 8
    c.data.num_frames = 4
    c.model.clip_overrides = ml_collections.ConfigDict(dict(vision_layers=1, text_layers=1))
    c.epochs = 12
    c.warmup_epochs = 1
    c.eval_every = 1000
    c.checkpoint_every = 1000
    c.async_checkpointing = False
    return c
"""


def train_config_from(path):
    return load_config_file(str(path))


def test_short_synthetic_training_learns_through_cli(tmp_path):
    from tcvideo import cli
    cfg_file = tmp_path / "short_victr.py"
    cfg_file.write_text(SHORT_RUN.format(demo=os.path.join(tf_.REPO, "configs", "victr", "demo.py")))
    workdir = str(tmp_path / "run")
    flags = [f"--config={cfg_file}", f"--workdir={workdir}"]
    with pytest.raises(SystemExit) as e:
        cli.main(["train", *flags])
    assert e.value.code in (0, None)
    # the run used the jitted train step on batches sharded over 4 (simulated) devices
    assert jax.device_count() == 4
    logs = [json.loads(l) for l in open(os.path.join(workdir, "train_log.jsonl"))]
    assert logs[-1]["step"] == 48 and all(np.isfinite(r["train/loss"]) for r in logs)
    assert logs[-1]["train/loss"] < logs[0]["train/loss"]
    # head and towers were updated; CLIP's token embedding stayed frozen (task default)
    from tcvideo.victr.family import initial_params, model_config
    trained = checkpoints.load_checkpoint_params(workdir)
    cfg = train_config_from(cfg_file)
    init = initial_params(cfg, model_config(cfg))
    np.testing.assert_array_equal(trained["text"]["token_embedding"]["embedding"],
                                  init["text"]["token_embedding"]["embedding"])
    for path in (("head_0", "temporal", "attn", "in_proj_kernel"), ("head_0", "cross_modal", "attn", "in_proj_kernel"),
                 ("visual", "proj"), ("text", "text_projection"), ("time_embedding",)):
        a, b = trained, init
        for k in path:
            a, b = a[k], b[k]
        assert np.abs(a - b).max() > 0, path
    with open(os.path.join(workdir, "eval_results.json")) as f:
        res = json.load(f)["fine_tuned"]["results"]["synthetic"]
    assert res["count"] == 32
    # 4 classes: chance 25% (binomial std over 32 videos ~7.7%)
    assert res["top1"] >= 62.5, res
    with pytest.raises(SystemExit):
        cli.main(["eval", *flags])
    with open(os.path.join(workdir, "eval_results.json")) as f:
        out = json.load(f)
    assert out["params_source"] == "checkpoint"
    assert out["fine_tuned"]["results"]["synthetic"]["top1"] == pytest.approx(res["top1"])
