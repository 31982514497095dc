"""FS-CAL model (tcvideo/fs_cal/model.py): each cross-attention stage's shapes and formula on tiny
inputs against numpy, support-order invariance, anchors and box coding, the training-only relation
module."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tcvideo.fs_cal import model as fs

B, N, S, M, H = 2, 5, 3, 4, 6


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    xq = rng.normal(size=(B, N, H)).astype(np.float32)
    xs = rng.normal(size=(B, S, M, H)).astype(np.float32)
    qm = np.ones((B, N), bool)
    qm[1, 3:] = False  # padded proposals in the second episode
    return xq, qm, xs


MODES = [("rows", "columns"), ("rows", "none"), ("rows", "count"), ("keys", "columns")]


def _np_weights(lam, over, norm, row_mask=None, col_mask=None):
    """numpy reference of attention_weights for one [R, C] matrix (masks: [R] / [C] bool)."""
    rm = np.ones(lam.shape[0], bool) if row_mask is None else row_mask
    cm = np.ones(lam.shape[1], bool) if col_mask is None else col_mask
    if over == "keys":
        a = _np_softmax(np.where(rm[:, None], lam, -1e30), 0) * rm[:, None]
        return a
    a = _np_softmax(np.where(cm[None], lam, -1e30), 1) * cm[None] * rm[:, None]  # row-wise softmax
    if norm == "columns":
        return a / np.maximum(a.sum(0, keepdims=True), 1e-6)
    if norm == "count":
        return a * cm.sum() / rm.sum()
    return a


def test_row_softmax_normalisations():
    lam = np.random.default_rng(4).normal(size=(7, 3)).astype(np.float32)
    lit = np.asarray(fs.attention_weights(jnp.asarray(lam), "rows", "none"))
    np.testing.assert_allclose(lit.sum(1), 1.0, rtol=1e-5)  # the paper's row-wise softmax
    col = np.asarray(fs.attention_weights(jnp.asarray(lam), "rows", "columns"))
    np.testing.assert_allclose(col.sum(0), 1.0, rtol=1e-5)  # each output a convex combination
    np.testing.assert_allclose(col, lit / lit.sum(0), rtol=1e-5)  # same row-wise weights, rescaled columns
    keys = np.asarray(fs.attention_weights(jnp.asarray(lam), "keys", "columns"))
    np.testing.assert_allclose(keys, _np_softmax(lam, 0), rtol=1e-5)


@pytest.mark.parametrize("over,norm", MODES)
def test_stage1_query_to_support_formula(inputs, over, norm):
    xq, qm, xs = inputs
    mod = fs.QueryToSupportContext(over, norm)
    p = mod.init(jax.random.PRNGKey(1), xq, qm, xs)
    out = np.asarray(mod.apply(p, xq, qm, xs))
    assert out.shape == (B, S, M, H)
    w = np.asarray(p["params"]["bilinear"]["W"])
    for b in range(B):
        q = xq[b][qm[b]]  # only valid proposals take part
        for l in range(S):
            lam = q @ w @ xs[b, l].T / math.sqrt(H)  # formula 1, [N, M]
            a = _np_weights(lam, over, norm)
            np.testing.assert_allclose(out[b, l], a.T @ q + xs[b, l], rtol=1e-4, atol=1e-4)  # formula 2


def _np_coarse(xs_l, kern, bias, k):
    """One support [M, H] -> its kernel-k stride-k summary [ceil(M/k), H] (last segment repeated)."""
    m = xs_l.shape[0]
    n = -(-m // k)
    x = np.concatenate([xs_l, np.repeat(xs_l[-1:], n * k - m, 0)])
    return np.stack([sum(x[i * k + j] @ kern[j] for j in range(k)) + bias for i in range(n)])


@pytest.mark.parametrize("over,norm", MODES)
def test_stage2_dynamics_coarse_individual_to_all(inputs, over, norm):
    _, _, xs = inputs
    ks = (1, 3)  # M = 4: 4 + 2 coarse segments per support
    mod = fs.DynamicsCrossAttention(H, ks, "strided", "all", over, norm)
    p = mod.init(jax.random.PRNGKey(2), xs)
    out = np.asarray(mod.apply(p, xs))
    assert out.shape == (B, S, M, H)
    xp = np.asarray(mod.apply(p, xs, method=fs.DynamicsCrossAttention.granularities))
    assert xp.shape == (B, S, M + 2, H)  # coarser: kernel 3 with stride 3 gives ceil(4 / 3) = 2 summaries
    ref = np.stack([np.stack([np.concatenate([_np_coarse(xs[b, l], np.asarray(p["params"][f"conv_k{k}"]["kernel"]),
                                                         np.asarray(p["params"][f"conv_k{k}"]["bias"]), k)
                                              for k in ks]) for l in range(S)]) for b in range(B)])
    np.testing.assert_allclose(xp, ref, rtol=1e-4, atol=1e-5)  # formula 3
    w = np.asarray(p["params"]["bilinear"]["W"])
    for b in range(B):
        allp = xp[b].reshape(-1, H)  # the summaries of all supports (individual-to-all)
        for l in range(S):
            lam = allp @ w @ xs[b, l].T / math.sqrt(H)  # formula 4, [S*P, M]
            a = _np_weights(lam, over, norm)
            np.testing.assert_allclose(out[b, l], a.T @ allp + xs[b, l], rtol=1e-4, atol=1e-4)  # formula 5
    own = fs.DynamicsCrossAttention(H, ks, "strided", "own", over, norm)
    o = np.asarray(own.apply(p, xs))
    lam = xp[0, 0] @ w @ xs[0, 0].T / math.sqrt(H)
    np.testing.assert_allclose(o[0, 0], _np_weights(lam, over, norm).T @ xp[0, 0] + xs[0, 0], rtol=1e-4, atol=1e-4)


def test_stage2_pooled_summary(inputs):
    _, _, xs = inputs
    mod = fs.DynamicsCrossAttention(H, (2,), "pooled")
    p = mod.init(jax.random.PRNGKey(2), xs)
    xp = np.asarray(mod.apply(p, xs, method=fs.DynamicsCrossAttention.granularities))
    d = p["params"]["pool_k2"]
    pooled = xs.reshape(B, S, 2, 2, H).mean(3)
    np.testing.assert_allclose(xp, pooled @ np.asarray(d["kernel"]) + np.asarray(d["bias"]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("over,norm", MODES)
def test_stage3_support_to_query_formula_and_order_invariance(inputs, over, norm):
    xq, qm, ys = inputs
    mod = fs.SupportToQueryContext(over, norm)
    p = mod.init(jax.random.PRNGKey(3), xq, qm, ys)
    out = np.asarray(mod.apply(p, xq, qm, ys))
    assert out.shape == (B, N, H)
    w = np.asarray(p["params"]["bilinear"]["W"])
    for b in range(B):
        y = ys[b].reshape(S * M, H)  # all supports at once
        lam = y @ w @ xq[b].T / math.sqrt(H)  # [S*M, N]
        a = _np_weights(lam, over, norm, col_mask=qm[b])
        valid = qm[b]
        np.testing.assert_allclose(out[b][valid], (a.T @ y + xq[b])[valid], rtol=1e-4, atol=1e-4)  # formula 6
    perm = np.array([2, 0, 1])
    np.testing.assert_allclose(np.asarray(mod.apply(p, xq, qm, ys[:, perm])), out, rtol=1e-5, atol=1e-5)


def test_stages_one_and_two_feed_stage_three():
    """The proposal scores depend on stage 1's and stage 2's parameters (they reach the classifier only
    through stage 3's input): with their output replaced by their input, changing them would change nothing."""
    cfg = fs.FSCALConfig(hidden_dim=8, anchor_scales=(2, 4), dynamics_kernels=(1, 2), num_pseudo_classes=3)
    model = fs.FSCAL(cfg)
    rng = np.random.default_rng(1)
    q = rng.normal(size=(2, 10, 5)).astype(np.float32)
    qm = np.ones((2, 10), bool)
    s = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0), q, qm, s)["params"]
    apply = jax.jit(lambda p: model.apply({"params": p}, q, qm, s)["logits"])
    base = np.asarray(apply(params))
    for stage in ("stage1_q2s", "stage2_dynamics"):
        changed = {**params, stage: jax.tree_util.tree_map(lambda x: 3.0 * x + 0.5, params[stage])}
        diff = np.abs(np.asarray(apply(changed)) - base).max()
        assert diff > 1e-3, (stage, diff)


