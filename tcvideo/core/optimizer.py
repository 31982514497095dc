"""Optimizer: AdamW with per-group learning-rate multipliers / no weight decay / frozen leaves, and the
cosine schedule."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def param_labels(params, label_fn):
    """'base' / 'prompt' / 'frozen' per leaf, from ``label_fn("a/b/c")`` (the task's ``param_label``)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: label_fn(path_str(path)), params)


def lr_schedule(base_lr: float, min_lr: float, warmup_steps: int, total_steps: int):
    """timm CosineLRScheduler(t_initial=total, lr_min, warmup_lr_init=0, warmup_t=warmup, t_in_epochs=False),
    as in the official code: linear warmup t * lr / warmup, then cosine over the whole run (not shifted)."""
    def sched(step):
        step = jnp.asarray(step, jnp.float32)
        warm = base_lr * step / max(warmup_steps, 1)
        cos = min_lr + 0.5 * (base_lr - min_lr) * (1 + jnp.cos(jnp.pi * step / max(total_steps, 1)))
        return jnp.where(step < warmup_steps, warm, cos)
    return sched


def make_optimizer(config, params, total_steps: int, warmup_steps: int, label_fn):
    sched = lr_schedule(config.lr, config.min_lr, warmup_steps, total_steps)
    mult = float(config.prompt_lr_mult)

    def adamw(s):
        return optax.adamw(s, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay)

    no_decay = optax.adamw(sched, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=0.0)
    tx = optax.multi_transform({"base": adamw(sched), "prompt": adamw(lambda t: mult * sched(t)),
                                "no_decay": no_decay,  # tasks label e.g. biases / norms 'no_decay'
                                "frozen": optax.set_to_zero()}, param_labels(params, label_fn))
    if config.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip), tx)
    return tx, sched
