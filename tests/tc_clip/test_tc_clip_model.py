"""Unit tests of TC-CLIP's pieces: merge schedule and algorithm, variants, bias, stop-gradient, sharding."""
from __future__ import annotations

import re

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tcvideo.tc_clip import context_summary as cs
from tcvideo.tc_clip import model as tcm
from tcvideo.clip.model import CLIPConfig
from tcvideo.classification.prompts import clean_class_name, tokenize_prompts


@pytest.mark.parametrize("n,k,r,expected", [
    (928, 96, 100, [100] * 8 + [32]),      # T = 16, measured on the official code
    (464, 96, 100, [100, 100, 100, 68]),   # T = 8
    (232, 96, 100, [100, 36]),             # T = 4
    (96, 96, 100, []),
    (150, 10, 100, [75, 37, 19, 9]),       # capped at half the tokens each step
    (58, 96, 100, []),                     # fewer seeds than k: nothing to merge
])
def test_tome_schedule(n, k, r, expected):
    steps = cs.tome_schedule(n, k, r)
    assert steps == expected
    assert n - sum(steps) == max(k, min(n, k)) if n >= k else n - sum(steps) == n


def _reference_step(x, size, r):
    """Plain numpy version of one bipartite step, written from the spec's description."""
    m = x / np.linalg.norm(x, axis=-1, keepdims=True)
    a, b = m[0::2], m[1::2]
    scores = a @ b.T
    node_max, node_idx = scores.max(-1), scores.argmax(-1)
    order = np.argsort(-node_max, kind="stable")
    unm, src = order[r:], order[:r]
    dst = node_idx[src]
    xs = x * size
    xa, xb = xs[0::2], xs[1::2].copy()
    sa, sb = size[0::2], size[1::2].copy()
    for s, d in zip(src, dst):
        xb[d] += xa[s]
        sb[d] += sa[s]
    out_x = np.concatenate([xa[unm], xb]) / np.concatenate([sa[unm], sb])
    return out_x, np.concatenate([sa[unm], sb]), (unm, src, dst)


def _new_index(n, unm, src, dst):
    """Output row of every input token of one step (A = even, B = odd positions)."""
    n_a = (n + 1) // 2
    a_to = np.empty(n_a, np.int64)
    a_to[unm] = np.arange(len(unm))
    a_to[src] = len(unm) + dst
    out = np.empty(n, np.int64)
    out[0::2], out[1::2] = a_to, len(unm) + np.arange(n // 2)
    return out


@pytest.mark.parametrize("n,r", [(10, 3), (11, 5), (232, 100), (33, 16)])
def test_bipartite_step_matches_spec(n, r):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 8))
    size = rng.integers(1, 4, size=(n, 1)).astype(np.float64)
    jax.config.update("jax_enable_x64", True)
    try:
        # The step works on sums (x * size): their cosine is that of the means.
        sums, new_index, plan = cs.bipartite_step(jnp.asarray(x * size), r)
        out, out_size = cs.apply_plan(plan, jnp.asarray(x), jnp.asarray(size))
        assert sums.dtype == out.dtype == jnp.float64
    finally:
        jax.config.update("jax_enable_x64", False)
    ref_x, ref_size, (unm, src, dst) = _reference_step(x, size, r)
    np.testing.assert_array_equal(plan.unm, unm)
    np.testing.assert_array_equal(plan.src, src)
    np.testing.assert_array_equal(plan.dst, dst)
    np.testing.assert_array_equal(new_index, _new_index(n, unm, src, dst))
    np.testing.assert_allclose(sums, ref_x * ref_size, rtol=1e-12)
    np.testing.assert_allclose(out, ref_x, rtol=1e-12)
    np.testing.assert_array_equal(out_size, ref_size)
    assert out.shape == (n - r, 8)
    assert float(out_size.sum()) == float(size.sum())  # no token is lost or counted twice


def _reference_summary(x, k, r):
    """The official loop: size-weighted bipartite steps on the merged tokens, one after another."""
    size = np.ones((x.shape[0], 1))
    where = np.arange(x.shape[0])
    plans = []
    for step_r in cs.tome_schedule(x.shape[0], k, r):
        n = x.shape[0]
        x, size, plan = _reference_step(x, size, step_r)
        where = _new_index(n, *plan)[where]
        plans.append(plan)
    return x, size[:, 0], plans, where