def test_full_model_shapes_support_order_invariance_and_relation_module():
    cfg = fs.FSCALConfig(hidden_dim=8, anchor_scales=(2, 4), dynamics_kernels=(1, 2), num_pseudo_classes=3)
    model = fs.FSCAL(cfg)
    rng = np.random.default_rng(0)
    t, d = 12, 5
    q = rng.normal(size=(2, t, d)).astype(np.float32)
    qm = np.ones((2, t), bool)
    qm[1, 9:] = False
    s = rng.normal(size=(2, 3, 4, d)).astype(np.float32)
    n = t * 2
    p = model.init(jax.random.PRNGKey(0), q, qm, s, jnp.ones((2, n)))
    out = model.apply(p, q, qm, s)
    assert out["logits"].shape == (2, n) and out["reg"].shape == (2, n, 2) and out["boxes"].shape == (2, n, 2)
    assert "relation_logits" not in out  # the relation module runs only in training
    assert np.asarray(out["proposal_mask"])[1].sum() == 9 * 2 and np.asarray(out["proposal_mask"])[0].all()
    tr = model.apply(p, q, qm, s, relation_weights=jnp.ones((2, n)))
    assert tr["relation_logits"].shape == (2, 3)
    np.testing.assert_allclose(tr["logits"], out["logits"], rtol=1e-6)
    perm = model.apply(p, q, qm, s[:, [1, 2, 0]])
    np.testing.assert_allclose(perm["logits"], out["logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(perm["reg"], out["reg"], rtol=1e-4, atol=1e-5)
    # the supports matter: other supports give other scores
    other = model.apply(p, q, qm, rng.normal(size=s.shape).astype(np.float32))
    assert np.abs(np.asarray(other["logits"]) - np.asarray(out["logits"])).max() > 1e-3


def test_padding_to_a_longer_bucket_changes_nothing():
    """A query of 7 snippets padded to 8 or to 16 (two buckets): the same scores and boxes for its
    valid proposals (padding is masked in pooling and in every stage)."""
    cfg = fs.FSCALConfig(hidden_dim=8, anchor_scales=(2, 4), dynamics_kernels=(1, 2), num_pseudo_classes=3)
    model = fs.FSCAL(cfg)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 7, 5)).astype(np.float32)
    s = rng.normal(size=(1, 2, 4, 5)).astype(np.float32)
    outs = []
    for t in (8, 16):
        q = np.zeros((1, t, 5), np.float32)
        q[:, :7] = x
        qm = np.zeros((1, t), bool)
        qm[:, :7] = True
        if not outs:
            p = model.init(jax.random.PRNGKey(0), q, qm, s)
        o = model.apply(p, q, qm, s)
        n = 7 * 2  # anchors are ordered (t, scale): the first 14 are centred on the valid snippets
        outs.append((np.asarray(o["logits"])[0, :n], np.asarray(o["boxes"])[0, :n]))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-5)


