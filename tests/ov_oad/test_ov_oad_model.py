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
    # End to end, the score of frame t depends only on frames <= t (stream of 24 frames, change frame 20).
    from tcvideo.ov_oad import stream as oad_stream
    feats = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (24, 32)))
    voc = model.apply({"params": p}, _ids(4), method=oad.OVOAD.vocabulary)
    s1 = oad_stream.score_video(cfg, p, feats, voc, batch_size=8)
    feats2 = feats.copy()
    feats2[20] += 5.0
    s2 = oad_stream.score_video(cfg, p, feats2, voc, batch_size=8)
    np.testing.assert_array_equal(s1[:20], s2[:20])
    assert np.abs(s1[20:] - s2[20:]).max() > 0


def test_gumbel_hard_assignment_straight_through():
    logits = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 7))
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 7))
    rng = jax.random.PRNGKey(5)
    hard, soft = oad.gumbel_hard_assignment(logits, axis=1, rng=rng, tau=1.0)
    h = np.asarray(hard)
    assert set(np.unique(h)) <= {0.0, 1.0}
    np.testing.assert_allclose(h.sum(1), 1.0)
    np.testing.assert_array_equal(h.argmax(1), np.asarray(soft).argmax(1))
    # Straight-through: the gradient through `hard` is the gradient through the Gumbel softmax.
    g_hard = jax.grad(lambda l: (w * oad.gumbel_hard_assignment(l, 1, rng)[0]).sum())(logits)
    g_soft = jax.grad(lambda l: (w * oad.gumbel_hard_assignment(l, 1, rng)[1]).sum())(logits)
    np.testing.assert_allclose(np.asarray(g_hard), np.asarray(g_soft), rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(g_hard)).max() > 0
    # Hand check of the soft part: softmax((logits + gumbel) / tau) over the group axis.
    u = np.asarray(jax.random.uniform(rng, logits.shape, jnp.float32, minval=1e-10, maxval=1.0))
    z = (np.asarray(logits) - np.log(-np.log(u))) / 1.0
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(np.asarray(soft), e / e.sum(1, keepdims=True), rtol=1e-5)
    # Eval (no rng): argmax of the logits themselves.
    he, _ = oad.gumbel_hard_assignment(logits, axis=1, rng=None)
    np.testing.assert_array_equal(np.asarray(he).argmax(1), np.asarray(logits).argmax(1))


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
    cfg = tiny_config(adapters=True, adapter_dim=8)
    p = oad.init_params(cfg, jax.random.PRNGKey(0), CONTEXT)
    assert "adapter" in p["dntr_0"] and "adapter" in p["text"]["resblocks_0"]
    assert not np.any(np.asarray(p["dntr_0"]["adapter"]["up"]["kernel"]))  # zero-initialised up-projection
    # Same params without the adapter subtrees = the adapter-free model: identical outputs at init.
    strip = lambda t: {k: strip(v) for k, v in t.items() if k != "adapter"} if isinstance(t, dict) else t
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 32))
    with_a = oad.OVOAD(cfg).apply({"params": p}, x, method=oad.OVOAD.encode_video)
    without = oad.OVOAD(tiny_config()).apply({"params": strip(p)}, x, method=oad.OVOAD.encode_video)
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
