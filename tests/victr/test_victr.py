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
    """A tiny VicTR with a random head (identity_init=False), so that every part of the head acts on the
    output; the tests of the identity initialisation set identity_init=True."""
    base = dict(clip=CLIP, num_frames=4, head_layers=2, aux_categories=AUX_CATS, aux_texts=AUX_TEXTS,
                prompt_context_length=12, identity_init=False)
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
    c.lr_mults.head = 1.0
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
    assert {"visual", "text", "head_0", "head_1", "time_embedding", "logit_scale", "affinity_logit_scale",
            "aux_gate"} <= groups
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
    # recipe -> (protocol, CLIP, head lr multiplier) (tcvideo/victr/README.md, "Recipes")
    want = {"few_shot": ("few_shot", "ViT-B/16", 100.0), "zero_shot_k400": ("zero_shot", "ViT-B/16", 10.0),
            "fully_supervised_k400": ("supervised", "ViT-L/14", 10.0), "demo": ("supervised", "tiny", 1.0)}
    for name, (protocol, clip, mult) in want.items():
        c = load_config_file(os.path.join(tf_.REPO, "configs", "victr", f"{name}.py"))
        assert c.model.family == "victr", name
        assert os.path.exists(c.model.victr.aux_prompts), name
        assert (c.protocol, c.model.clip, c.lr_mults.head) == (protocol, clip, mult), name
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


# ----------------------------------------------------------------------------- identity at initialisation

def _clip_zero_shot_logits(params, video, ids):
    """CLIP's zero-shot video logits from the VicTR params' CLIP towers: exp(logit_scale) *
    cos(mean over frames of the frame embeddings, class text embedding) -> [B, n]."""
    m = clip_lib.CLIP(CLIP)
    cp = {"params": {k: params[k] for k in ("visual", "text", "logit_scale")}}
    b, t = video.shape[:2]
    img = m.apply(cp, video.reshape(b * t, *video.shape[2:]), method=m.encode_image).reshape(b, t, -1).mean(1)
    txt = m.apply(cp, ids, method=m.encode_text)
    return np.asarray(jnp.exp(params["logit_scale"]) * clip_lib.l2_normalize(img) @ clip_lib.l2_normalize(txt).T)


def test_logits_at_init_equal_clip_zero_shot():
    mc = _mc(identity_init=True)  # 2 head layers, auxiliary text, softmax boosting, affinity classifier
    params, out = _run(mc)
    want = _clip_zero_shot_logits(params, _video(), _ids())
    np.testing.assert_allclose(np.asarray(out["logits"]), want, rtol=1e-5, atol=1e-5)
    # not vacuous: the same weights with the residual outputs restored (a random head) give other logits
    random_head = V.init_params(_mc(), jax.random.PRNGKey(1))
    _, moved = _run(_mc(), params={**random_head, **{k: params[k] for k in ("visual", "text", "logit_scale")}})
    assert np.abs(np.asarray(moved["logits"]) - want).max() > 0.05
    # the head's attention and MLP input weights are random (only the residual outputs start at zero)
    assert np.abs(np.asarray(params["head_0"]["temporal"]["attn"]["in_proj_kernel"])).min() > 0


def test_clip_init_starts_from_clip_zero_shot(tmp_path):
    """Through the family: config.init_clip -> params whose VicTR logits are CLIP's zero-shot logits."""
    from tcvideo.core import model_dir as store
    from tcvideo.victr.family import initial_params, model_config
    src = V.init_params(_mc(), jax.random.PRNGKey(3))
    clip_params = jax.tree_util.tree_map(np.asarray, {k: src[k] for k in ("visual", "text")})
    clip_params["logit_scale"] = np.asarray(np.log(100.0), np.float32)  # OpenAI CLIP's trained value
    store.save_model(str(tmp_path / "clip"), clip_params, {"model": "clip", "config": CLIP.to_dict()})
    cfg = _with(init_clip=str(tmp_path / "clip"))
    cfg.data.num_frames = 4
    mc = model_config(cfg)
    p = initial_params(cfg, mc)
    np.testing.assert_array_equal(p["affinity_logit_scale"], clip_params["logit_scale"])
    ids = jnp.asarray(get_tokenizer().tokenize(["a red circle", "a blue square"], 12))
    out = V.VicTR(mc).apply({"params": p}, _video(), ids)
    np.testing.assert_allclose(np.asarray(out["logits"]), _clip_zero_shot_logits(p, _video(), ids),
                               rtol=1e-5, atol=1e-4)