def test_anchors_pooling_and_box_coding():
    a = fs.make_anchors(4, (2, 4))
    assert a.shape == (8, 2)
    np.testing.assert_allclose(a[:2], [[-0.5, 1.5], [-1.5, 2.5]])  # t = 0, scales 2 and 4
    boxes = np.array([[[0.0, 3.0], [1.0, 2.5]] * 4])  # [1, 8, 2]
    np.testing.assert_allclose(fs.decode_boxes(jnp.asarray(a), fs.encode_boxes(jnp.asarray(a), boxes)), boxes,
                               rtol=1e-5, atol=1e-5)
    x = jnp.arange(12.0).reshape(1, 6, 2)
    np.testing.assert_allclose(fs.range_means(x, np.array([[1, 4], [2, 2]])), [[[4.0, 5.0], [0.0, 0.0]]])
    m = jnp.asarray([[True, True, True, False, False, False]])
    xm = x * m[..., None]
    np.testing.assert_allclose(fs.range_means(xm, np.array([[1, 4]]), m), [[[3.0, 4.0]]])  # valid snippets 1, 2


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="softmax_over"):
        fs.FSCALConfig(softmax_over="queries")
    with pytest.raises(ValueError, match="row_norm"):
        fs.FSCALConfig(row_norm="rows")
    with pytest.raises(ValueError, match="dynamics_keys"):
        fs.FSCALConfig(dynamics_keys="some")


def test_task_targets_loss_and_resumable_stream():
    from tcvideo.fs_cal.task import fs_cal_base_config
    from tcvideo.core.registry import get_task
    from tcvideo.fs_cal.metrics import temporal_iou
    cfg = fs_cal_base_config()
    f = cfg.fs_cal
    f.synthetic.update(dict(num_classes=8, videos_per_class=3, video_len=32, feature_dim=6, min_len=4, max_len=10))
    f.class_fractions = (0.5, 0.25, 0.25)
    f.shots, f.query_len, f.support_len, f.max_gt = 2, 32, 4, 3
    f.model.update(dict(hidden_dim=8, anchor_scales=(4, 8), dynamics_kernels=(1, 3), num_pseudo_classes=2))
    task = get_task(cfg)
    it = task.train_iterator(global_batch_size=4, seed=3, start_step=0, process_index=0, process_count=1)
    batches = [next(it) for _ in range(3)]
    resumed = next(task.train_iterator(global_batch_size=4, seed=3, start_step=2, process_index=0, process_count=1))
    for k in resumed:  # exact resume: the stream is a function of (seed, step)
        np.testing.assert_array_equal(resumed[k], batches[2][k])
    b = batches[0]
    best, matched = task.anchor_targets(jnp.asarray(b["gt"]), jnp.asarray(b["gt_mask"]))
    iou = temporal_iou(task.anchors[None], b["gt"]) * b["gt_mask"][:, None]  # padded ground truth ignored
    np.testing.assert_allclose(best, iou.max(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(matched, np.take_along_axis(b["gt"], iou.argmax(-1)[..., None], 1), atol=1e-6)
    params = task.init_params()
    loss, aux = jax.jit(task.loss)(params, {k: jnp.asarray(v) for k, v in b.items()}, jax.random.PRNGKey(0))
    assert np.isfinite(float(loss)) and set(aux) == {"cls_loss", "reg_loss", "relation_loss"}
    total = aux["cls_loss"] + f.reg_loss_weight * aux["reg_loss"] + f.relation_loss_weight * aux["relation_loss"]
    np.testing.assert_allclose(loss, total, rtol=1e-5)
    assert 0 <= b["pseudo"].min() and b["pseudo"].max() < 2
