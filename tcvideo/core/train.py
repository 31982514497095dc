"""The one trainer for every tcvideo model: ``train_and_evaluate(config, workdir)`` and
``evaluate_workdir(config, workdir)``. What is trained comes from the task named by ``config.task``
(``tcvideo.core.task.Task``: model, params, data stream, loss, evaluation); everything else is here:
devices and sharding (``sharding.py``), optimizer (``optimizer.py``), checkpoints (``checkpoints.py``).

* Devices: one ``Mesh`` over all devices with axis 'data'; batches are global arrays sharded over
  'data' (``jax.make_array_from_process_local_data``); params / optimizer state are replicated, or
  sharded along their largest divisible axis with ``config.fsdp``. One ``jax.jit`` train step
  with explicit in/out shardings; multi-host through ``jax.distributed.initialize``.
* Optimisation: AdamW, per-step cosine schedule with linear warmup from 0; parameter groups from the
  task's ``param_rules`` and ``config.param_rules`` ('frozen', 'no_decay', or a group with a
  ``config.lr_mults`` multiplier); optional global-norm clipping; gradient accumulation by
  ``lax.scan`` over micro-batches; float32 params with float32 / bfloat16 / float16 compute (float16:
  dynamic loss scaling); optional rematerialisation of transformer blocks (``config.remat``).
* Resume: the data stream is a pure function of (seed, step), so a checkpoint holds the train
  state and the step is the input position. Killed runs restart bit-identically.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tcvideo.core import config as core_config
from tcvideo.core import console
from tcvideo.core.checkpoints import (_managers, _save, choose_resume_step, finish_saves, load_checkpoint_params,
                                      restore_state)
from tcvideo.core.config import ConfigError, InputError, RunError  # noqa: F401 - RunError re-exported for main
from tcvideo.core.optimizer import make_optimizer, param_labels
from tcvideo.core.sharding import (global_array, make_mesh, maybe_initialize_distributed, replicated_value,
                                   state_shardings)


class NonFiniteLossError(FloatingPointError):
    pass


# ----------------------------------------------------------------------------- steps

def _all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def make_train_step(task, tx, sched, *, accum: int, mesh: Mesh, state_sharding, growth_interval: int = 2000):
    """-> jitted step(state, batch) -> (state, metrics). state: dict(params, opt_state, step, rng,
    loss_scale, good_steps, halted_at); batch: dict of global arrays [B, ...] sharded over 'data'. The
    loss is ``task.loss(params, micro_batch, rng)`` with rng = fold_in(state rng, step[, micro-batch]).
    A step with non-finite loss or gradients leaves params and optimizer state unchanged
    (metrics['finite'] = False); with float16 it halves the loss scale. A non-finite step that loss
    scaling cannot explain sets state['halted_at'] to its 1-based step, and every later step is a
    no-op: the host reads the flag only at log and checkpoint steps (no per-step device sync), and
    what it then finds is still the last good state."""
    fp16 = task.compute_dtype == jnp.float16
    data_sh = NamedSharding(mesh, P("data"))
    micro_sh = NamedSharding(mesh, P(None, "data"))

    def loss_fn(params, batch, rng, scale):
        loss, aux = task.loss(params, batch, rng)
        return loss * scale, (loss, aux)

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def step(state, batch):
        params = state["params"]
        scale = state["loss_scale"] if fp16 else jnp.float32(1.0)
        rng = jax.random.fold_in(state["rng"], state["step"])
        if accum == 1:
            grads, (loss, aux) = grad_fn(params, batch, rng, scale)
        else:
            def split(x):  # [B, ...] -> [A, B/A, ...]; micro-batch a = rows a, a+A, ... (spread on devices)
                x = x.reshape((x.shape[0] // accum, accum) + x.shape[1:]).swapaxes(0, 1)
                return jax.lax.with_sharding_constraint(x, micro_sh)
            micro = jax.tree_util.tree_map(split, batch)

            def body(carry, xs):
                g_acc, l_acc, a_acc = carry
                mb, a = xs
                g, (l, aux_a) = grad_fn(params, mb, jax.random.fold_in(rng, a), scale)
                add = lambda u, v: jax.tree_util.tree_map(jnp.add, u, v)
                return (add(g_acc, g), l_acc + l, add(a_acc, aux_a)), None

            zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
            aux0 = jax.tree_util.tree_map(jnp.zeros_like, jax.eval_shape(
                lambda: grad_fn(params, jax.tree_util.tree_map(lambda x: x[0], micro), rng, scale)[1][1]))
            (grads, loss, aux), _ = jax.lax.scan(body, (zeros, jnp.float32(0.0), aux0), (micro, jnp.arange(accum)))
            grads = jax.tree_util.tree_map(lambda g: g / accum, grads)
            loss = loss / accum
            aux = jax.tree_util.tree_map(lambda x: x / accum, aux)
        grads = jax.tree_util.tree_map(lambda g: (g / scale).astype(jnp.float32), grads)
        labels = param_labels(grads, task.param_label)
        grads = jax.tree_util.tree_map(lambda g, lab: jnp.zeros_like(g) if lab == "frozen" else g, grads, labels)
        finite = jnp.isfinite(loss) & _all_finite(grads)
        updates, new_opt = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        fatal = ~finite & (scale <= 1.0) if fp16 else ~finite
        halted = state["halted_at"] > 0
        apply = finite & ~halted
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(apply, a, b), new, old)
        new_state = dict(state)
        new_state["params"] = keep(new_params, params)
        new_state["opt_state"] = keep(new_opt, state["opt_state"])
        new_state["step"] = state["step"] + 1
        new_state["halted_at"] = jnp.where(halted, state["halted_at"],
                                           jnp.where(fatal, state["step"] + 1, 0)).astype(jnp.int32)
        if fp16:
            good = jnp.where(finite, state["good_steps"] + 1, 0)
            grow = good >= growth_interval
            new_scale = jnp.where(finite, jnp.where(grow, scale * 2, scale), jnp.maximum(scale / 2, 1.0))
            new_state["loss_scale"] = new_scale.astype(jnp.float32)
            new_state["good_steps"] = jnp.where(grow, 0, good).astype(jnp.int32)
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), "finite": finite,
                   "halted_at": new_state["halted_at"],
                   "lr": sched(state["step"]), "loss_scale": scale,
                   **{f"aux/{k}": jnp.asarray(v, jnp.float32) for k, v in aux.items()}}
        return new_state, metrics

    metric_sh = NamedSharding(mesh, P())
    return jax.jit(step, in_shardings=(state_sharding, data_sh), out_shardings=(state_sharding, metric_sh),
                   donate_argnums=(0,))



# ----------------------------------------------------------------------------- setup

class Setup:
    """Everything derived from config + devices, before any compute (the task validates its fields)."""

    def __init__(self, config, workdir: Optional[str] = None):
        from tcvideo.core.registry import get_task
        maybe_initialize_distributed(config)
        core_config.validate_common(config)
        self.config, self.workdir = config, workdir
        self.task = get_task(config)
        self.mesh = make_mesh()
        n = self.mesh.devices.size
        b = config.batch_size
        self.accum = config.grad_accum_steps or max(1, b // (config.per_device_batch_size * n))
        if b % self.accum or (b // self.accum) % n:
            raise ConfigError(f"config.batch_size: {b} is not divisible into {self.accum} micro-batches of a "
                              f"multiple of {n} devices (grad_accum_steps={config.grad_accum_steps})")
        if b % jax.process_count():
            raise ConfigError(f"config.batch_size: {b} not divisible by {jax.process_count()} processes")
        if config.eval.batch_size % n:
            raise ConfigError(f"config.eval.batch_size: {config.eval.batch_size} not divisible by {n} devices")
        self.steps_per_epoch = max(1, self.task.num_train_examples // b)
        self.total_steps = int(config.total_steps) or int(config.epochs * self.steps_per_epoch)
        self.warmup_steps = int(config.warmup_epochs * self.steps_per_epoch)
        self.eval_every = int(config.eval_every) or self.steps_per_epoch
        self.eval_steps = eval_schedule(config, self.steps_per_epoch, self.total_steps)

    def optimizer(self, params_shapes):
        return make_optimizer(self.config, params_shapes, self.total_steps, self.warmup_steps,
                              self.task.param_label)

    def abstract_state(self, params_shapes):
        tx, _ = self.optimizer(params_shapes)
        opt = jax.eval_shape(tx.init, params_shapes)
        scalar = lambda dt: jax.ShapeDtypeStruct((), dt)
        return {"params": params_shapes, "opt_state": opt, "step": scalar(jnp.int32),
                "rng": jax.ShapeDtypeStruct((2,), jnp.uint32), "loss_scale": scalar(jnp.float32),
                "good_steps": scalar(jnp.int32), "halted_at": scalar(jnp.int32)}


def eval_schedule(config, steps_per_epoch: int, total_steps: int) -> Optional[frozenset]:
    """Steps after which training evaluates with ``config.eval_every_epochs`` = k > 0: the end of epochs
    e (0-based) with e % k == 0, and the last step. None: every ``eval_every`` steps, before the last."""
    k = int(config.get("eval_every_epochs", 0))
    if k <= 0:
        return None
    epochs = math.ceil(total_steps / steps_per_epoch)
    return frozenset(min((e + 1) * steps_per_epoch, total_steps) for e in range(epochs)
                     if e % k == 0 or e == epochs - 1)


def initial_state(params_np, sh, tx, config) -> dict:
    """The train state at step 0 (placed with shardings ``sh``) from numpy params."""
    params = jax.tree_util.tree_map(replicated_value, params_np, sh["params"])
    scale = config.loss_scale.init if config.compute_dtype == "float16" else 1.0
    rng = np.asarray(jax.random.key_data(jax.random.PRNGKey(config.seed)), np.uint32)
    return {"params": params, "opt_state": jax.jit(tx.init, out_shardings=sh["opt_state"])(params),
            "step": replicated_value(np.int32(0), sh["step"]), "rng": replicated_value(rng, sh["rng"]),
            "loss_scale": replicated_value(np.float32(scale), sh["loss_scale"]),
            "good_steps": replicated_value(np.int32(0), sh["good_steps"]),
            "halted_at": replicated_value(np.int32(0), sh["halted_at"])}


def _shape_tree(tree):
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype
                                                                 if not hasattr(x, "dtype") else x.dtype), tree)



# ----------------------------------------------------------------------------- logging helpers

def save_resolved_config(config, workdir: str) -> None:
    d = json.loads(config.to_json_best_effort())
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
    with open(os.path.join(workdir, "config.py"), "w") as f:
        f.write('"""Resolved config of this run (load with --config=this_file)."""\n'
                "import json\n\nimport ml_collections\n\n_CONFIG = json.loads(r'''\n"
                + json.dumps(d, indent=2, sort_keys=True) + "\n''')\n\n\n"
                "def get_config():\n    return ml_collections.ConfigDict(_CONFIG)\n")


def _flat_scalars(prefix: str, results: dict) -> dict:
    """{target: {metric: number}} -> {'prefix/target/metric': float} (non-numbers skipped)."""
    return {f"{prefix}/{t}/{k}": float(v) for t, r in results.items() for k, v in r.items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)}


class _JsonLog:
    def __init__(self, path: Optional[str]):
        self.path = path

    def write(self, rec: dict) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")



# ----------------------------------------------------------------------------- evaluation

def _final_eval(setup: Setup, params, params_sharding, workdir: str, extra: Optional[dict] = None,
                summary: bool = True) -> dict:
    """``task.final_evaluate`` of the params; writes workdir/eval_results.json and prints the tables."""
    config, task = setup.config, setup.task
    with console.Progress("final evaluation", unit=""):
        out = task.final_evaluate(params, params_sharding, setup.mesh)
    if extra:
        out.update(extra)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "eval_results.json"), "w") as f:
            json.dump(out, f, indent=2, default=float)
        chosen = out.get("evaluated_checkpoint")
        at = f" (checkpoint: {chosen['source']}" + (f", step {chosen['step']})" if "step" in chosen else ")") \
            if chosen else ""
        if summary:
            for k, v in out.items():
                if isinstance(v, dict) and "results" in v:
                    console.say(f"== {config.name}: {k}{at}\n" + task.format_results(v))
    return out


# ----------------------------------------------------------------------------- train

def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, summary: bool = True) -> dict:
    """Train (resuming from workdir if it holds checkpoints), evaluate, return the eval results.
    ``summary``: print the results table and where the outputs are (False: the caller prints its own)."""
    from clu import metric_writers

    setup = Setup(config, workdir)  # validation: raises ConfigError before any compute
    # A restart must train the same model on the same stream; before config.json is overwritten.
    changed = core_config.check_restart_config(config, workdir, setup.task.state_neutral_fields)
    if changed:
        logging.warning("restarting %s with changed settings that leave the train state alone: %s", workdir,
                        "; ".join(changed))
    if jax.process_count() > 1:  # every process has read config.json before process 0 rewrites it
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("tcvideo:restart_config_checked")
    os.makedirs(workdir, exist_ok=True)
    console.attach_workdir(workdir)
    is_main = jax.process_index() == 0
    if is_main:
        save_resolved_config(config, workdir)
    mesh = setup.mesh
    for line in console.describe_run(setup):
        console.say(line)
    logging.info("mesh %s, %d processes, accum %d, total steps %d (%d/epoch), warmup %d", mesh.shape,
                 jax.process_count(), setup.accum, setup.total_steps, setup.steps_per_epoch, setup.warmup_steps)

    task = setup.task
    init_np = task.init_params()
    abstract = setup.abstract_state(_shape_tree(init_np))
    sh = state_shardings(abstract, mesh, config.fsdp)
    tx, sched = setup.optimizer(abstract["params"])
    resume_step = choose_resume_step(workdir, abstract)  # moves unreadable newer checkpoints aside
    latest_mgr, best_mgr = _managers(workdir, config)

    if resume_step is not None:
        with_sh = jax.tree_util.tree_map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, sh)
        state = restore_state(latest_mgr, with_sh, resume_step)
        logging.info("resumed from step %d", int(state["step"]))
        console.say(f"resumed from step {int(state['step'])} ({os.path.join(workdir, 'checkpoints')})")
    else:
        state = initial_state(init_np, sh, tx, config)
    del init_np
    if is_main:
        console.say(console.parameter_summary(state["params"], workdir))
    writer = metric_writers.create_default_writer(workdir, just_logging=not is_main)
    jlog = _JsonLog(os.path.join(workdir, "train_log.jsonl") if is_main else None)

    train_step = make_train_step(task, tx, sched, accum=setup.accum, mesh=mesh, state_sharding=sh,
                                 growth_interval=int(config.loss_scale.growth_interval))

    start = int(jax.device_get(state["step"]))
    data_sh = NamedSharding(mesh, P("data"))
    it = task.train_iterator(global_batch_size=config.batch_size, seed=config.seed, start_step=start,
                             process_index=jax.process_index(), process_count=jax.process_count())

    stop = {"flag": False}
    old_handler = None
    try:
        old_handler = signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    except ValueError:  # not in the main thread
        pass

    best_primary = -math.inf
    best_step = -1
    last_saved = start
    t0, s0 = time.time(), start
    step = start
    bar = console.Progress("training", setup.total_steps, unit="steps", start=start)
    try:
        wait = 0.0  # seconds the loop spent waiting for input since the last log line
        starved = 0.0  # the part of it during which the device had finished every dispatched step
        in_flight = None  # an output of the last dispatched step
        while step < setup.total_steps:
            tw = time.perf_counter()
            try:
                batch = next(it)
            except InputError as e:  # never skipped: that would shift the stream exact resume relies on
                finish_saves(latest_mgr)
                raise InputError(f"{e}; training stopped before step {step + 1}; the resume point is the last "
                                 f"checkpoint (step {latest_mgr.latest_step()} in {latest_mgr.directory})") from None
            waited = time.perf_counter() - tw
            wait += waited
            # Dispatch is asynchronous: while the previous step still runs, waiting here costs nothing.
            # If it has finished by the time the batch arrives, the device may have idled for the whole
            # wait (an upper bound: it finished at some point during it).
            if in_flight is None or in_flight.is_ready():
                starved += waited
            gb = {k: global_array(v, data_sh) for k, v in batch.items()}
            state, m = train_step(state, gb)
            in_flight = m["loss"]
            step += 1
            log_now = step % config.log_every == 0 or step == setup.total_steps
            save_now = step % config.checkpoint_every == 0 or step == setup.total_steps
            eval_now = (step in setup.eval_steps if setup.eval_steps is not None
                        else step % setup.eval_every == 0 and step < setup.total_steps)
            if jax.process_count() > 1:  # every process must agree before any of them saves and exits
                stopping = log_now and _any_process(stop["flag"])
            else:
                stopping = stop["flag"]
            if not (log_now or save_now or eval_now or stopping):
                continue  # no host-device sync: the next batch is prepared while this step runs
            m = jax.device_get(m)
            if int(m["halted_at"]):
                finish_saves(latest_mgr)
                raise NonFiniteLossError(
                    f"non-finite loss at step {int(m['halted_at'])}: training stopped; no update was applied "
                    f"from that step on and the last good checkpoint (step {latest_mgr.latest_step()}) is kept "
                    f"in {os.path.join(workdir, 'checkpoints')}")
            if log_now:
                dt = time.time() - t0
                sps = (step - s0) / max(dt, 1e-9)
                eta = (setup.total_steps - step) / max(sps, 1e-9)
                scalars = {"train/loss": float(m["loss"]), "train/grad_norm": float(m["grad_norm"]),
                           "train/lr": float(m["lr"]), "train/loss_scale": float(m["loss_scale"]),
                           "steps_per_sec": sps, "input_wait_fraction": wait / max(dt, 1e-9),
                           "input_bound_fraction": starved / max(dt, 1e-9), **{f"train/{k[4:]}": float(v) for k, v in m.items()
                                                    if k.startswith("aux/")}}
                writer.write_scalars(step, scalars)
                logging.info("step %d/%d loss %.4f  %.2f steps/s  input wait %.0f%% (device idle %.0f%%)  ETA %.0fs",
                             step, setup.total_steps, scalars["train/loss"], sps,
                             100 * scalars["input_wait_fraction"], 100 * scalars["input_bound_fraction"], eta)
                jlog.write({"step": step, **scalars})
                bar.update(step, loss=scalars["train/loss"])
                t0, s0, wait, starved = time.time(), step, 0.0, 0.0
            if eval_now:
                te = time.time()
                ev = task.evaluate(state["params"], sh["params"], mesh, during_training=True)
                writer.write_scalars(step, {"eval/primary": ev["primary"], **_flat_scalars("eval", ev["results"])})
                jlog.write({"step": step, "eval/primary": ev["primary"], **_flat_scalars("eval", ev["results"])})
                if ev["primary"] > best_primary:
                    best_primary, best_step = ev["primary"], step
                best_mgr.save(step, args=__import__("orbax.checkpoint").checkpoint.args.StandardSave(
                    state["params"]), metrics={"primary": float(ev["primary"])})
                logging.info("step %d: evaluation took %.1fs", step, time.time() - te)
                bar.set_postfix(eval=ev["primary"])
                # The next rate window measures training only.
                t0, s0, wait, starved = time.time(), step, 0.0, 0.0
            if save_now:
                _save(latest_mgr, state, step)
                last_saved = step
            if stopping:
                if last_saved != step:
                    _save(latest_mgr, state, step, force=True)
                finish_saves(latest_mgr)
                logging.warning("SIGTERM: checkpoint saved at step %d; exiting cleanly", step)
                writer.flush()
                return {"preempted_at": step}
        finish_saves(latest_mgr)
    finally:
        bar.close()
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
        finish_saves(latest_mgr)
        writer.flush()

    # One compilation of the train step for the whole run: shapes and shardings never change.
    extra = {"train_step_compilations": int(train_step._cache_size())}
    logging.info("train step compiled %d time(s)", extra["train_step_compilations"])
    eval_compilations = task.eval_step_compilations()
    if eval_compilations is not None:
        extra["eval_step_compilations"] = eval_compilations
        logging.info("in-training eval step compiled %d time(s)", extra["eval_step_compilations"])
    if best_step >= 0:
        extra["best_during_training"] = {"primary": best_primary, "step": best_step}
    if not config.eval.final:
        latest_mgr.close()
        best_mgr.close()
        return extra
    params, extra["evaluated_checkpoint"] = _selected_params(best_mgr, state, sh["params"], workdir, step)
    out = _final_eval(setup, params, sh["params"], workdir, extra, summary=summary)
    writer.write_scalars(step, _flat_scalars("final", out["fine_tuned"]["results"]))
    writer.flush()
    latest_mgr.close()
    best_mgr.close()
    if is_main:
        console.finish_run(config.name, workdir, out, step, summary=summary)
    return out


def _selected_params(best_mgr, state, params_sharding, workdir: str, last_step: int):
    """The params of the final evaluation: best/'s checkpoint (highest in-training validation score, as
    the official final test of best.pth), else the last step's. -> (params, {'source', 'step', ...})."""
    best = best_mgr.best_step()
    if best is None:
        return state["params"], {"source": "last", "step": int(last_step)}
    score = best_mgr.metrics(best) or {}
    params = load_checkpoint_params(workdir, step=best, which="best")
    params = jax.tree_util.tree_map(replicated_value, params, params_sharding)
    return params, {"source": "best", "step": int(best), "validation_primary": score.get("primary")}


