"""The one trainer for every tcvideo model: ``train_and_evaluate(config, workdir)`` and
``evaluate_workdir(config, workdir)``.

* Devices: one ``Mesh`` over all devices with axis 'data'; batches are global arrays sharded over
  'data' (``jax.make_array_from_process_local_data``); params / optimizer state are replicated, or
  sharded along their largest divisible axis with ``config.fsdp``. One ``jax.jit`` train step
  with explicit in/out shardings; multi-host through ``jax.distributed.initialize``.
* Optimisation (official TC-CLIP recipe): soft-target cross-entropy; AdamW (0.9, 0.98, 1e-8),
  weight decay on every trainable parameter; per-step cosine schedule with linear warmup from 0;
  prompt / VP parameters at ``prompt_lr_mult`` x lr; token embedding frozen; optional global-norm
  clipping; gradient accumulation by ``lax.scan`` over micro-batches; float32 params with
  float32 / bfloat16 / float16 compute (float16: dynamic loss scaling).
* Resume: the data stream is a pure function of (seed, step), so a checkpoint holds the train
  state and the step is the input position. Killed runs restart bit-identically.
"""
from __future__ import annotations

import functools
import json
import math
import os
import signal
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tcvideo import train_config
from tcvideo.train_config import ConfigError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
FROZEN = ("text/token_embedding",)
PROMPT = ("text/ctx", "prompt_generation")


class NonFiniteLossError(FloatingPointError):
    pass


# ----------------------------------------------------------------------------- distributed

def maybe_initialize_distributed(config) -> None:
    """``jax.distributed.initialize`` when asked for (config) or when the environment says so."""
    mode = str(config.get("multihost", "auto")).lower()
    if mode == "false":
        return
    if getattr(jax.distributed, "is_initialized", lambda: False)():
        return
    env_says = any(os.environ.get(k) for k in ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES",
                                               "CLOUD_TPU_TASK_ID", "MEGASCALE_COORDINATOR_ADDRESS"))
    env_says = env_says or int(os.environ.get("SLURM_NTASKS", "1")) > 1
    explicit = bool(config.get("coordinator_address"))
    if not (explicit or env_says or mode == "true"):
        return
    kwargs = {}
    if explicit:
        kwargs = dict(coordinator_address=config.coordinator_address, num_processes=int(config.num_processes),
                      process_id=int(config.process_id))
        if kwargs["num_processes"] > 1:
            # CPU collectives across processes need gloo (harmless on GPU/TPU backends).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    logging.info("jax.distributed initialised: process %d of %d", jax.process_index(), jax.process_count())


# ----------------------------------------------------------------------------- sharding

def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


def fsdp_spec(shape, n: int, fsdp: bool) -> P:
    """Shard the largest axis divisible by n over 'data' (replicate when none or fsdp off)."""
    if not fsdp or n == 1 or not shape:
        return P()
    axes = [i for i, d in enumerate(shape) if d % n == 0 and d >= n]
    if not axes:
        return P()
    best = max(axes, key=lambda i: shape[i])
    spec = [None] * len(shape)
    spec[best] = "data"
    return P(*spec)


def state_shardings(abstract_state, mesh: Mesh, fsdp: bool):
    n = mesh.devices.size
    return jax.tree_util.tree_map(lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), n, fsdp)), abstract_state)