def _setup_one_step(**kw):
    from tcvideo.core import sharding
    cfg = _tiny_train_config()
    for k, v in kw.items():
        cfg[k] = v
    s = train.Setup(cfg)
    init = s.task.init_params()
    abstract = s.abstract_state(train._shape_tree(init))
    sh = sharding.state_shardings(abstract, s.mesh, cfg.fsdp)
    tx, sched = s.optimizer(abstract["params"])
    step = train.make_train_step(s.task, tx, sched, accum=1, mesh=s.mesh, state_sharding=sh)
    return cfg, s, init, sh, tx, step


def test_one_step_moves_the_head_at_its_lr_multiplier():
    from jax.sharding import NamedSharding, PartitionSpec as P
    from tcvideo.core import sharding
    from tcvideo.core.tree_util import flatten
    cfg, s, init, sh, tx, step = _setup_one_step(lr=1e-3, warmup_epochs=0, weight_decay=0.0,
                                                 lr_mults=ml_collections.ConfigDict(dict(prompt=10.0, head=10.0)))
    labels = {k: s.task.param_label(k) for k in flatten(init)}
    assert labels["head_0/temporal/attn/out_proj/kernel"] == "head"
    assert labels["time_embedding"] == "head"
    assert labels["visual/proj"] == "base"
    rng = np.random.default_rng(0)
    video = rng.normal(size=(8, 4, 16, 16, 3)).astype(np.float32)
    targets = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    data = NamedSharding(s.mesh, P("data"))
    batch = {"video": sharding.global_array(video, data), "targets": sharding.global_array(targets, data)}
    st = train.initial_state(init, sh, tx, cfg)
    st, _ = step(st, batch)
    p = flatten(jax.tree_util.tree_map(np.asarray, jax.device_get(st["params"])))
    f0 = flatten(init)
    delta = {k: float(np.abs(p[k] - np.asarray(f0[k])).max()) for k in p}
    # a first Adam step moves each coordinate by ~lr x sign(gradient): the head's zero-initialised residual
    # outputs and time embedding by 10 x lr (its multiplier), a CLIP-tower weight by lr
    d_base = delta["visual/proj"]
    assert d_base == pytest.approx(1e-3, rel=0.05)
    for k in ("head_0/cross_modal/attn/out_proj/kernel", "head_0/temporal/attn/out_proj/kernel",
              "head_0/mlp/c_proj/kernel", "time_embedding", "aux_gate"):
        assert delta[k] == pytest.approx(10 * d_base, rel=0.05), k


# ----------------------------------------------------------------------------- wiring of a head layer

def _layer_params(mc, x, groups, zero=()):
    """Random params of one VicTRLayer for x [B, T, N, E], with the leaves under the ``zero`` prefixes
    (e.g. "temporal/attn/out_proj") set to zero."""
    from tcvideo.core.tree_util import flatten, unflatten
    p = V.VicTRLayer(mc).init(jax.random.PRNGKey(2), x, jnp.float32(10.0), groups)["params"]
    return unflatten({k: (jnp.zeros_like(v) if k.startswith(tuple(zero)) else v) for k, v in flatten(p).items()})


def _layer_dependency(mc, zero):
    """Which input tokens each output token of a VicTRLayer depends on: bool [T, N, T, N]."""
    t, n, e = 3, 4, CLIP.embed_dim
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, t, n, e)), jnp.float32)
    groups = jnp.asarray(mc.text_groups(n - 1 - mc.num_aux) if mc.num_aux else np.ones((1, n - 1), np.float32))
    p = _layer_params(mc, x, groups, zero)
    f = lambda z: V.VicTRLayer(mc).apply({"params": p}, z, jnp.float32(10.0), groups)
    jac = jax.jit(jax.jacfwd(f))(x)[0]  # [T, N, E, 1, T, N, E]; jit(jacrev) gave wrong, varying entries here
    return np.abs(np.asarray(jac)).sum(axis=(2, 3, 6)) > 1e-7


def test_layer_cross_modal_then_temporal_axes():
    """In a head layer the module named cross_modal mixes the tokens of one time step and the one named
    temporal mixes one token index across time (re-weighting off: it pools over time by design)."""
    mc = _mc(reweight=False, use_aux_text=False)
    t_out, n_out, t_in, n_in = np.indices((3, 4, 3, 4))
    only_cross = _layer_dependency(mc, zero=("temporal/attn/out_proj",))
    np.testing.assert_array_equal(only_cross, t_out == t_in)
    only_temporal = _layer_dependency(mc, zero=("cross_modal/attn/out_proj",))
    np.testing.assert_array_equal(only_temporal, n_out == n_in)