@pytest.mark.parametrize("m,k,r", [(61, 9, 10), (96, 24, 30), (40, 7, 100), (12, 12, 5)])
def test_bipartite_summary_matches_sequential_reference(m, k, r):
    """Matmul merges + one composed assignment == the official step-by-step merge, float64, random (tie-free)."""
    rng = np.random.default_rng(m + k)
    x = rng.normal(size=(m, 6))
    w = rng.normal(size=(k, 6))
    jax.config.update("jax_enable_x64", True)
    try:
        f = jax.jit(lambda z: cs.bipartite_summary(z, k, r))
        ctx, sizes, plans = f(jnp.asarray(x))
        # Gradients see only the composed assignment: d(sum w * ctx)/dx = assign^T (w / sizes).
        grad = jax.grad(lambda z: (f(z)[0] * w).sum())(jnp.asarray(x))
    finally:
        jax.config.update("jax_enable_x64", False)
    ref_ctx, ref_sizes, ref_plans, where = _reference_summary(x, k, r)
    assert len(plans) == len(ref_plans)
    for p, (unm, src, dst) in zip(plans, ref_plans):
        np.testing.assert_array_equal(p.unm, unm)
        np.testing.assert_array_equal(p.src, src)
        np.testing.assert_array_equal(p.dst, dst)
    np.testing.assert_array_equal(sizes, ref_sizes)
    np.testing.assert_allclose(ctx, ref_ctx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, (w / ref_sizes[:, None])[where], rtol=1e-12)


def test_ranks_and_one_hot_selection_match_top_k():
    """Pairwise ranks order like top_k (ties: lower index first); one-hot selection == gathering."""
    rng = np.random.default_rng(3)
    v = rng.integers(0, 6, size=(2, 3, 20)).astype(np.float32)  # many exact ties
    x = rng.normal(size=(2, 3, 20, 5)).astype(np.float32)
    rank = cs.descending_rank(jnp.asarray(v))
    stable = np.argsort(-v, axis=-1, kind="stable")
    np.testing.assert_array_equal(np.argsort(np.asarray(rank), axis=-1), stable)
    _, top = jax.lax.top_k(jnp.asarray(v), 7)
    np.testing.assert_array_equal(cs.order_from_rank(rank, 7), top)
    picked = cs.select_by_rank(rank, jnp.asarray(x), 7)
    np.testing.assert_array_equal(picked, np.take_along_axis(x, stable[..., :7, None], axis=2))
    table = jnp.asarray(rng.integers(0, 50, size=9), jnp.int32)
    idx = jnp.asarray(rng.integers(0, 9, size=(4, 5)), jnp.int32)
    np.testing.assert_array_equal(cs.lookup(table, idx), np.asarray(table)[np.asarray(idx)])


def test_ties_take_the_lower_index():
    # Four identical A tokens: equal match scores, so the merge order must be by index.
    x = jnp.asarray(np.tile([[1.0, 0.0], [1.0, 0.0]], (4, 1)))
    _, _, plan = cs.bipartite_step(x, 2)
    np.testing.assert_array_equal(plan.src, [0, 1])
    np.testing.assert_array_equal(plan.unm, [2, 3])
    np.testing.assert_array_equal(plan.dst, [0, 0])  # argmax over equal B scores -> first


@pytest.mark.parametrize("method", ["bipartite", "kmeans", "dpc_knn", "random", "none"])
def test_each_summary(method):
    x = jax.random.normal(jax.random.PRNGKey(1), (120, 8))
    ctx, sizes, _ = cs.summarize(method, x, 24, 30)
    k = 120 if method == "none" else 24
    assert ctx.shape == (k, 8)
    np.testing.assert_allclose(float(sizes.sum()), 120.0)
    assert bool(jnp.isfinite(ctx).all())
    # every context token is a size-weighted mean of seeds: it lies in their convex hull per coordinate
    assert float(ctx.max()) <= float(x.max()) + 1e-5 and float(ctx.min()) >= float(x.min()) - 1e-5
    g = jax.grad(lambda z: cs.summarize(method, z, 24, 30)[0].sum())(x)
    # d(sum ctx)/dx sums to (number of context tokens) x D: every context token is a weighted mean.
    np.testing.assert_allclose(float(g.sum()), (24.0 if method != "none" else 120.0) * 8, rtol=1e-5)


