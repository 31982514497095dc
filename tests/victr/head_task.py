"""A synthetic task on CLIP-like embeddings that needs VicTR's video head, and a trainer for the head alone
(the CLIP towers frozen, as they nearly are in the few-shot recipe's 2e-6 budget).

Task: 4 classes "X then Y" in two time-reversed pairs over 4 concepts (c0 then c1, c1 then c0, c2 then
c3, c3 then c2). The frame embeddings of a video are its first concept for the first half of the frames and
its second concept for the second half, plus noise; a class text mentions both of its concepts, so the
two classes of a pair have nearly the same text. CLIP's zero-shot classifier (mean frame embedding vs.
class text) is order-blind: it can tell the pair, not the order (~50%). The auxiliary prompts are the four
concepts ("objects").

``python tests/victr/head_task.py`` prints the numbers of tcvideo/victr/README.md ("Learning in the
few-shot budget"): the head's parameter change and the test accuracy of VicTR vs. CLIP under the
few-shot recipe's schedule.
"""
from __future__ import annotations

import re
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tcvideo.clip import model as clip_lib
from tcvideo.core import optimizer
from tcvideo.core.tree_util import flatten
from tcvideo.victr import family
from tcvideo.victr import model as V

PAIRS = ((0, 1), (1, 0), (2, 3), (3, 2))


def temporal_task(seed: int, train_per_class: int, test_per_class: int, e: int = 32, t: int = 4,
                  noise: float = 0.5) -> dict:
    """-> dict(train=(frames [N, T, E], labels [N]), test=(...), text [4 + 4, E] (class texts, then aux))."""
    rng = np.random.default_rng(seed)
    unit = lambda z: z / np.linalg.norm(z, axis=-1, keepdims=True)
    concepts = unit(rng.normal(size=(4, e)))
    texts = unit(np.stack([concepts[i] + concepts[j] for i, j in PAIRS]) + 0.2 * unit(rng.normal(size=(4, e))))
    aux = unit(concepts + 0.2 * unit(rng.normal(size=(4, e))))

    def videos(per_class):
        labels = np.repeat(np.arange(4), per_class)
        first = np.asarray([PAIRS[c][0] for c in labels])
        second = np.asarray([PAIRS[c][1] for c in labels])
        half = np.arange(t) < t // 2                                       # [T]
        clean = np.where(half[None, :, None], concepts[first][:, None], concepts[second][:, None])
        frames = clean + noise * rng.normal(size=clean.shape) / np.sqrt(e)
        return frames.astype(np.float32), labels

    return dict(train=videos(train_per_class), test=videos(test_per_class),
                text=np.concatenate([texts, aux]).astype(np.float32))


def head_config(e: int = 32, t: int = 4, **fields) -> V.VicTRConfig:
    """A VicTR config of width ``e`` with the task's auxiliary 'objects' (the towers are never run)."""
    clip = clip_lib.CLIPConfig.from_dict({**clip_lib.PRESETS["tiny"].to_dict(), "embed_dim": e})
    base = dict(clip=clip, num_frames=t, head_layers=1, head_heads=1, aux_categories=("objects",),
                aux_texts=(("c0", "c1", "c2", "c3"),), prompt_context_length=8)
    return V.VicTRConfig(**{**base, **fields})


def clip_accuracy(task: dict) -> float:
    """Top-1 (%) of CLIP's zero-shot classifier: cos(mean frame embedding, class text)."""
    frames, labels = task["test"]
    logits = frames.mean(1) @ task["text"][:4].T / np.linalg.norm(frames.mean(1), axis=-1, keepdims=True)
    return float(100 * (logits.argmax(-1) == labels).mean())


