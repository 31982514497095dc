"""OV-OAD model: shapes, causality (no frame sees the future), hard assignment with straight-through
gradients, adapters starting as identity, config errors."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ov_oad_fixture import CONTEXT, tiny_config, tiny_params
from tcvideo.ov_oad import model as oad


def _ids(n):
    return jnp.zeros((n, CONTEXT), jnp.int32).at[:, 0].set(49406).at[:, 1].set(jnp.arange(n) + 320).at[:, 2].set(49407)


def test_shapes_and_assignment_one_hot():
    cfg = tiny_config()
    p = tiny_params()
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 16, 32))
    out = oad.OVOAD(cfg).apply({"params": p}, x, _ids(5))
    assert out["enc_feat"].shape == (3, 32) and out["groups"].shape == (3, 2, 32) and out["video"].shape == (3, 32)
    assert out["hard"].shape == out["soft"].shape == (3, 2, 16)
    assert out["q"].shape == (3, 2, 32) and out["k"].shape == (3, 16, 32)
    assert out["proj_video"].shape == (3, 16) and out["saliency"].shape == (3, 32)
    assert out["scores"].shape == (3, 5)
    hard = np.asarray(out["hard"])
    assert set(np.unique(hard)) <= {0.0, 1.0}
    np.testing.assert_allclose(hard.sum(1), 1.0)  # every frame in exactly one group
    np.testing.assert_allclose(np.asarray(out["soft"]).sum(1), 1.0, rtol=1e-5)  # softmax over the group axis
    np.testing.assert_array_equal(hard.argmax(1), np.asarray(out["soft"]).argmax(1))  # eval: argmax
    # "released" fusion: mean of probability vectors -> rows sum to 1.
    np.testing.assert_allclose(np.asarray(out["scores"]).sum(-1), 1.0, rtol=1e-5)


def _dntr_tokens(mdl, x):
    for blk in mdl.dntr:
        x = blk(x)
    return x


def test_no_frame_attends_to_the_future():
    cfg = tiny_config()
    p = tiny_params()
    model = oad.OVOAD(cfg)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (1, 16, 32)))
    y = x.copy()
    j = 9
    y[:, j:] += 3.0 * np.random.default_rng(0).standard_normal((16 - j, 32))  # change frames j.. only
    f = nn.apply(_dntr_tokens, model)
    a, b = np.asarray(f({"params": p}, x)), np.asarray(f({"params": p}, y))
    np.testing.assert_allclose(a[:, :j], b[:, :j], atol=1e-6)  # the causal stack: past tokens untouched
    assert np.abs(a[:, j:] - b[:, j:]).max() > 1e-3
    # End to end: the offline scorer's row t IS the model on frames t-W+1..t (zeros before the video), so
    # changing frame 20 changes exactly the scores of frames 20..20+W-1.
    from tcvideo.ov_oad import stream as oad_stream
    w = cfg.window
    feats = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (40, 32)))
    voc = model.apply({"params": p}, _ids(4), method=oad.OVOAD.vocabulary)
    s1 = oad_stream.score_video(cfg, p, feats, voc, batch_size=8)
    padded = np.concatenate([np.zeros((w - 1, 32), np.float32), feats.astype(np.float32)])
    for t in (0, 5, 15, 27, 39):
        direct = model.apply({"params": p}, jnp.asarray(padded[t:t + w][None]), voc, method=oad.OVOAD.scores)
        np.testing.assert_allclose(s1[t], np.asarray(direct)[0], rtol=1e-5, atol=1e-6, err_msg=f"frame {t}")
    feats2 = feats.copy()
    feats2[20] += 5.0 * np.random.default_rng(1).standard_normal(32)
    s2 = oad_stream.score_video(cfg, p, feats2, voc, batch_size=8)
    changed = np.abs(s1 - s2).max(-1) > 0
    np.testing.assert_array_equal(changed, (np.arange(40) >= 20) & (np.arange(40) < 20 + w))


def test_gumbel_hard_assignment_straight_through():
    logits = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 7))
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 7))
    g = jax.random.gumbel(jax.random.PRNGKey(5), logits.shape)
    hard, soft = oad.gumbel_hard_assignment(logits, axis=1, noise=g, tau=0.5)
    h = np.asarray(hard)
    assert set(np.unique(h)) <= {0.0, 1.0}
    np.testing.assert_allclose(h.sum(1), 1.0)
    z = (np.asarray(logits) + np.asarray(g)) / 0.5
    np.testing.assert_array_equal(h.argmax(1), z.argmax(1))  # the one-hot of the NOISY logits
    # soft is the noise-free softmax over the group axis (the released attn_dict['soft']).
    e = np.exp(np.asarray(logits) - np.asarray(logits).max(1, keepdims=True))
    np.testing.assert_allclose(np.asarray(soft), e / e.sum(1, keepdims=True), rtol=1e-5)
    # Straight-through: the gradient through `hard` is the gradient through softmax((logits + g) / tau).
    g_hard = jax.grad(lambda l: (w * oad.gumbel_hard_assignment(l, 1, g, 0.5)[0]).sum())(logits)
    g_soft = jax.grad(lambda l: (w * jax.nn.softmax((l + g) / 0.5, axis=1)).sum())(logits)
    np.testing.assert_allclose(np.asarray(g_hard), np.asarray(g_soft), rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(g_hard)).max() > 0
    # Eval (no noise): argmax of the logits themselves.
    he, _ = oad.gumbel_hard_assignment(logits, axis=1)
    np.testing.assert_array_equal(np.asarray(he).argmax(1), np.asarray(logits).argmax(1))


def _layer_norm(x, p):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * np.asarray(p["scale"]) + np.asarray(p["bias"])


def _gelu(x):
    from scipy.special import erf
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def test_cross_block_is_the_released_post_norm_block():
    """x = q + attn(q, kv); x = x + mlp(ln_2 x); ln_post(x), by hand (numpy), heads split as the fused kernel."""
    blk = oad.PostNormCrossBlock(16, 2)
    rng = np.random.default_rng(0)
    q, kv = rng.standard_normal((2, 3, 16)), rng.standard_normal((2, 5, 16))
    p = blk.init(jax.random.PRNGKey(0), jnp.asarray(q), jnp.asarray(kv))["params"]
    p = jax.tree_util.tree_map(lambda x: np.asarray(x) + 0.1 * rng.standard_normal(x.shape), p)  # non-trivial norms
    got = np.asarray(blk.apply({"params": p}, jnp.asarray(q), jnp.asarray(kv)))
    a = p["attn"]
    w, b = np.asarray(a["in_proj_kernel"]), np.asarray(a["in_proj_bias"])
    qq, kk, vv = q @ w[:, :16] + b[:16], kv @ w[:, 16:32] + b[16:32], kv @ w[:, 32:] + b[32:]
    heads = lambda x: x.reshape(*x.shape[:-1], 2, 8).swapaxes(-2, -3)  # [B, H, N, 8]
    logits = heads(qq) @ heads(kk).swapaxes(-1, -2) / np.sqrt(8)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    att = (e / e.sum(-1, keepdims=True)) @ heads(vv)
    att = att.swapaxes(-2, -3).reshape(2, 3, 16) @ np.asarray(a["out_proj"]["kernel"]) + np.asarray(a["out_proj"]["bias"])
    x = q + att
    m = p["mlp"]
    h = _gelu(_layer_norm(x, p["ln_2"]) @ np.asarray(m["fc1"]["kernel"]) + np.asarray(m["fc1"]["bias"]))
    x = x + h @ np.asarray(m["fc2"]["kernel"]) + np.asarray(m["fc2"]["bias"])
    np.testing.assert_allclose(got, _layer_norm(x, p["ln_post"]), rtol=1e-4, atol=1e-5)


def test_encoder_tokens_go_on_and_cross_block_feeds_only_enc_feat():
    """The clustering sees the causal encoder's W tokens, not the cross-attended ones (no write-back); the cross
    block's parameters reach enc_feat only. dntr_write_back=True (the paper reading) changes that."""
    cfg = tiny_config()
    p = tiny_params()
    x = jax.random.normal(jax.random.PRNGKey(4), (2, 16, 32))
    run = lambda c, q: oad.OVOAD(c).apply({"params": q}, x, method=oad.OVOAD.encode_video)
    bumped = dict(p, dntr_cross=jax.tree_util.tree_map(lambda t: t + 0.5, p["dntr_cross"]))
    a, b = run(cfg, p), run(cfg, bumped)
    np.testing.assert_array_equal(np.asarray(a["cluster_frames"]), np.asarray(b["cluster_frames"]))
    np.testing.assert_array_equal(np.asarray(a["video"]), np.asarray(b["video"]))
    assert np.abs(np.asarray(a["enc_feat"]) - np.asarray(b["enc_feat"])).max() > 1e-3
    np.testing.assert_array_equal(np.asarray(a["dntr_tokens"]), np.asarray(b["dntr_tokens"]))
    wb = tiny_config(dntr_write_back=True)
    assert np.abs(np.asarray(run(wb, p)["video"]) - np.asarray(run(wb, bumped)["video"])).max() > 1e-4
    # enc_feat goes through the same final LayerNorm as the groups (no separate norm parameters).
    scaled = dict(p, ln_out={"scale": 2.0 * p["ln_out"]["scale"], "bias": p["ln_out"]["bias"]})
    np.testing.assert_allclose(np.asarray(run(cfg, scaled)["enc_feat"]) - np.asarray(p["ln_out"]["bias"]),
                               2.0 * (np.asarray(a["enc_feat"]) - np.asarray(p["ln_out"]["bias"])), rtol=1e-5, atol=1e-6)