SMALL = CLIPConfig(embed_dim=32, image_resolution=32, patch_size=8, vision_width=32, vision_layers=2,
                   vision_heads=2, context_length=16, vocab_size=49408, text_width=32, text_heads=2, text_layers=2)


def _small(variant="tc_clip", **kw):
    base = dict(num_frames=4, context_tokens=8, tome_r=6, prompt_context_length=16)
    base.update(kw)
    return tcm.variant_config(variant, clip=SMALL, **base)


def _inputs(cfg, b=2):
    video = jax.random.normal(jax.random.PRNGKey(2), (b, cfg.num_frames, 32, 32, 3))
    ids = jnp.asarray(tokenize_prompts(["ApplyEyeMakeup", "moving left", "shrinking"], 16))
    return video, ids


@pytest.mark.parametrize("variant", sorted(tcm.VARIANTS))
def test_variants_forward(variant):
    cfg = _small(variant)
    params = tcm.init_params(cfg, num_classes=3)
    video, ids = _inputs(cfg)
    out = tcm.TCCLIP(cfg).apply({"params": params}, video, ids)
    assert out["logits"].shape == (2, 3)
    assert bool(jnp.isfinite(out["logits"]).all())
    has_bias = any("local_global_bias" in jax.tree_util.keystr(k) for k, _ in
                   jax.tree_util.tree_flatten_with_path(params)[0])
    assert has_bias == cfg.use_tc
    assert ("prompt_generation_0" in params["text"]) == cfg.use_vp


@pytest.mark.parametrize("summary", ["kmeans", "dpc_knn", "random", "none"])
def test_other_summaries_in_model(summary):
    cfg = _small(context_summary=summary)
    params = tcm.init_params(cfg, num_classes=3)
    video, ids = _inputs(cfg)
    out = tcm.TCCLIP(cfg).apply({"params": params}, video, ids)
    assert bool(jnp.isfinite(out["logits"]).all())


def test_seeds_are_each_frames_top_patches():
    """Diagnostics of the small model: seed_index == top_k of the CLS scores (descending, per frame)."""
    cfg = _small(num_frames=4, context_tokens=5, tome_r=3)
    params = tcm.init_params(cfg, num_classes=3)
    video, ids = _inputs(cfg)
    layers = tcm.TCCLIP(cfg).apply({"params": params}, video, ids, return_diagnostics=True)["layers"]
    lay = layers[0]
    s = cfg.vision.seeds_per_frame(16)
    _, top = jax.lax.top_k(lay["cls_scores"], s)
    np.testing.assert_array_equal(lay["seed_index"], top)
    assert lay["context_pre_ffn"].shape == (2, 5, 32)


def _op_count(fn, *args):
    text = jax.jit(fn).lower(*args).as_text()
    # '"stablehlo.gather"(' is the op; '#stablehlo.gather<' its attribute
    return {op: len(re.findall(rf"(?<!#)(?:stablehlo|chlo)\.{op}\b", text))
            for op in ("sort", "top_k", "scatter", "gather")}


def test_tc_vision_path_has_no_sort_scatter_gather():
    """The TC path is matmuls and fused element-wise ops: the vision forward and its gradient lower to
    no sort, top_k, scatter or gather (as ViFi-CLIP's plain per-frame ViT)."""
    cfg = _small()
    params = tcm.init_params(cfg, num_classes=3)
    video, _ = _inputs(cfg)
    model = tcm.TCCLIP(cfg)
    enc = lambda p, v: model.apply({"params": p}, v, method=model.encode_video)["video_embedding"]
    assert _op_count(enc, params, video) == {"sort": 0, "top_k": 0, "scatter": 0, "gather": 0}
    grad = jax.grad(lambda p, v: enc(p, v).sum())
    assert _op_count(grad, params, video) == {"sort": 0, "top_k": 0, "scatter": 0, "gather": 0}


def test_joint_positional_embedding_and_frames_check():
    cfg = _small(positional_embedding_type="joint")
    params = tcm.init_params(cfg, num_classes=3)
    assert params["visual"]["embed"]["positional_embedding"].shape == (4, 17, 32)
    video, ids = _inputs(cfg)
    tcm.TCCLIP(cfg).apply({"params": params}, video, ids)
    with pytest.raises(ValueError, match="num_frames=4"):
        tcm.TCCLIP(cfg).apply({"params": params}, video[:, :3], ids)


