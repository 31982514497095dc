"""Each OV-OAD loss against a hand (numpy) computation on tiny inputs, and the weighted total."""
import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.ov_oad import model as oad
from tcvideo.ov_oad import task as task_lib


def _norm(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_contrastive_loss_by_hand():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    s = 7.0
    logits = s * _norm(a) @ _norm(b).T
    i2t = -np.mean([_log_softmax(logits[i])[i] for i in range(3)])
    t2i = -np.mean([_log_softmax(logits[:, j])[j] for j in range(3)])
    got = task_lib.contrastive_loss(jnp.asarray(a), jnp.asarray(b), s)
    np.testing.assert_allclose(float(got), 0.5 * (i2t + t2i), rtol=1e-5)


def test_multi_label_loss_by_hand():
    rng = np.random.default_rng(1)
    v, t = rng.standard_normal((2, 4)), rng.standard_normal((2, 2, 4))  # B=2 videos, M=2 captions each
    s = 3.0
    vn, tn = _norm(v), _norm(t)
    # video i vs the 4 texts (0,0), (0,1), (1,0), (1,1): targets 1/2 on its own two.
    total_v = 0.0
    for i in range(2):
        logits = np.array([s * vn[i] @ tn[j, m] for j in range(2) for m in range(2)])
        target = np.array([0.5 if j == i else 0.0 for j in range(2) for m in range(2)])
        total_v += -(target * _log_softmax(logits)).sum()
    total_t = 0.0
    for j in range(2):
        for m in range(2):
            logits = np.array([s * tn[j, m] @ vn[i] for i in range(2)])
            total_t += -_log_softmax(logits)[j]
    want = 0.5 * (total_v / 2 + total_t / 4)
    got = task_lib.multi_label_loss(jnp.asarray(v), jnp.asarray(t), s)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_dice_and_mask_prediction_by_hand():
    p = np.array([[0.2, 0.9, 1.0, 0.0], [0.5, 0.5, 0.0, 1.0]])
    t = np.array([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    d0 = 1 - (2 * (0.9 + 1.0) + 1) / (2.1 + 2 + 1)
    d1 = 1 - (0 + 1) / (2.0 + 0 + 1)
    np.testing.assert_allclose(float(task_lib.dice_loss(jnp.asarray(p), jnp.asarray(t), 4.0)), (d0 + d1) / 4, rtol=1e-6)
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal((2, 2, 8)), rng.standard_normal((2, 5, 8))
    raw = np.einsum("bgd,bwd->bgw", q, k).mean(1) / np.sqrt(8)
    raw = raw / np.linalg.norm(raw, axis=-1, keepdims=True)
    want = (raw - raw.min(-1, keepdims=True)) / (raw.max(-1, keepdims=True) - raw.min(-1, keepdims=True))
    np.testing.assert_allclose(np.asarray(oad.mask_prediction(jnp.asarray(q), jnp.asarray(k))), want, rtol=1e-5,
                               atol=1e-6)


def test_each_loss_gets_its_own_inputs_and_the_total_weighs_them():
    """ov_oad_losses against the losses rebuilt from the model's own methods (encode_video, encode_text,
    projectors, saliency): caption 0 -> matching, captions 1.. -> multi-label with its own scale, the last
    frame's caption vs enc_feat @ saliency_projector -> current, q/k -> dice over the caption mask. The
    parity test checks the same against the official code at released sizes."""
    from ov_oad_fixture import CONTEXT, tiny_config, tiny_params
    cfg = tiny_config(zero_shot_clip=False)
    p = tiny_params(zero_shot_clip=False)
    p = dict(p, multi_label_logit_scale=p["multi_label_logit_scale"] + 0.7)  # the two scales differ
    model = oad.OVOAD(cfg)
    rng = np.random.default_rng(3)
    ids = np.zeros((4, 3, CONTEXT), np.int32)
    ids[..., 0], ids[..., 1], ids[..., 2] = 49406, rng.integers(300, 400, (4, 3)), 49407
    cur = np.zeros((4, CONTEXT), np.int32)
    cur[:, 0], cur[:, 1], cur[:, 2] = 49406, rng.integers(400, 500, 4), 49407
    batch = {"features": jnp.asarray(rng.standard_normal((4, 16, 32)), jnp.float32),
             "caption_ids": jnp.asarray(ids), "current_ids": jnp.asarray(cur),
             "caption_mask": jnp.asarray(rng.integers(0, 2, (4, 16)), jnp.float32)}
    w = {"match": 1.0, "multi_label": 0.5, "current": 0.1, "mask": 2.0}
    total, parts = jax.jit(lambda q: task_lib.ov_oad_losses(model, q, batch, jax.random.PRNGKey(0), w, 16.0,
                                                            deterministic=True, gumbel=False))(p)
    m = lambda method, *a: model.apply({"params": p}, *a, method=method)
    out = m(oad.OVOAD.encode_video, batch["features"])
    video = m(oad.OVOAD.project_video, out["video"])
    caps = m(oad.OVOAD.project_text, m(oad.OVOAD.encode_text, batch["caption_ids"]))
    want = {"match": task_lib.contrastive_loss(video, caps[:, 0], m(oad.OVOAD.scale)),
            "multi_label": task_lib.multi_label_loss(video, caps[:, 1:], m(oad.OVOAD.multi_label_scale)),
            "current": task_lib.contrastive_loss(m(oad.OVOAD.saliency, out["enc_feat"]),
                                                 m(oad.OVOAD.encode_text, batch["current_ids"]), m(oad.OVOAD.scale)),
            "mask": task_lib.dice_loss(oad.mask_prediction(out["q"], out["k"]), batch["caption_mask"], 16.0)}
    for k in want:
        np.testing.assert_allclose(float(parts[k]), float(want[k]), rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(float(total), sum(w[k] * float(want[k]) for k in want), rtol=1e-5)
    assert len({round(float(v), 4) for v in want.values()}) == 4  # four different numbers: a swap would show


def test_grads_reach_the_assignment_saliency_and_text():
    from ov_oad_fixture import CONTEXT, tiny_config, tiny_params
    cfg = tiny_config(zero_shot_clip=False)
    p = tiny_params(zero_shot_clip=False)
    model = oad.OVOAD(cfg)
    rng = np.random.default_rng(4)
    ids = np.zeros((4, 3, CONTEXT), np.int32)
    ids[..., 0], ids[..., 1], ids[..., 2] = 49406, rng.integers(300, 400, (4, 3)), 49407
    batch = {"features": jnp.asarray(rng.standard_normal((4, 16, 32)), jnp.float32),
             "caption_ids": jnp.asarray(ids), "current_ids": jnp.asarray(ids[:, 0]),
             "caption_mask": jnp.asarray(rng.integers(0, 2, (4, 16)), jnp.float32)}
    w = {"match": 1.0, "multi_label": 1.0, "current": 0.1, "mask": 1.0}
    grads = jax.jit(jax.grad(lambda q: task_lib.ov_oad_losses(model, q, batch, jax.random.PRNGKey(0), w, 16.0)[0]))(p)
    # The mask loss reaches the assignment q/k projections; the current loss the saliency projector.
    assert np.abs(np.asarray(grads["grouping"]["assign_k"]["kernel"])).max() > 0
    assert np.abs(np.asarray(grads["saliency_projector"])).max() > 0
    assert np.abs(np.asarray(grads["text"]["resblocks_0"]["attn"]["in_proj_kernel"])).max() > 0


def test_task_config_errors_name_the_field(tmp_path):
    import pytest
    from tcvideo.core.registry import get_task
    from tcvideo.ov_oad.task import default_ov_oad_config
    from tcvideo.core.config import ConfigError, base_config

    def cfg(**kw):
        c = base_config()
        c.task = "ov_oad"
        c.ov_oad = default_ov_oad_config()
        c.ov_oad.text = "tiny"
        c.ov_oad.require_clip = False
        c.batch_size = c.per_device_batch_size = 8
        for k, v in kw.items():
            node = c.ov_oad
            *parents, leaf = k.split(".")
            for p_ in parents:
                node = node[p_]
            node[leaf] = v
        return c

    with pytest.raises(ConfigError, match=r"config\.init_clip"):
        get_task(cfg(require_clip=True))
    with pytest.raises(ConfigError, match=r"config\.per_device_batch_size"):
        c = cfg()
        c.batch_size, c.per_device_batch_size, c.grad_accum_steps = 64, 8, 0  # accumulation on 1-4 devices
        get_task(c)
    with pytest.raises(ConfigError, match=r"config\.ov_oad\.eval\.targets\.t\.prompt_names_file"):
        get_task(cfg(**{"eval.targets": {"t": {"source": "synthetic", "metric": "mAP",
                                               "prompt_names_file": str(tmp_path / "missing.txt")}}}))
    with pytest.raises(ConfigError, match=r"config\.ov_oad\.caption_mode"):
        get_task(cfg(caption_mode="words"))
    with pytest.raises(ConfigError, match=r"config\.ov_oad\.train\.features"):
        get_task(cfg(**{"train.source": "files", "train.features": str(tmp_path / "none")}))
    with pytest.raises(ConfigError, match=r"config\.ov_oad\.model"):
        get_task(cfg(model={"score_fusion": "bad"}))
    with pytest.raises(ConfigError, match=r"config\.ov_oad\.text"):
        get_task(cfg(text="ViT-Z"))