def global_array(local: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Per-process batch rows -> a global array sharded over 'data'."""
    global_shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
    return jax.make_array_from_process_local_data(sharding, local, global_shape)


def replicated_value(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Same host value on every process -> a global array with `sharding`."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


# ----------------------------------------------------------------------------- params / optimizer

def path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def param_labels(params):
    def label(path, _):
        s = path_str(path)
        if any(s.startswith(f) for f in FROZEN):
            return "frozen"
        if any(p in s for p in PROMPT):
            return "prompt"
        return "base"
    return jax.tree_util.tree_map_with_path(label, params)


def lr_schedule(base_lr: float, min_lr: float, warmup_steps: int, total_steps: int):
    """timm CosineLRScheduler(t_initial=total, lr_min, warmup_lr_init=0, warmup_t=warmup, t_in_epochs=False),
    as in the official code: linear warmup t * lr / warmup, then cosine over the whole run (not shifted)."""
    def sched(step):
        step = jnp.asarray(step, jnp.float32)
        warm = base_lr * step / max(warmup_steps, 1)
        cos = min_lr + 0.5 * (base_lr - min_lr) * (1 + jnp.cos(jnp.pi * step / max(total_steps, 1)))
        return jnp.where(step < warmup_steps, warm, cos)
    return sched


def make_optimizer(config, params, total_steps: int, warmup_steps: int):
    sched = lr_schedule(config.lr, config.min_lr, warmup_steps, total_steps)
    mult = float(config.prompt_lr_mult)

    def adamw(s):
        return optax.adamw(s, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay)

    tx = optax.multi_transform({"base": adamw(sched), "prompt": adamw(lambda t: mult * sched(t)),
                                "frozen": optax.set_to_zero()}, param_labels(params))
    if config.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip), tx)
    return tx, sched


def load_clip_params(path: str):
    """OpenAI .pt file or tcvideo CLIP model dir -> (CLIPConfig, params)."""
    if os.path.isdir(path):
        from tcvideo.convert import store
        from tcvideo.models import clip as clip_lib
        params, meta = store.load_model(path)
        return clip_lib.CLIPConfig.from_dict(meta["config"]), params
    from tcvideo.convert.openai import convert_file
    return convert_file(path)


def initial_params(config, mc) -> dict:
    """Numpy params before fine-tuning: from init_checkpoint, from CLIP (init_clip), or random."""
    from tcvideo.models import tc_clip as tc_lib
    if config.init_checkpoint:
        from tcvideo.convert import store
        params, _ = store.load_model(config.init_checkpoint)
        return jax.tree_util.tree_map(np.asarray, params)
    if config.init_clip:
        from tcvideo.convert.tc_clip import clip_init_params
        clip_cfg, clip_params = load_clip_params(config.init_clip)
        if clip_cfg != mc.clip:
            raise ConfigError(f"config.init_clip: checkpoint is {clip_cfg} but config.model.clip is {mc.clip}")
        return clip_init_params(clip_params, mc, rng=np.random.default_rng(config.seed))
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        p = tc_lib.init_params(mc, jax.random.PRNGKey(config.seed))
    return jax.tree_util.tree_map(np.asarray, p)


def class_prompts(data_cfg, mc, prefix: str, llm_path: str = "") -> np.ndarray:
    from data_pipelines.input_pipeline import dataset_info
    from tcvideo.models import prompting
    if llm_path:
        texts = prompting.load_llm_descriptions(llm_path)
        return prompting.tokenize_prompts(texts, mc.prompt_context_length, prefix, split_camel_case=False)
    names = dataset_info(data_cfg)["class_names"]
    return prompting.tokenize_prompts(names, mc.prompt_context_length, prefix, split_camel_case=mc.split_camel_case)


# ----------------------------------------------------------------------------- steps

def soft_cross_entropy(logits, targets):
    return -(targets * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)).sum(-1).mean()


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def make_train_step(model, tx, sched, ids, *, compute_dtype: str, accum: int, mesh: Mesh,
                    state_sharding, growth_interval: int = 2000):
    """-> jitted step(state, batch) -> (state, metrics). state: dict(params, opt_state, step, rng,
    loss_scale, good_steps). A step with non-finite loss or gradients leaves params and optimizer
    state unchanged (metrics['finite'] = False); with float16 it halves the loss scale."""
    cdt = DTYPES[compute_dtype]
    fp16 = compute_dtype == "float16"
    ids = jnp.asarray(ids)
    data_sh = NamedSharding(mesh, P("data"))
    micro_sh = NamedSharding(mesh, P(None, "data"))

    def loss_fn(params, video, targets, scale):
        out = model.apply({"params": params}, video.astype(cdt), ids)
        loss = soft_cross_entropy(out["logits"], targets)
        return loss * scale, loss

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def step(state, batch):
        params = state["params"]
        scale = state["loss_scale"] if fp16 else jnp.float32(1.0)
        video, targets = batch["video"], batch["targets"]
        if accum == 1:
            grads, loss = grad_fn(params, video, targets, scale)
        else:
            def split(x):  # [B, ...] -> [A, B/A, ...]; micro-batch a = rows a, a+A, ... (spread on devices)
                x = x.reshape((x.shape[0] // accum, accum) + x.shape[1:]).swapaxes(0, 1)
                return jax.lax.with_sharding_constraint(x, micro_sh)
            vs, ts = split(video), split(targets)

            def body(carry, xs):
                g_acc, l_acc = carry
                g, l = grad_fn(params, xs[0], xs[1], scale)
                return (jax.tree_util.tree_map(jnp.add, g_acc, g), l_acc + l), None

            zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
            (grads, loss), _ = jax.lax.scan(body, (zeros, jnp.float32(0.0)), (vs, ts))
            grads = jax.tree_util.tree_map(lambda g: g / accum, grads)
            loss = loss / accum
        grads = jax.tree_util.tree_map(lambda g: (g / scale).astype(jnp.float32), grads)
        labels = param_labels(grads)
        grads = jax.tree_util.tree_map(lambda g, lab: jnp.zeros_like(g) if lab == "frozen" else g, grads, labels)
        finite = jnp.isfinite(loss) & _all_finite(grads)
        updates, new_opt = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)
        new_state = dict(state)
        new_state["params"] = keep(new_params, params)
        new_state["opt_state"] = keep(new_opt, state["opt_state"])
        new_state["step"] = state["step"] + 1
        new_state["rng"] = state["rng"]
        if fp16:
            good = jnp.where(finite, state["good_steps"] + 1, 0)
            grow = good >= growth_interval
            new_scale = jnp.where(finite, jnp.where(grow, scale * 2, scale), jnp.maximum(scale / 2, 1.0))
            new_state["loss_scale"] = new_scale.astype(jnp.float32)
            new_state["good_steps"] = jnp.where(grow, 0, good).astype(jnp.int32)
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), "finite": finite,
                   "lr": sched(state["step"]), "loss_scale": scale}
        return new_state, metrics

    metric_sh = NamedSharding(mesh, P())
    return jax.jit(step, in_shardings=(state_sharding, data_sh), out_shardings=(state_sharding, metric_sh),
                   donate_argnums=(0,))


def make_eval_step(model, mesh: Mesh, params_sharding, compute_dtype: str = "float32"):
    """-> jitted fn(params, ids, batch) -> [top1 correct, top5 correct, count] (global sums);
    softmax averaged over the V views of each video."""
    cdt = DTYPES[compute_dtype]
    data_sh = NamedSharding(mesh, P("data"))

    def fn(params, ids, video, label, mask):
        b, v = video.shape[:2]
        flat = video.reshape((b * v,) + video.shape[2:]).astype(cdt)
        logits = model.apply({"params": params}, flat, ids)["logits"].astype(jnp.float32)
        probs = jax.nn.softmax(logits, -1).reshape(b, v, -1).mean(1)
        k = min(5, probs.shape[-1])
        topk = jax.lax.top_k(probs, k)[1]
        hit1 = (topk[:, 0] == label) & mask
        hit5 = jnp.any(topk == label[:, None], axis=-1) & mask
        return jnp.stack([hit1.sum(), hit5.sum(), mask.sum()]).astype(jnp.float32)

    return jax.jit(fn, in_shardings=(params_sharding, NamedSharding(mesh, P()), data_sh, data_sh, data_sh),
                   out_shardings=NamedSharding(mesh, P()))


# ----------------------------------------------------------------------------- setup

class Setup:
    """Everything derived from config + devices, before any compute."""

    def __init__(self, config, workdir: Optional[str] = None):
        maybe_initialize_distributed(config)
        v = train_config.validate(config)
        self.config, self.workdir = config, workdir
        self.mc, self.info, self.eval_info = v["model"], v["info"], v["eval_info"]
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
        n_train = self.info["num_examples"][config.data.train_split]
        self.steps_per_epoch = max(1, n_train // b)
        self.total_steps = int(config.total_steps) or int(config.epochs * self.steps_per_epoch)
        self.warmup_steps = int(config.warmup_epochs * self.steps_per_epoch)
        self.eval_every = int(config.eval_every) or self.steps_per_epoch
        from tcvideo.models.tc_clip import TCCLIP
        self.model = TCCLIP(self.mc, dtype=DTYPES[config.compute_dtype], param_dtype=jnp.float32)
        self.ids = class_prompts(config.data, self.mc, config.prompt_prefix, config.llm_descriptions)

    def abstract_state(self, params_shapes):
        tx, _ = make_optimizer(self.config, params_shapes, self.total_steps, self.warmup_steps)
        opt = jax.eval_shape(tx.init, params_shapes)
        scalar = lambda dt: jax.ShapeDtypeStruct((), dt)
        return {"params": params_shapes, "opt_state": opt, "step": scalar(jnp.int32),
                "rng": jax.ShapeDtypeStruct((2,), jnp.uint32), "loss_scale": scalar(jnp.float32),
                "good_steps": scalar(jnp.int32)}


def _shape_tree(tree):
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype
                                                                 if not hasattr(x, "dtype") else x.dtype), tree)


# ----------------------------------------------------------------------------- checkpoints

def _managers(workdir: str, config, create: bool = True):
    import orbax.checkpoint as ocp
    opts = ocp.CheckpointManagerOptions(max_to_keep=int(config.keep_checkpoints), create=create,
                                        enable_async_checkpointing=bool(config.async_checkpointing))
    latest = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=opts)
    best_opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=create, best_fn=lambda m: m["top1"],
                                             best_mode="max", enable_async_checkpointing=False)
    best = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "best"), options=best_opts)
    return latest, best


def _save(mgr, state, step: int, force: bool = False):
    import orbax.checkpoint as ocp
    mgr.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_state(mgr, abstract_with_sharding, step: Optional[int] = None):
    import orbax.checkpoint as ocp
    step = mgr.latest_step() if step is None else step
    return mgr.restore(step, args=ocp.args.StandardRestore(abstract_with_sharding))


def load_checkpoint_params(workdir: str, step: Optional[int] = None, which: str = "checkpoints") -> dict:
    """Numpy params of the latest (or given) checkpoint in workdir/checkpoints (or workdir/best)."""
    import orbax.checkpoint as ocp
    path = os.path.join(os.path.abspath(workdir), which)
    with ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(create=False)) as mgr:
        step = mgr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {path}")
        restored = mgr.restore(step, args=ocp.args.StandardRestore())
    tree = restored["params"] if which == "checkpoints" else restored
    return jax.tree_util.tree_map(np.asarray, tree)


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


class _JsonLog:
    def __init__(self, path: Optional[str]):
        self.path = path

    def write(self, rec: dict) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")


# ----------------------------------------------------------------------------- evaluation

def evaluate_params(setup: Setup, params, params_sharding, *, targets: Optional[dict] = None,
                    num_clips: Optional[int] = None, num_crops: Optional[int] = None) -> dict:
    """name -> {'top1', 'top5', 'count', 'group'} over the eval targets (softmax averaged over views)."""
    from data_pipelines.input_pipeline import make_eval_iterator
    config = setup.config
    targets = targets or train_config.eval_targets(config)
    nc = config.eval.num_clips if num_clips is None else num_clips
    ncr = config.eval.num_crops if num_crops is None else num_crops
    step_fn = make_eval_step(setup.model, setup.mesh, params_sharding, config.compute_dtype)
    data_sh = NamedSharding(setup.mesh, P("data"))
    rep = NamedSharding(setup.mesh, P())
    results = {}
    for name, (group, data) in targets.items():
        t_cfg = config.eval.datasets.get(name, None) if len(config.eval.datasets) else None
        llm = (t_cfg.get("llm_descriptions", "") if t_cfg is not None else "") or \
            (config.llm_descriptions if data.name == config.data.name else "")
        ids = replicated_value(class_prompts(data, setup.mc, config.prompt_prefix, llm), rep)
        total = np.zeros(3, np.float64)
        it = make_eval_iterator(data, split=data.test_split, batch_size=config.eval.batch_size, num_clips=nc,
                                num_crops=ncr, process_index=jax.process_index(), process_count=jax.process_count())
        for batch in it:
            out = step_fn(params, ids, global_array(batch["video"], data_sh), global_array(batch["label"], data_sh),
                          global_array(batch["mask"], data_sh))
            total += np.asarray(jax.device_get(out), np.float64)
        n = max(total[2], 1.0)
        results[name] = {"top1": 100.0 * total[0] / n, "top5": 100.0 * total[1] / n, "count": int(total[2]),
                         "group": group, "views": f"{nc}x{ncr}"}
    return results


def summarize(results: dict, protocol: str) -> dict:
    """Per-group mean / std of top-1 (zero-shot splits), and base/novel harmonic mean."""
    groups: dict[str, list[float]] = {}
    for r in results.values():
        groups.setdefault(r["group"], []).append(r["top1"])
    summary = {g: {"top1_mean": float(np.mean(v)), "top1_std": float(np.std(v)), "num_splits": len(v)}
               for g, v in groups.items()}
    if protocol == "base2novel" and "base" in summary and "novel" in summary:
        b, n = summary["base"]["top1_mean"], summary["novel"]["top1_mean"]
        summary["harmonic_mean"] = 0.0 if b + n == 0 else 2 * b * n / (b + n)
    return summary


def format_table(results: dict, summary: dict) -> str:
    lines = [f"{'target':<28}{'group':<16}{'views':>6}{'top1':>8}{'top5':>8}{'n':>7}"]
    for name, r in results.items():
        lines.append(f"{name:<28}{r['group']:<16}{r['views']:>6}{r['top1']:>8.2f}{r['top5']:>8.2f}{r['count']:>7}")
    for g, s in summary.items():
        if isinstance(s, dict):
            lines.append(f"{'mean/std ' + g:<44}{s['top1_mean']:>8.2f} +- {s['top1_std']:.2f} ({s['num_splits']} splits)")
        else:
            lines.append(f"{g:<44}{s:>8.2f}")
    return "\n".join(lines)


def _final_eval(setup: Setup, params, params_sharding, workdir: str, extra: Optional[dict] = None) -> dict:
    config = setup.config
    out = {"fine_tuned": {}}
    res = evaluate_params(setup, params, params_sharding)
    out["fine_tuned"] = {"results": res, "summary": summarize(res, config.protocol)}
    if config.wise_ft_weight >= 0:
        from tcvideo.models.ensemble import weight_ensemble
        init = initial_params(config, setup.mc)
        fused = weight_ensemble(init, jax.tree_util.tree_map(np.asarray, jax.device_get(params)),
                                config.wise_ft_weight)
        fused = jax.tree_util.tree_map(replicated_value, fused, params_sharding)
        res = evaluate_params(setup, fused, params_sharding)
        out[f"wise_ft_w{config.wise_ft_weight:g}"] = {"results": res, "summary": summarize(res, config.protocol)}
    if extra:
        out.update(extra)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "eval_results.json"), "w") as f:
            json.dump(out, f, indent=2)
        for k, v in out.items():
            if isinstance(v, dict) and "results" in v:
                print(f"== {config.name}: {k}\n" + format_table(v["results"], v["summary"]), flush=True)
    return out


# ----------------------------------------------------------------------------- train

def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train (resuming from workdir if it holds checkpoints), evaluate, return the eval results."""
    from clu import metric_writers, parameter_overview
    from data_pipelines.input_pipeline import make_train_iterator

    setup = Setup(config, workdir)  # validation: raises ConfigError before any compute
    os.makedirs(workdir, exist_ok=True)
    is_main = jax.process_index() == 0
    if is_main:
        save_resolved_config(config, workdir)
    mesh = setup.mesh
    logging.info("mesh %s, %d processes, accum %d, total steps %d (%d/epoch), warmup %d", mesh.shape,
                 jax.process_count(), setup.accum, setup.total_steps, setup.steps_per_epoch, setup.warmup_steps)

    init_np = initial_params(config, setup.mc)
    abstract = setup.abstract_state(_shape_tree(init_np))
    sh = state_shardings(abstract, mesh, config.fsdp)
    tx, sched = make_optimizer(config, abstract["params"], setup.total_steps, setup.warmup_steps)
    latest_mgr, best_mgr = _managers(workdir, config)

    if latest_mgr.latest_step() is not None:
        with_sh = jax.tree_util.tree_map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, sh)
        state = restore_state(latest_mgr, with_sh)
        logging.info("resumed from step %d", int(state["step"]))
    else:
        params = jax.tree_util.tree_map(replicated_value, init_np, sh["params"])
        state = {"params": params,
                 "opt_state": jax.jit(tx.init, out_shardings=sh["opt_state"])(params),
                 "step": replicated_value(np.int32(0), sh["step"]),
                 "rng": replicated_value(np.asarray(jax.random.key_data(jax.random.PRNGKey(config.seed)), np.uint32),
                                         sh["rng"]),
                 "loss_scale": replicated_value(np.float32(config.loss_scale.init if config.compute_dtype == "float16"
                                                           else 1.0), sh["loss_scale"]),
                 "good_steps": replicated_value(np.int32(0), sh["good_steps"])}
    del init_np
    if is_main:
        parameter_overview.log_parameter_overview(state["params"])
    writer = metric_writers.create_default_writer(workdir, just_logging=not is_main)
    jlog = _JsonLog(os.path.join(workdir, "train_log.jsonl") if is_main else None)

    ids = replicated_value(setup.ids, NamedSharding(mesh, P()))
    train_step = make_train_step(setup.model, tx, sched, ids, compute_dtype=config.compute_dtype, accum=setup.accum,
                                 mesh=mesh, state_sharding=sh, growth_interval=int(config.loss_scale.growth_interval))

    start = int(jax.device_get(state["step"]))
    data_sh = NamedSharding(mesh, P("data"))
    it = make_train_iterator(config.data, global_batch_size=config.batch_size, seed=config.seed, start_step=start,
                             process_index=jax.process_index(), process_count=jax.process_count())

    stop = {"flag": False}
    old_handler = None
    try:
        old_handler = signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    except ValueError:  # not in the main thread
        pass

    best_acc = -1.0
    best_step = -1
    last_saved = start
    t0, s0 = time.time(), start
    step = start
    try:
        while step < setup.total_steps:
            batch = next(it)
            gb = {"video": global_array(batch["video"], data_sh), "targets": global_array(batch["targets"], data_sh)}
            state, m = train_step(state, gb)
            step += 1
            m = jax.device_get(m)
            if not bool(m["finite"]):
                fp16 = config.compute_dtype == "float16"
                if not fp16 or float(m["loss_scale"]) <= 1.0:
                    latest_mgr.wait_until_finished()
                    raise NonFiniteLossError(
                        f"non-finite loss ({float(m['loss'])}) at step {step}: training stopped; the update was "
                        f"not applied and the last good checkpoint (step {latest_mgr.latest_step()}) is kept in "
                        f"{os.path.join(workdir, 'checkpoints')}")
                logging.info("step %d: float16 overflow, update skipped, loss scale -> %g", step,
                             float(m["loss_scale"]) / 2)
            if step % config.log_every == 0 or step == setup.total_steps:
                dt = time.time() - t0
                sps = (step - s0) / max(dt, 1e-9)
                eta = (setup.total_steps - step) / max(sps, 1e-9)
                scalars = {"train/loss": float(m["loss"]), "train/grad_norm": float(m["grad_norm"]),
                           "train/lr": float(m["lr"]), "train/loss_scale": float(m["loss_scale"]),
                           "steps_per_sec": sps}
                writer.write_scalars(step, scalars)
                logging.info("step %d/%d loss %.4f  %.2f steps/s  ETA %.0fs", step, setup.total_steps,
                             scalars["train/loss"], sps, eta)
                jlog.write({"step": step, **scalars})
                t0, s0 = time.time(), step
            if step % setup.eval_every == 0 and step < setup.total_steps:
                res = evaluate_params(setup, state["params"], sh["params"], num_clips=config.train_eval_clips,
                                      num_crops=config.train_eval_crops)
                first = next(iter(res.values()))
                writer.write_scalars(step, {f"eval/{k}/top1": v["top1"] for k, v in res.items()})
                if first["top1"] > best_acc:
                    best_acc, best_step = first["top1"], step
                best_mgr.save(step, args=__import__("orbax.checkpoint").checkpoint.args.StandardSave(
                    state["params"]), metrics={"top1": first["top1"]})
            if step % config.checkpoint_every == 0 or step == setup.total_steps:
                _save(latest_mgr, state, step)
                last_saved = step
            if jax.process_count() > 1 and step % config.log_every == 0:
                from jax.experimental import multihost_utils
                stop["flag"] = bool(np.any(multihost_utils.process_allgather(np.asarray(stop["flag"]))))
            if stop["flag"]:
                if last_saved != step:
                    _save(latest_mgr, state, step, force=True)
                latest_mgr.wait_until_finished()
                logging.warning("SIGTERM: checkpoint saved at step %d; exiting cleanly", step)
                writer.flush()
                return {"preempted_at": step}
        latest_mgr.wait_until_finished()
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
        latest_mgr.wait_until_finished()
        writer.flush()

    extra = {}
    if best_step >= 0:
        extra["best_during_training"] = {"top1": best_acc, "step": best_step,
                                         "views": f"{config.train_eval_clips}x{config.train_eval_crops}"}
    if not config.eval.final:
        latest_mgr.close()
        best_mgr.close()
        return extra
    out = _final_eval(setup, state["params"], sh["params"], workdir, extra)
    for k, v in out.get("fine_tuned", {}).get("results", {}).items():
        writer.write_scalars(step, {f"final/{k}/top1": v["top1"], f"final/{k}/top5": v["top5"]})
    writer.flush()
    latest_mgr.close()
    best_mgr.close()
    return out


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Evaluate the latest checkpoint of workdir (or, without one, the initial params: init_checkpoint /
    CLIP zero-shot) on the config's eval targets; writes workdir/eval_results.json."""
    setup = Setup(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    try:
        params = load_checkpoint_params(workdir)
        source = "checkpoint"
    except FileNotFoundError:
        params = initial_params(config, setup.mc)
        source = "init_checkpoint" if config.init_checkpoint else ("init_clip" if config.init_clip else "random_init")
    logging.info("evaluating params from %s", source)
    sh = state_shardings(_shape_tree(params), setup.mesh, config.fsdp)
    params = jax.tree_util.tree_map(replicated_value, params, sh)
    return _final_eval(setup, params, sh, workdir, {"params_source": source})
