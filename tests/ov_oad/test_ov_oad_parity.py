"""OV-OAD parity with the official PyTorch code (ZQSIAT/OV-OAD daebb20), through tcvideo's converter.

Runs every fixture found in ``$TCVIDEO_OV_OAD_REFERENCE_DIR`` or ../shared/reference/ov_oad (public_small and
any other configuration dropped there; nothing here depends on a fixture's sizes). The official files are
written with torch and read back by ``tcvideo.ov_oad.convert``. Modes (the fixture's ``modes``):

* ``eval``: eval mode, every intermediate, the class embeddings and the released scores;
* ``train``: the training forward with dropout off and the fixture's Gumbel noise: intermediates, the four
  losses, their total and the recorded gradients of the total;
* ``trainhard``: the same with the hard argmax assignment.

float64 (x64 on): the ``f64_*`` arrays within 1e-9 (relative to the array's largest magnitude when that
exceeds 1), every float32-only array within 1e-4; float32: every recorded array within 1e-4. Discrete
choices (group of each frame, the top-k class mask) must be identical. A recorded array that no
comparison covers fails the test, so a new key cannot be skipped silently.
"""
from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ov_oad_reference import Fixture, fixture_names
from tcvideo.ov_oad import convert as oad_convert, model as oad
from tcvideo.core.tree_util import flatten
from tcvideo.ov_oad.task import ov_oad_losses

pytest.importorskip("torch")
FIXTURES = fixture_names()
pytestmark = pytest.mark.skipif(not FIXTURES, reason="no OV-OAD reference fixtures (../shared/reference/ov_oad)")

F64_TOL = 1e-9
F32_TOL = 1e-4
# Inputs and diagnostics of the fixture, not outputs of the model.
NOT_OUTPUTS = {"text_ids", "saliency_ids", "enc_caption_mask", "frame_labels", "gumbel_noise", "eval_prompt_ids",
               "diag_assign_margin_eval", "diag_assign_margin_gumbel", "diag_topk_boundary_gap"}
LOSS_WEIGHTS = {"match": 1.0, "multi_label": 1.0, "current": 0.1, "mask": 1.0}  # the released weights
LOSS_NAMES = {"loss_matching": "match", "loss_multi_label": "multi_label", "loss_enc_feat": "current",
              "loss_dice": "mask"}
BLOCK_LAYERS = {0: "dntr", 1: "cluster", 2: "out"}


@pytest.fixture(scope="module", params=FIXTURES)
def converted(request, tmp_path_factory):
    fx = Fixture(request.param)
    assert fx.digest_ok, f"{fx.name}: regenerated weights / features do not match the fixture digests"
    ckpt, clip = fx.write_official_files(tmp_path_factory.mktemp(fx.name))
    config, params = oad_convert.convert(ckpt, clip)  # heads from the checkpoint's saved config
    assert config.num_heads == fx.num_heads
    return fx, config, params


def _capture_blocks(mdl, method_name):
    return isinstance(mdl, oad.Block) and method_name == "__call__"


def _video_outputs(mdl: oad.OVOAD, out: dict) -> dict:
    """encode_video outputs under the fixture's names (prefix-free)."""
    d = out["q"].shape[-1]
    return {"dntr_tokens": out["dntr_tokens"], "dntr_cross_out": out["dntr_cross"], "enc_feat": out["enc_feat"],
            "enc_x_pre_norm": out["dntr_cross"][:, -1], "cluster_frames": out["cluster_frames"],
            "cluster_group_tokens": out["cluster_groups"], "group_mixer_out": out["mixer"],
            "projected_group_tokens": out["projected"], "pre_assign_out": out["pre_assign"], "assign_q": out["q"],
            "assign_k": out["k"], "assign_logits": out["logits"], "assign_soft": out["soft"],
            "assign_hard": out["hard"], "assign_out": out["assign_out"], "grouped_tokens": out["grouped"],
            "out_blocks_tokens": out["out_tokens"], "group_feats": out["groups"], "video_feat": out["video"],
            "image_x": mdl.project_video(out["video"]), "image_feat": mdl.project_video(out["groups"]),
            "mask_qk": jnp.einsum("bgd,bwd->bgw", out["q"], out["k"]) / np.sqrt(d)}