def train_head(task: dict, mc: V.VicTRConfig, *, steps: int, batch: int, lr: float, min_lr: float = 0.0,
               warmup_steps: int = 0, head_lr_mult: float = 1.0, weight_decay: float = 0.0, seed: int = 0):
    """Train the head (every parameter but the CLIP towers) with the trainer's optimizer, cross-entropy on
    the task's train videos. -> (test top-1 %, init params, trained params)."""
    model = V.VicTR(mc)
    frames, labels = task["train"]
    text = jnp.asarray(task["text"])
    p0 = model.init(jax.random.PRNGKey(seed), jnp.asarray(frames[:1]), text, 4, method=V.VicTR.head)["params"]
    p0 = V.identity_init(p0, mc)
    cfg = ml_collections.ConfigDict(dict(lr=lr, min_lr=min_lr, b1=0.9, b2=0.98, eps=1e-8, weight_decay=weight_decay,
                                         grad_clip=1.0, lr_mults=dict(head=head_lr_mult)))
    rules = [(re.compile(rx), g) for rx, g in family.PARAM_RULES]
    label = lambda path: next((g for rx, g in rules if rx.search(path)), "base")
    tx, _ = optimizer.make_optimizer(cfg, p0, steps, warmup_steps, label)
    logits_fn = lambda p, f: model.apply({"params": p}, f, text, 4, method=V.VicTR.head)["logits"]

    @jax.jit
    def step(p, opt, f, y):
        loss = lambda q: -jnp.take_along_axis(jax.nn.log_softmax(logits_fn(q, f)), y[:, None], 1).mean()
        g = jax.grad(loss)(p)
        upd, opt = tx.update(g, opt, p)
        return jax.tree_util.tree_map(lambda a, b: a + b, p, upd), opt

    rng = np.random.default_rng(seed)
    p, opt = p0, tx.init(p0)
    for _ in range(steps):
        idx = rng.choice(len(labels), size=batch, replace=len(labels) < batch)
        p, opt = step(p, opt, jnp.asarray(frames[idx]), jnp.asarray(labels[idx]))
    test_f, test_y = task["test"]
    pred = np.asarray(jax.jit(logits_fn)(p, jnp.asarray(test_f))).argmax(-1)
    return float(100 * (pred == test_y).mean()), p0, p


def head_change(p0, p) -> dict:
    """{leaf: (max |delta|, rms delta, rms init)} over the head's leaves."""
    a, b = flatten(jax.tree_util.tree_map(np.asarray, p0)), flatten(jax.tree_util.tree_map(np.asarray, p))
    rx = re.compile(V.HEAD_PARAMS)
    rms = lambda z: float(np.sqrt(np.mean(np.square(z))))
    return {k: (float(np.abs(b[k] - a[k]).max()), rms(b[k] - a[k]), rms(a[k])) for k in a if rx.search(k)}


def _few_shot_budget_report(e: int = 128, t: int = 8) -> None:
    """The few-shot recipe's schedule (lr 2e-6 -> 2e-8, warmup 5 of 50 epochs, batch 64, weight decay 0.001)
    for 1 step per epoch (HMDB-51 K=2: 50 steps) and 12 (K=16: 600 steps), on the task at width e."""
    task = temporal_task(0, 16, 64, e=e, t=t)
    print(f"CLIP zero-shot: {clip_accuracy(task):.1f}%")
    variants = {"VicTR (identity init, softmax boosting, head x100)": (dict(), 100.0),
                "VicTR (identity init, softmax boosting, head x1)": (dict(), 1.0),
                "old VicTR (random head, (1+cos)/2, no multiplier)": (dict(identity_init=False,
                                                                         affinity="shifted_cosine"), 1.0)}
    for per_epoch in (1, 12):
        for name, (fields, mult) in variants.items():
            t0 = time.time()
            acc, p0, p = train_head(task, head_config(e, t, **fields), steps=50 * per_epoch, batch=64, lr=2e-6,
                                    min_lr=2e-8, warmup_steps=5 * per_epoch, head_lr_mult=mult, weight_decay=0.001)
            ch = head_change(p0, p)
            kin = ch["head_0/temporal/attn/in_proj_kernel"]
            kout = ch["head_0/temporal/attn/out_proj/kernel"]
            print(f"{50 * per_epoch} steps  {name}: top-1 {acc:.1f}%  temporal in_proj max|d| {kin[0]:.2e} "
                  f"rms d / rms init {kin[1] / kin[2]:.3f}; out_proj max|d| {kout[0]:.2e} rms d {kout[1]:.2e}; "
                  f"max|d| over head {max(v[0] for v in ch.values()):.2e} ({time.time() - t0:.0f}s)")
            sys.stdout.flush()


if __name__ == "__main__":
    _few_shot_budget_report()