def test_training_mode_uses_gumbel_and_dropout_rngs():
    cfg = tiny_config(dropout=0.1, drop_path=0.1)
    p = tiny_params(dropout=0.1, drop_path=0.1)
    model = oad.OVOAD(cfg)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 32))
    run = lambda k: model.apply({"params": p}, x, False, method=oad.OVOAD.encode_video,
                                rngs={"dropout": k, "gumbel": k})
    a, b = run(jax.random.PRNGKey(0)), run(jax.random.PRNGKey(1))
    assert np.abs(np.asarray(a["video"]) - np.asarray(b["video"])).max() > 0
    np.testing.assert_array_equal(np.asarray(run(jax.random.PRNGKey(0))["video"]), np.asarray(a["video"]))


def test_adapters_start_as_identity_and_variants_build():
    cfg = tiny_config(visual_adapter_dim=8)
    p = oad.init_params(cfg, jax.random.PRNGKey(0), CONTEXT)
    assert "adapter" in p["dntr_0"] and "adapter" in p["text"]["resblocks_0"] and "adapter" in p["out_0"]
    assert "adapter" not in p["dntr_cross"] and "adapter" not in p["grouping"]["pre_assign_attn"]
    assert not np.any(np.asarray(p["dntr_0"]["adapter"]["up"]["kernel"]))  # zero-initialised up-projection
    # Same params without the adapter subtrees = the adapter-free model: identical outputs at init.
    strip = lambda t: {k: strip(v) for k, v in t.items() if k != "adapter"} if isinstance(t, dict) else t
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 32))
    with_a = oad.OVOAD(cfg).apply({"params": p}, x, method=oad.OVOAD.encode_video)
    without = oad.OVOAD(tiny_config(text_adapter_dim=0)).apply({"params": strip(p)}, x, method=oad.OVOAD.encode_video)
    np.testing.assert_allclose(np.asarray(with_a["video"]), np.asarray(without["video"]), atol=1e-6)
    paper = tiny_config(dntr_mode="paper", score_fusion="paper", mask_mode="paper", zero_shot_clip=False)
    pp = oad.init_params(paper, jax.random.PRNGKey(0), CONTEXT)
    assert "dntr_cross" not in pp and "zs_text" not in pp and "cross_attn" in pp["dntr_0"]
    # Paper decoder: neighbouring-frame queries are causal among themselves (change query 13 of 12..15).
    y = np.asarray(x).copy()
    y[:, 13] += 3.0 * np.random.default_rng(0).standard_normal(32)  # not a constant: LayerNorm would remove it
    ea = oad.OVOAD(paper).apply({"params": pp}, x, method=oad.OVOAD.encode_video)
    eb = oad.OVOAD(paper).apply({"params": pp}, jnp.asarray(y), method=oad.OVOAD.encode_video)
    assert np.abs(np.asarray(ea["enc_feat"]) - np.asarray(eb["enc_feat"])).max() > 1e-4  # the last frame sees it
    f = nn.apply(lambda m, z: m.dntr[0](z[:, -4:], z[:, :-4]), oad.OVOAD(paper))
    da, db = np.asarray(f({"params": pp}, x)), np.asarray(f({"params": pp}, jnp.asarray(y)))
    np.testing.assert_allclose(da[:, :1], db[:, :1], atol=1e-6)  # query 12 does not see frame 13
    s = oad.OVOAD(paper).apply({"params": pp}, x, _ids(3))["scores"]
    np.testing.assert_allclose(np.asarray(s).sum(-1), 1.0 + paper.alpha, rtol=1e-5)  # P_AC + alpha P_cur


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="score_fusion"):
        tiny_config(score_fusion="nope")
    with pytest.raises(ValueError, match="num_neighbour"):
        tiny_config(num_neighbour=16)
    with pytest.raises(ValueError, match="expects features"):
        oad.OVOAD(tiny_config()).apply({"params": tiny_params()}, jnp.zeros((1, 8, 32)),
                                       method=oad.OVOAD.encode_video)