def _eval_all(mdl: oad.OVOAD, feats, prompt_ids):
    out = mdl.encode_video(feats, deterministic=True)
    rec = _video_outputs(mdl, out)
    voc = mdl.vocabulary(prompt_ids)
    txt = mdl.encode_text(prompt_ids)
    rec.update(text_x_before_proj=txt, text_x=mdl.project_text(txt), text_encoder_call0_x=txt,
               text_encoder_call1_x=txt, text_embedding=voc["proj"], saliency_text_embedding=voc["text"])
    parts = mdl.score_parts(feats, voc)
    rec = {f"eval_{k}": v for k, v in rec.items()}
    rec["zs_text_embedding"] = voc["zs"].T
    rec.update(score_temporal=parts["temporal"], score_enc_feat=parts["current"], score_zs_frames=parts["zs_frames"],
               score_zs_means=parts["zs_frames"].mean(1), score_zs_single=parts["zs_frames"][:, -1],
               score_fused_means=parts["fused"],
               score_fused_single=oad.fuse_scores(parts, dataclasses.replace(mdl.config, zero_shot_pool="single"))["fused"],
               oad_normalize0_in=rec["eval_image_feat"], oad_normalize0_out=oad.l2n(rec["eval_image_feat"]),
               oad_normalize1_in=rec["eval_image_x"], oad_normalize1_out=oad.l2n(rec["eval_image_x"]),
               oad_softmax0_in=parts["pooled_logits"], oad_softmax0_out=parts["pooled_prob"],
               oad_softmax1_in=parts["group_logits"], oad_softmax1_out=parts["group_prob"],
               oad_one_hot0_in=jnp.argmax(out["soft"], axis=1), oad_one_hot0_out=parts["frame_group"],
               oad_softmax2_in=parts["frame_logits"].swapaxes(1, 2), oad_softmax2_out=parts["temporal"].swapaxes(1, 2))
    return rec


def _train_all(mdl: oad.OVOAD, feats, text_ids, saliency_ids, mask, noise, gumbel: bool, prefix: str):
    out = mdl.encode_video(feats, deterministic=True, gumbel=gumbel, gumbel_noise=noise)
    rec = _video_outputs(mdl, out)
    b, m, length = text_ids.shape
    txt = mdl.encode_text(text_ids.reshape(b * m, length))
    cap = mdl.project_text(txt).reshape(b, m, -1)
    sal = mdl.encode_text(saliency_ids[:, -1])
    rec.update(text_x_before_proj=txt, text_encoder_call0_x=txt, text_encoder_call1_x=sal, text_x=cap[:, 0],
               text_multi_label_x=cap[:, 1:], contrastive_call0_a=rec["image_x"], contrastive_call0_b=cap[:, 0],
               contrastive_call1_a=mdl.saliency(out["enc_feat"]), contrastive_call1_b=sal,
               mask_pred=oad.mask_prediction(out["q"], out["k"]), mask_gt=mask)
    return {f"{prefix}{k}": v for k, v in rec.items()}


def _official_grad(name: str, grads: dict, config: oad.OVOADConfig) -> np.ndarray:
    """Gradient w.r.t. the official parameter ``name``: the inverse of the converter rule that reads it."""
    flat = flatten(grads)
    for rule in oad_convert.ovoad_rules(config):
        if name not in rule.src:
            continue
        g = np.asarray(flat[rule.dst])
        if len(rule.src) > 1:  # q | k | v stacked along the output axis
            i, d = rule.src.index(name), g.shape[-1] // len(rule.src)
            g = g[..., i * d:(i + 1) * d]
        transposed = rule.fn is oad_convert.transpose or (len(rule.src) > 1 and g.ndim == 2)
        return g.T if transposed else g
    raise KeyError(f"no converter rule reads {name}")


def _fast_jit(fn, *args):
    """jit(fn)(*args) compiled at backend optimisation level 0: compiling is most of this test's time (half
    of it at the default level); the results agree with the default build far inside the tolerances."""
    return jax.jit(fn).lower(*args).compile(compiler_options={"xla_backend_optimization_level": 0})(*args)


def _run(fx: Fixture, config: oad.OVOADConfig, params: dict, dtype) -> dict:
    """Every recorded quantity of every mode, computed by tcvideo in ``dtype``, under the fixture's names.
    One jitted function per mode (values, losses and gradients together); the inputs are ARGUMENTS of the
    jitted functions, not closed-over constants (XLA would constant-fold through them for minutes)."""
    a = fx.arrays
    p = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)
    model = oad.OVOAD(config)
    data = {"feats": jnp.asarray(fx.features, dtype), "noise": jnp.asarray(a["gumbel_noise"], dtype),
            "mask": jnp.asarray(a["enc_caption_mask"], dtype), "text_ids": jnp.asarray(a["text_ids"]),
            "saliency_ids": jnp.asarray(a["saliency_ids"]), "prompt_ids": jnp.asarray(a["eval_prompt_ids"])}
    rec = {}
    for prefix, gumbel in (("train_", True), ("trainhard_", False)):
        recorded = nn.apply(functools.partial(_train_all, gumbel=gumbel, prefix=prefix), model,
                            mutable=["intermediates"], capture_intermediates=_capture_blocks)

        def total(p, d, gumbel=gumbel, recorded=recorded):
            batch = {"features": d["feats"], "caption_ids": d["text_ids"], "current_ids": d["saliency_ids"][:, -1],
                     "caption_mask": d["mask"]}
            t, parts = ov_oad_losses(model, p, batch, jax.random.PRNGKey(0), LOSS_WEIGHTS, float(config.window), dtype,
                                     deterministic=True, gumbel=gumbel, gumbel_noise=d["noise"])
            vals, inter = recorded({"params": p}, d["feats"], d["text_ids"], d["saliency_ids"], d["mask"], d["noise"])
            return t, (parts, vals, inter)

        (t, (parts, vals, inter)), g = _fast_jit(jax.value_and_grad(total, has_aux=True), p, data)
        rec.update(vals)
        rec.update(_blocks(inter, prefix))
        rec[f"{prefix}loss_total"] = t
        for official, ours in LOSS_NAMES.items():
            rec[f"{prefix}{official}"] = parts[ours] * LOSS_WEIGHTS[ours]
        for key in a:
            if key.startswith((f"{prefix}grad__", f"f64_{prefix}grad__")):
                name = key.split("grad__", 1)[1]
                rec[f"{prefix}grad__{name}"] = _official_grad(name, g, config)
    evaluate = nn.apply(_eval_all, model, mutable=["intermediates"], capture_intermediates=_capture_blocks)
    vals, inter = _fast_jit(lambda p, d: evaluate({"params": p}, d["feats"], d["prompt_ids"]), p, data)
    rec.update(vals)
    rec.update(_blocks(inter, "eval_"))
    return {k: np.asarray(v) for k, v in rec.items()}


