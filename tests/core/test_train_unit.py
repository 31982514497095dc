"""In-process trainer checks on a tiny model: gradient accumulation, float16 loss scaling, NaN guard,
optimizer partition (frozen token embedding, 10x prompt lr), schedule, WiSE-FT semantics."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import train_fixtures as tf_
from tcvideo.core import train
from tcvideo.core import optimizer, sharding
from tcvideo.classification.ensemble import weight_ensemble


def _setup(variant="vifi_clip", **kw):
    cfg = tf_.tiny_config(variant, **kw)
    s = train.Setup(cfg)
    init = s.task.init_params()
    abstract = s.abstract_state(train._shape_tree(init))
    sh = sharding.state_shardings(abstract, s.mesh, cfg.fsdp)
    tx, sched = s.optimizer(abstract["params"])
    return cfg, s, init, sh, tx, sched


def _state(cfg, init, sh, tx, loss_scale=1.0):
    st = train.initial_state(init, sh, tx, cfg)
    st["loss_scale"] = sharding.replicated_value(np.float32(loss_scale), sh["loss_scale"])
    return st


def _batch(s, n=8, seed=0):
    rng = np.random.default_rng(seed)
    t, r = s.task.mc.num_frames, s.task.mc.clip.image_resolution
    video = rng.normal(size=(n, t, r, r, 3)).astype(np.float32)
    labels = rng.integers(0, 4, n)
    targets = np.eye(4, dtype=np.float32)[labels] * 0.9 + 0.025
    sh = NamedSharding(s.mesh, P("data"))
    return {"video": sharding.global_array(video, sh), "targets": sharding.global_array(targets, sh)}


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def test_grad_accumulation_equals_large_batch():
    # eps=1 makes the Adam step ~ lr * grad, so parameter differences measure gradient differences
    # (with eps=1e-8 Adam blows float noise in zero-gradient coordinates, e.g. key biases, up to +-lr).
    cfg, s, init, sh, tx, sched = _setup(**{"lr": 1e-2, "warmup_epochs": 0, "eps": 1.0})
    batch = _batch(s, 16)
    outs = {}
    for accum in (1, 4):
        step = train.make_train_step(s.task, tx, sched, accum=accum,
                                     mesh=s.mesh, state_sharding=sh)
        st, m = step(_state(cfg, init, sh, tx), batch)
        outs[accum] = (float(m["loss"]), float(m["grad_norm"]), _np(st["params"]))
    for accum in (4,):
        assert outs[accum][0] == pytest.approx(outs[1][0], rel=1e-5)
        assert outs[accum][1] == pytest.approx(outs[1][1], rel=1e-4)
        for a, b in zip(jax.tree_util.tree_leaves(outs[1][2]), jax.tree_util.tree_leaves(outs[accum][2])):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # the step did move the parameters (so the comparison above is not vacuous)
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(init), jax.tree_util.tree_leaves(outs[1][2]))]
    assert sum(moved) > len(moved) // 2


def test_frozen_token_embedding_and_prompt_lr():
    cfg, s, init, sh, tx, sched = _setup("tc_clip", **{"lr": 1e-3, "warmup_epochs": 0, "lr_mults.prompt": 10.0,
                                                       "weight_decay": 0.0})
    step = train.make_train_step(s.task, tx, sched, accum=1,
                                 mesh=s.mesh, state_sharding=sh)
    st, m = step(_state(cfg, init, sh, tx), _batch(s))
    p = _np(st["params"])
    np.testing.assert_array_equal(p["text"]["token_embedding"]["embedding"], init["text"]["token_embedding"]["embedding"])
    # first Adam step moves each coordinate by ~lr (sign of the gradient): ctx by ~10x lr, others by ~lr
    d_ctx = np.abs(p["text"]["ctx"] - init["text"]["ctx"]).max()
    d_base = np.abs(p["visual"]["ln_post"]["scale"] - init["visual"]["ln_post"]["scale"]).max()
    lr0 = float(m["lr"]) if float(m["lr"]) > 0 else None
    assert d_ctx == pytest.approx(10 * d_base, rel=0.05), (d_ctx, d_base, lr0)



def test_config_param_rules_regroup_parameters():
    """config.param_rules come before the task's: freezing one group by config keeps it bit-identical while
    the rest moves, and a group with a multiplier trains at that multiple of the lr."""
    cfg, s, init, sh, tx, sched = _setup("tc_clip", **{"lr": 1e-3, "warmup_epochs": 0, "weight_decay": 0.0,
                                                       "param_rules": (("^visual/ln_post", "frozen"),
                                                                       ("^visual/proj$", "head")),
                                                       "lr_mults": {"prompt": 10.0, "head": 3.0}})
    step = train.make_train_step(s.task, tx, sched, accum=1, mesh=s.mesh, state_sharding=sh)
    st, _ = step(_state(cfg, init, sh, tx), _batch(s))
    p = _np(st["params"])
    np.testing.assert_array_equal(p["visual"]["ln_post"]["scale"], init["visual"]["ln_post"]["scale"])
    d_head = np.abs(p["visual"]["proj"] - init["visual"]["proj"]).max()
    d_base = np.abs(p["visual"]["ln_pre"]["scale"] - init["visual"]["ln_pre"]["scale"]).max()
    assert d_base > 0
    assert d_head == pytest.approx(3 * d_base, rel=0.05), (d_head, d_base)


def test_group_without_multiplier_is_a_config_error():
    from tcvideo.core.config import ConfigError
    with pytest.raises(ConfigError, match=r"^config.lr_mults: .*'head'"):
        _setup("tc_clip", **{"param_rules": (("^visual/proj$", "head"),)})

def test_lr_schedule_warmup_and_cosine():
    f = optimizer.lr_schedule(1.0, 0.01, warmup_steps=10, total_steps=100)
    assert float(f(0)) == 0.0
    assert float(f(5)) == pytest.approx(0.5)
    assert float(f(50)) == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-5)
    assert float(f(100)) == pytest.approx(0.01, rel=1e-4)


def test_fp16_loss_scaling_recovers_from_overflow():
    cfg, s, init, sh, tx, sched = _setup(**{"compute_dtype": "float16", "lr": 1e-3, "warmup_epochs": 0})
    step = train.make_train_step(s.task, tx, sched, accum=1,
                                 mesh=s.mesh, state_sharding=sh, growth_interval=3)
    st = _state(cfg, init, sh, tx, loss_scale=2.0 ** 40)  # float16 gradients overflow at this scale
    batch = _batch(s)
    history = []
    for _ in range(40):
        before = _np(st["params"])
        st, m = step(st, batch)
        history.append((bool(m["finite"]), float(m["loss_scale"]), float(st["loss_scale"])))
        if not bool(m["finite"]):  # skipped: params unchanged, scale halved
            for a, b in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(_np(st["params"]))):
                np.testing.assert_array_equal(a, b)
            assert float(st["loss_scale"]) == float(m["loss_scale"]) / 2
        if sum(f for f, _, _ in history) >= 4:
            break
    assert not history[0][0], "expected an overflow at loss scale 2**40"
    finite = [i for i, h in enumerate(history) if h[0]]
    assert finite, "loss scaling never recovered"
    first = finite[0]
    assert all(not h[0] for h in history[:first])
    # after recovery: finite steps apply updates; scale grows x2 after growth_interval good steps
    assert history[first + 2][2] == 2 * history[first][1]
    assert np.isfinite(float(m["loss"]))
    changed = any(not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(init),
                                                             jax.tree_util.tree_leaves(_np(st["params"]))))
    assert changed


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tf_.tiny_config("vifi_clip", **{"lr": 1e30, "warmup_epochs": 0, "total_steps": 6, "checkpoint_every": 1,
                                          "async_checkpointing": False, "min_lr": 1e30})
    with pytest.raises(train.NonFiniteLossError, match="non-finite loss") as e:
        train.train_and_evaluate(cfg, str(tmp_path))
    msg = str(e.value)
    assert "last good checkpoint" in msg
    failed_at = int(msg.split("at step ")[1].split(":")[0])
    from tcvideo.core.checkpoints import load_checkpoint_params
    import orbax.checkpoint as ocp
    with ocp.CheckpointManager(str(tmp_path / "checkpoints")) as mgr:
        last = mgr.latest_step()
    assert last is not None and last == failed_at - 1
    p = load_checkpoint_params(str(tmp_path))
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(p))


def test_weight_ensemble_semantics():
    init = {"a": np.zeros(3, np.float32), "text": {"ctx": np.zeros(2, np.float32)}, "b": np.ones(2, np.float32)}
    ft = {"a": np.ones(3, np.float32), "text": {"ctx": np.full(2, 5.0, np.float32)}, "b": np.ones(2, np.float32) * 3,
          "visual": {"attn": {"local_global_bias": np.full(2, 7.0, np.float32)}}}
    w1 = weight_ensemble(init, ft, 1.0)
    w0 = weight_ensemble(init, ft, 0.0)
    w7 = weight_ensemble(init, ft, 0.7)
    np.testing.assert_allclose(w1["a"], 1.0)
    np.testing.assert_allclose(w0["a"], 0.0)
    np.testing.assert_allclose(w7["a"], 0.7, rtol=1e-6)
    np.testing.assert_allclose(w7["b"], 0.3 + 2.1, rtol=1e-6)
    for w in (w0, w7):  # parameters CLIP lacks: from the fine-tuned model, unmixed
        np.testing.assert_array_equal(w["text"]["ctx"], 5.0)
        np.testing.assert_array_equal(w["visual"]["attn"]["local_global_bias"], 7.0)
    with pytest.raises(ValueError):
        weight_ensemble(init, ft, 1.5)


def test_fsdp_shards_largest_divisible_axis():
    assert sharding.fsdp_spec((64, 256), 4, True) == P(None, "data")
    assert sharding.fsdp_spec((3, 5), 4, True) == P()
    assert sharding.fsdp_spec((64, 256), 4, False) == P()
    cfg, s, init, sh, tx, sched = _setup(**{"fsdp": True, "lr": 1e-2, "warmup_epochs": 0, "eps": 1.0})
    specs = [x.spec for x in jax.tree_util.tree_leaves(sh["params"])]
    assert any("data" in tuple(sp) for sp in specs)
    step = train.make_train_step(s.task, tx, sched, accum=1,
                                 mesh=s.mesh, state_sharding=sh)
    cfg2, s2, init2, sh2, tx2, sched2 = _setup(**{"lr": 1e-2, "warmup_epochs": 0, "eps": 1.0})
    step2 = train.make_train_step(s2.task, tx2, sched2, accum=1,
                                  mesh=s2.mesh, state_sharding=sh2)
    batch = _batch(s)
    a, ma = step(_state(cfg, init, sh, tx), batch)
    b, mb = step2(_state(cfg2, init2, sh2, tx2), batch)
    assert float(ma["loss"]) == pytest.approx(float(mb["loss"]), rel=1e-6)
    for x, y in zip(jax.tree_util.tree_leaves(_np(a["params"])), jax.tree_util.tree_leaves(_np(b["params"]))):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_multihost_auto_detection():
    """jax.distributed is initialised on TPU pods, under Slurm with several tasks, or when asked."""
    cfg = tf_.tiny_config()
    assert not sharding.distributed_requested(cfg, {})
    assert not sharding.distributed_requested(cfg, {"SLURM_NTASKS": "1", "SLURM_PROCID": "0"})  # one srun task
    assert sharding.distributed_requested(cfg, {"SLURM_NTASKS": "8"})
    assert sharding.distributed_requested(cfg, {"TPU_WORKER_HOSTNAMES": "t0,t1"})
    assert sharding.distributed_requested(cfg, {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"})
    cfg.multihost = "false"
    assert not sharding.distributed_requested(cfg, {"SLURM_NTASKS": "8"})
    cfg.multihost = "true"
    assert sharding.distributed_requested(cfg, {})
    cfg.multihost, cfg.coordinator_address = "auto", "127.0.0.1:1"
    assert sharding.distributed_requested(cfg, {})


def test_remat_gives_the_same_loss_and_gradients():
    """config.remat recomputes block activations in the backward pass: same numbers, less memory."""
    grads = {}
    for remat in (False, True):
        # The smallest TC-CLIP that still has blocks to rematerialise: the tiny preset's 2 vision
        # (TC) blocks, 1 text block; one device, since sharding is not what this test checks
        # (compiling for the 4 simulated devices made it the slowest unit test).
        cfg, s, init, sh, tx, sched = _setup("tc_clip", remat=remat,
                                             **{"model.clip_overrides": ml_collections.ConfigDict(
                                                 dict(text_layers=1))})
        batch = {k: jnp.asarray(np.asarray(v)) for k, v in _batch(s).items()}
        params = jax.tree_util.tree_map(jnp.asarray, init)
        fn = jax.value_and_grad(lambda p: s.task.loss(p, batch, jax.random.PRNGKey(0))[0])
        # remat=True really rematerialises (a checkpoint/remat primitive per block), remat=False does not
        eqns = str(jax.make_jaxpr(fn)(params))
        assert ("remat" in eqns or "checkpoint" in eqns) == remat, remat
        loss, g = jax.jit(fn)(params)
        grads[remat] = (float(loss), _np(g))
    assert abs(grads[True][0] - grads[False][0]) < 1e-6
    for a, b in zip(jax.tree_util.tree_leaves(grads[False][1]), jax.tree_util.tree_leaves(grads[True][1])):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
