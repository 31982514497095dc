"""Optimizer: AdamW with per-group learning-rate multipliers / no weight decay / frozen leaves, and the
cosine schedule."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


BUILTIN_GROUPS = ("base", "frozen", "no_decay")


def param_labels(params, label_fn):
    """The group of every leaf (a pytree of strings), from ``label_fn("a/b/c")`` (the task's ``param_label``)."""
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
    """AdamW per parameter group (``param_labels``): 'base', 'no_decay' (weight decay 0), 'frozen' (zero
    updates), and each group of ``config.lr_mults`` (lr x its multiplier). -> (optax transform, schedule).
    Raises ConfigError naming ``config.lr_mults`` for a group that has no multiplier."""
    from tcvideo.core.config import ConfigError
    sched = lr_schedule(config.lr, config.min_lr, warmup_steps, total_steps)
    labels = param_labels(params, label_fn)
    mults = {str(k): float(v) for k, v in dict(config.get("lr_mults", {})).items()}
    missing = sorted(set(jax.tree_util.tree_leaves(labels)) - set(BUILTIN_GROUPS) - set(mults))
    if missing:
        raise ConfigError(f"config.lr_mults: no multiplier for parameter group(s) {missing} (built-in groups: "
                          f"{list(BUILTIN_GROUPS)})")

    def adamw(s, weight_decay=config.weight_decay):
        return optax.adamw(s, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=weight_decay)

    groups = {"base": adamw(sched), "no_decay": adamw(sched, 0.0), "frozen": optax.set_to_zero()}
    groups.update({g: adamw(lambda t, m=m: m * sched(t)) for g, m in mults.items() if g not in BUILTIN_GROUPS})
    tx = optax.multi_transform(groups, labels)
    if config.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip), tx)
    return tx, sched