def _blocks(inter, prefix: str) -> dict:
    """Captured Block outputs -> {prefix}block_out__{layer}_{i} (the first call of each block)."""
    out = {}
    for layer, name in BLOCK_LAYERS.items():
        i = 0
        while f"{name}_{i}" in inter["intermediates"]:
            out[f"{prefix}block_out__{layer}_{i}"] = inter["intermediates"][f"{name}_{i}"]["__call__"][0]
            i += 1
    return out


def _err(ours: np.ndarray, ref: np.ndarray, key: str) -> float:
    """Max abs error; -inf entries (masked classes) must sit at the same places."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{key}: shape {ours.shape} vs reference {ref.shape}"
    inf = np.isinf(ref)
    np.testing.assert_array_equal(np.isinf(ours), inf, err_msg=f"{key}: masked entries differ")
    if inf.all():
        return 0.0
    return float(np.max(np.abs(ours[~inf] - ref[~inf])))


def _check_discrete(rec: dict, a: dict, tag: str) -> None:
    for mode in ("eval", "train", "trainhard"):
        key = f"{mode}_assign_hard"
        np.testing.assert_array_equal(rec[key].argmax(1), a[key].argmax(1), err_msg=f"{tag}: group of each frame ({key})")
    np.testing.assert_array_equal(np.isinf(rec["oad_softmax1_in"]), np.isinf(a["oad_softmax1_in"]),
                                  err_msg=f"{tag}: top-k class mask")


def _compare(rec: dict, a: dict, keys, tol: float, relative: bool, tag: str, ref_key=lambda k: k) -> dict:
    errors = {}
    for k in keys:
        ref = a[ref_key(k)]
        e = _err(rec[k], ref, k)
        scale = max(1.0, float(np.max(np.abs(ref[np.isfinite(ref)])))) if relative and np.isfinite(ref).any() else 1.0
        errors[k] = e / scale
    bad = {k: v for k, v in errors.items() if v > tol}
    assert not bad, f"{tag}: beyond {tol}: {bad}"
    return errors


def _outputs(a: dict) -> list:
    return sorted(k for k in a if k not in NOT_OUTPUTS and not k.startswith("f64_"))


def test_float32_parity(converted):
    fx, config, params = converted
    a = fx.arrays
    rec = _run(fx, config, params, jnp.float32)
    _check_discrete(rec, a, "float32")
    missing = [k for k in _outputs(a) if k not in rec]
    assert not missing, f"recorded outputs no comparison covers: {missing}"
    errors = _compare(rec, a, _outputs(a), F32_TOL, False, f"{fx.name} float32")
    worst = sorted(errors.items(), key=lambda kv: -kv[1])[:5]
    print(f"\n[{fx.name}] float32: {len(errors)} arrays, max abs error {max(errors.values()):.3g}; worst {worst}")


def test_float64_parity(converted):
    jax.config.update("jax_enable_x64", True)
    try:
        fx, config, params = converted
        a = fx.arrays
        rec = _run(fx, config, params, jnp.float64)
        _check_discrete(rec, a, "float64")
        f64 = sorted(k[len("f64_"):] for k in a if k.startswith("f64_"))
        missing = [k for k in f64 + _outputs(a) if k not in rec]
        assert not missing, f"recorded outputs no comparison covers: {missing}"
        exact = _compare(rec, a, f64, F64_TOL, True, f"{fx.name} float64", ref_key=lambda k: "f64_" + k)
        loose = _compare(rec, a, [k for k in _outputs(a) if k not in exact], F32_TOL, False,
                         f"{fx.name} float64 vs float32-only arrays")
        print(f"\n[{fx.name}] float64: {len(exact)} f64 arrays, max error {max(exact.values()):.3g}; "
              f"{len(loose)} float32-only arrays, max {max(loose.values()):.3g}")
    finally:
        jax.config.update("jax_enable_x64", False)
