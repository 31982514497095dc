"""The interface between the trainer and a task (registry: ``tcvideo/core/registry.py``)."""
from __future__ import annotations

import json
import re
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}



class Task:
    """One kind of experiment. Subclasses set ``model`` and ``num_train_examples`` in ``__init__``
    (after validating the config: ``ConfigError("config.<field>: ...")`` before any compute) and
    implement the methods below. Parameters are float32; ``compute_dtype`` is what the forward pass
    should compute in (the task casts its inputs)."""

    model: Any
    num_train_examples: int
    # Config fields of this task that a restart may change because they do not touch the train state or
    # the training data stream (evaluation-only settings); added to core.config.STATE_NEUTRAL_FIELDS.
    state_neutral_fields: tuple = ()

    def __init__(self, config):
        self.config = config
        self.compute_dtype = DTYPES[config.compute_dtype]
        self._jitted: dict = {}  # name -> (mesh, params sharding, jitted fn); see jit_once

    def jit_once(self, name: str, mesh, params_sharding, build):
        """``build()``'s jitted function, built once per (mesh, params sharding) so that repeated
        evaluations reuse one compilation instead of compiling again each time."""
        cached = self._jitted.get(name)
        if cached is None or cached[0] is not mesh or cached[1] is not params_sharding:
            self._jitted[name] = cached = (mesh, params_sharding, build())
        return cached[2]

    def init_params(self) -> dict:
        """Initial parameters as a numpy pytree (random, from CLIP or from a checkpoint)."""
        raise NotImplementedError

    def train_iterator(self, *, global_batch_size: int, seed: int, start_step: int, process_index: int,
                       process_count: int) -> Iterator[dict[str, np.ndarray]]:
        """Endless batches of this process: leaves [global_batch_size // process_count, ...].

        Must be a pure function of (seed, step): an iterator started at ``start_step`` yields exactly
        what an uninterrupted one yields from that step on (exact resume).
        """
        raise NotImplementedError

    def loss(self, params, batch: dict[str, jax.Array], rng: jax.Array) -> tuple[jax.Array, dict]:
        """Pure, jit-able: mean loss over the (micro-)batch and a dict of scalar metrics."""
        raise NotImplementedError

    def evaluate(self, params, params_sharding, mesh, *, during_training: bool = False) -> dict:
        """-> {'results': {target: {metric: value}}, 'summary': {...}, 'primary': float (higher is
        better; picks the best checkpoint)}. ``during_training``: the cheaper in-training protocol."""
        raise NotImplementedError

    def eval_step_compilations(self) -> Any:
        """How many times the in-training evaluation step compiled so far (int), or None where the task
        does not track it."""
        return None

    def final_evaluate(self, params, params_sharding, mesh) -> dict:
        """The evaluations at the end of training / of ``tcvideo eval``: {name: ``evaluate`` output}. Tasks
        add variants of the params here (e.g. video classification's WiSE-FT ensemble)."""
        return {"fine_tuned": self.evaluate(params, params_sharding, mesh)}

    def format_results(self, out: dict) -> str:
        """A printed table of ``evaluate``'s output."""
        return json.dumps({k: out[k] for k in ("results", "summary") if k in out}, indent=2, default=float)

    def param_rules(self) -> Sequence[tuple[str, str]]:
        """Parameter groups of this task: (regex searched in the path "a/b/c", label) pairs, first match
        wins, unmatched leaves are 'base'. Labels: 'base', 'frozen' (never updated), 'no_decay' (no weight
        decay), or a key of ``config.lr_mults`` (lr x that multiplier, weight decay as 'base')."""
        return ()

    def param_label(self, path: str) -> str:
        """The group of one parameter: ``config.param_rules`` first (a config can regroup any parameter),
        then the task's ``param_rules``."""
        rules = getattr(self, "_compiled_rules", None)
        if rules is None:
            pairs = [tuple(r) for r in self.config.get("param_rules", ())] + list(self.param_rules())
            rules = self._compiled_rules = [(re.compile(rx), label) for rx, label in pairs]
        return next((label for rx, label in rules if rx.search(path)), "base")