def test_local_global_bias_changes_only_context_weighting():
    cfg = _small()
    params = tcm.init_params(cfg, num_classes=3)
    video, ids = _inputs(cfg)
    f = lambda p: tcm.TCCLIP(cfg).apply({"params": p}, video, ids)["logits"]
    base = f(params)
    # Adding the same constant to the local and context columns leaves the softmax unchanged.
    shifted = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 3.0 if "local_global_bias" in jax.tree_util.keystr(path) else x, params)
    np.testing.assert_allclose(f(shifted), base, atol=1e-5)
    # Favouring the context columns changes the output.
    ctx_up = jax.tree_util.tree_map_with_path(
        lambda path, x: x.at[:, 1].add(3.0) if "local_global_bias" in jax.tree_util.keystr(path) else x, params)
    assert float(jnp.abs(f(ctx_up) - base).max()) > 1e-4


def test_stop_gradient_from_text_to_vision():
    cfg = _small()
    params = tcm.init_params(cfg, num_classes=3)
    video, ids = _inputs(cfg)
    model = tcm.TCCLIP(cfg)

    def text_only_loss(p):
        out = model.apply({"params": p}, video, ids)
        return out["text_features_unnorm"].sum()  # depends on vision only through the context tokens

    g = jax.grad(text_only_loss)(params)
    vis_norm = sum(float(jnp.abs(x).sum()) for x in jax.tree_util.tree_leaves(g["visual"]))
    assert vis_norm == 0.0
    assert float(jnp.abs(g["text"]["prompt_generation_0"]["attn"]["out_proj"]["kernel"]).sum()) > 0
    # Without the stop-gradient, the same loss does reach the vision tower.
    cfg2 = _small(stop_gradient_context=False)
    g2 = jax.grad(lambda p: tcm.TCCLIP(cfg2).apply({"params": p}, video, ids)["text_features_unnorm"].sum())(params)
    assert sum(float(jnp.abs(x).sum()) for x in jax.tree_util.tree_leaves(g2["visual"])) > 0


def test_text_is_batched_per_video():
    cfg = _small()
    params = tcm.init_params(cfg, num_classes=3)
    video, ids = _inputs(cfg)
    model = tcm.TCCLIP(cfg)
    both = model.apply({"params": params}, video, ids)
    one = model.apply({"params": params}, video[1:], ids)
    np.testing.assert_allclose(both["logits"][1], one["logits"][0], atol=2e-5)
    assert float(jnp.abs(both["text_features"][0] - both["text_features"][1]).max()) > 0


def test_data_parallel_sharding_forward_backward():
    devices = np.array(jax.devices())
    assert len(devices) == 4, "tests run with 4 simulated CPU devices (tests/conftest.py)"
    mesh = Mesh(devices, ("data",))
    cfg = _small()
    params = tcm.init_params(cfg, num_classes=3)
    video, ids = _inputs(cfg, b=4)
    labels = jnp.arange(4) % 3
    model = tcm.TCCLIP(cfg)

    def loss(p, v, y):
        logits = model.apply({"params": p}, v, ids)["logits"]
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1).mean()

    rep, dat = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    step = jax.jit(jax.value_and_grad(loss), in_shardings=(rep, dat, dat), out_shardings=(rep, rep))
    p_s = jax.device_put(params, rep)
    l_s, g_s = step(p_s, jax.device_put(video, dat), jax.device_put(labels, dat))
    l_1, g_1 = jax.jit(jax.value_and_grad(loss))(params, video, labels)
    np.testing.assert_allclose(l_s, l_1, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(g_s), jax.tree_util.tree_leaves(g_1)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_config_errors():
    with pytest.raises(ValueError, match="context_tokens=500 is larger"):
        _small(context_tokens=500)
    with pytest.raises(ValueError, match="Unknown TC-CLIP variant"):
        tcm.variant_config("nope", clip=SMALL)
    with pytest.raises(ValueError, match="tc_layers"):
        tcm.TCCLIP(_small(tc_layers=(0,))).init(jax.random.PRNGKey(0), *_inputs(_small()))


def test_class_name_cleanup():
    assert clean_class_name("ApplyEyeMakeup") == "Apply Eye Makeup"
    assert clean_class_name("air_drumming") == "air drumming"
    assert clean_class_name("YoYo") == "Yo Yo"