def _softmax_weights(frames, text, groups, tau):
    """The test's own token-boosting weights: |group| * softmax_group(tau * cos) -> [B, T, K]."""
    f = frames / np.linalg.norm(frames, axis=-1, keepdims=True)
    s = text / np.linalg.norm(text, axis=-1, keepdims=True)
    z = tau * np.einsum("bte,ke->btk", f, s)
    w = np.zeros_like(z)
    for g in groups.astype(bool):
        e = np.exp(z[..., g] - z[..., g].max(-1, keepdims=True))
        w[..., g] = g.sum() * e / e.sum(-1, keepdims=True)
    return w


def test_token_boosting_weights_text_copies_by_frame_affinity():
    mc = _mc(identity_init=True)
    n, k = 3, mc.num_aux + 3
    rng = np.random.default_rng(4)
    frames = rng.normal(size=(2, 4, 64)).astype(np.float32)
    text = rng.normal(size=(k, 64)).astype(np.float32)
    text[0] += 2.0 * frames[0, 0]  # class 0's text near frame (0, 0): that frame boosts class 0
    groups = mc.text_groups(n)
    params = _init(mc)
    tau = float(np.exp(params["affinity_logit_scale"]))
    x = _apply_method(mc, "boost")(params, jnp.asarray(frames), jnp.asarray(text), jnp.asarray(groups))
    x = np.asarray(x) - np.asarray(params["time_embedding"])[None, :, None]
    assert x.shape == (2, 4, 1 + k, 64)
    np.testing.assert_allclose(x[:, :, 0], frames, rtol=1e-6, atol=1e-6)
    w = _softmax_weights(frames, text, groups, tau)
    np.testing.assert_allclose(x[:, :, 1:], w[..., None] * text, rtol=1e-4, atol=1e-5)
    # the weights condition on the video: the matching class is boosted over the others by far more than
    # the old default (1 + cos) / 2 would (a ratio <= (1 + 1) / (1 + min cos) ~ 2)
    assert w[0, 0, 0] / w[0, 0, 1:n].max() > 10


def _apply_method(mc, name):
    return jax.jit(functools.partial(lambda p, *a, m: V.VicTR(mc).apply({"params": p}, *a, method=m),
                                     m=getattr(V.VicTR, name)))


def test_layer_reweights_text_tokens_by_their_pooled_affinity():
    """A head layer with its attention and MLP residual outputs at zero is exactly the affinity
    re-weighting: text token (t, k) x w(visual_t, mean over time of text_k); visual tokens unchanged."""
    mc = _mc()
    n = 3
    groups = mc.text_groups(n)
    k = groups.shape[1]
    x = np.random.default_rng(5).normal(size=(2, 4, 1 + k, 64)).astype(np.float32)
    x[:, :, 1:] += 0.5 * x[:, :, :1]  # text tokens correlated with their frame: weights away from 1
    zero = ("cross_modal/attn/out_proj", "temporal/attn/out_proj", "mlp/c_proj")
    p = _layer_params(mc, jnp.asarray(x), jnp.asarray(groups), zero)
    y = np.asarray(V.VicTRLayer(mc).apply({"params": p}, jnp.asarray(x), jnp.float32(5.0), jnp.asarray(groups)))
    np.testing.assert_allclose(y[:, :, 0], x[:, :, 0], rtol=1e-6, atol=1e-6)
    pooled = x[:, :, 1:].mean(1)                                           # [B, K, E]
    w = np.stack([_softmax_weights(x[b:b + 1, :, 0], pooled[b], groups, 5.0)[0] for b in range(2)])
    assert np.abs(w - 1).max() > 0.2
    np.testing.assert_allclose(y[:, :, 1:], w[..., None] * x[:, :, 1:], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- a task that needs the text side

def test_video_conditioned_text_learns_temporal_classes_that_plain_clip_text_cannot():
    """tests/victr/head_task.py: 4 classes in time-reversed pairs on CLIP-like embeddings, the head trained
    alone. With the visual embedding fixed to CLIP's (the mean frame embedding: order-blind), only the
    video-conditioned text can tell the order; with plain CLIP text too the model stays order-blind."""
    import head_task as H
    task = H.temporal_task(0, train_per_class=16, test_per_class=32)
    budget = dict(steps=80, batch=16, lr=3e-3)
    text_side, _, _ = H.train_head(task, H.head_config(visual_embedding="clip"), **budget)
    plain, _, _ = H.train_head(task, H.head_config(visual_embedding="clip", text_embedding="clip"), **budget)
    # 4 classes, 128 test videos: an order-blind model gets the pair but not the order (<= ~50% + noise)
    assert plain <= 62.5, plain
    assert text_side >= 90.0, (text_side, plain)