def _any_process(flag: bool) -> bool:
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def is_training_workdir(path: str) -> bool:
    """A folder the trainer wrote (it holds checkpoints/ or best/)."""
    return any(os.path.isdir(os.path.join(path, d)) for d in ("checkpoints", "best"))


def evaluate_workdir(config: Optional[ml_collections.ConfigDict], workdir: str, checkpoint: Optional[str] = None,
                     overrides: Optional[dict] = None) -> dict:
    """Evaluate on the config's eval targets; writes workdir/eval_results.json.

    The params are, in order: ``checkpoint``'s best (best/, chosen on validation) or else latest
    checkpoint when it is a training workdir, or
    ``checkpoint`` as a model dir (``config.init_checkpoint``) when it is one; else the latest checkpoint
    of ``workdir``; else the initial params (init_checkpoint / CLIP zero-shot / random).

    config None: the training workdir ``checkpoint``'s own resolved config (its config.json), updated with
    ``overrides`` (flat, e.g. {'eval.num_clips': 2}: ``--config.x=v`` flags). A config given with such a
    checkpoint must have its task and model family (ConfigError naming ``task`` / ``model.family``)."""
    if checkpoint and not os.path.isdir(checkpoint):
        raise ConfigError(f"--checkpoint: no such directory {checkpoint!r}")
    own_path = os.path.join(checkpoint, "config.json") if checkpoint else ""
    own = None
    if checkpoint and is_training_workdir(checkpoint) and os.path.isfile(own_path):
        with open(own_path) as f:
            own = ml_collections.ConfigDict(json.load(f))
    if config is None:
        if own is None:
            raise ConfigError("--config: needed unless --checkpoint is a training workdir with its config.json")
        config = own
        config.update_from_flattened_dict(dict(overrides or {}))
    elif own is not None:
        from tcvideo.core.registry import DEFAULT_TASK
        for field, value in (("task", lambda c: c.get("task", DEFAULT_TASK)),
                             ("model.family", lambda c: c.get("model", {}).get("family", "tc_clip"))):
            if value(config) != value(own):
                raise ConfigError(f"config.{field}: {value(config)!r}, but --checkpoint {checkpoint} was trained with "
                                  f"{value(own)!r} ({own_path}); leave out --config to evaluate with the workdir's own")
    if checkpoint and not is_training_workdir(checkpoint):
        config.init_checkpoint = checkpoint  # validated by Setup like any init_checkpoint
    setup = Setup(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    console.attach_workdir(workdir)
    for line in console.describe_run(setup, training=False):
        console.say(line)
    source_dir = checkpoint if checkpoint and is_training_workdir(checkpoint) else workdir
    chosen = None
    try:
        try:  # the model selected on validation (best/), as at the end of training; else the latest
            params, which = load_checkpoint_params(source_dir, which="best"), "best"
        except FileNotFoundError:
            params, which = load_checkpoint_params(source_dir), "checkpoints"
        source = "checkpoint"
        chosen = {"source": "best" if which == "best" else "last", "dir": which}
    except FileNotFoundError:
        if source_dir != workdir:
            raise ConfigError(f"--checkpoint: {checkpoint!r} holds no checkpoint") from None
        params = setup.task.init_params()
        source = "init_checkpoint" if config.init_checkpoint else ("init_clip" if config.init_clip else "random_init")
    logging.info("evaluating params from %s (%s)", source, source_dir if source == "checkpoint" else "")
    console.say(f"evaluating params from {source}" + (f" ({source_dir})" if source == "checkpoint" else ""))
    sh = state_shardings(_shape_tree(params), setup.mesh, config.fsdp)
    params = jax.tree_util.tree_map(replicated_value, params, sh)
    out = _final_eval(setup, params, sh, workdir, {"params_source": source,
                                                   **({"evaluated_checkpoint": chosen} if chosen else {})})
    if jax.process_index() == 0:
        console.say(f"results: {os.path.join(workdir, 'eval_results.json')}   log: {console.log_file()}")
    return out
