"""The trainer's config: its fields (``base_config``), the one way to load a config file, and the checks
every task shares (run before any compute).

Config files (big_vision style) define ``get_config()`` returning a ConfigDict; a system's configs start
from its own base (e.g. ``tcvideo.classification.config.base_config``), which extends this one. Every field
can be overridden on the command line (``--config.lr=1e-5``). Parameter groups: the task declares them
(``Task.param_rules``); ``config.param_rules`` (regex, group) pairs come first and ``config.lr_mults``
gives each non-built-in group its learning-rate multiplier.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import re
import sys
from typing import Any, Optional

import ml_collections

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


class ConfigError(ValueError):
    """A user-fixable problem with the config; the message is one line naming the field."""


class RunError(RuntimeError):
    """A fault met by a running job (an unreadable checkpoint, a failed save, an input file that went bad):
    the message is one line naming the file and the step, and what was kept; ``tcvideo.main`` prints it
    and exits 1."""


class InputError(RunError):
    """An input file that cannot be read while training (a shard or feature file gone or corrupt): never
    skipped, since skipping would shift the data order that exact resume depends on."""


def library_reason(e: BaseException, limit: int = 400) -> str:
    """The innermost cause of a library exception as one short line ("ValueError: FAILED_PRECONDITION:
    ... Data corruption detected"): orbax / TensorStore wrap the real reason in pages of specs. A longer
    one keeps its head (what failed) and its tail (why)."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    for x in reversed(chain):
        text = str(x).strip()
        if text:
            line = f"{type(x).__name__}: {' '.join(text.split())}"
            return line if len(line) <= limit else line[:limit // 2 - 3] + " ... " + line[-(limit // 2 - 2):]
    return type(chain[-1]).__name__


def config_module(config_file: str, relative_path: str):
    """Import another config file (e.g. a folder's ``common.py``) by path, relative to ``config_file``.

    Config folders are not packages and several have a ``common.py``; importing by path under a
    module name unique to the file keeps them apart in one process (tests, notebooks).
    """
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_file)), relative_path))
    name = "tcvideo_config_" + re.sub(r"\W", "_", path)
    if name not in sys.modules:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{config_file}: config module {path} not found")
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[name]  # a failed import must not leave a half-initialised module behind
            raise
    return sys.modules[name]


def set_fields(config: ml_collections.ConfigDict, overrides: Optional[dict], source: str = "config"
               ) -> ml_collections.ConfigDict:
    """Set dotted fields in place, ``{"data.num_frames": 8}``; KeyError naming the field for one that does
    not exist (a typo must not pass silently)."""
    for key, value in (overrides or {}).items():
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            if p not in node:
                raise KeyError(f"{source}: config has no field {key!r}")
            node = node[p]
        if leaf not in node:
            raise KeyError(f"{source}: config has no field {key!r}")
        node[leaf] = value
    return config


def load_config_file(path: str, overrides: Optional[dict] = None, *, root: Optional[str] = None
                     ) -> ml_collections.ConfigDict:
    """``get_config()`` of a config file, with dotted-field overrides. ``path`` may be relative to ``root``
    (e.g. the repository) when not found as given. The one by-path config loader (tests, notebooks)."""
    full = path if os.path.exists(path) or root is None else os.path.join(root, path)
    if not os.path.isfile(full):
        raise FileNotFoundError(f"config file {path!r} not found" + (f" (also tried {full})" if full != path else ""))
    config = config_module(os.path.abspath(full), os.path.basename(full)).get_config()
    return set_fields(config, overrides, source=path)


def base_config() -> ml_collections.ConfigDict:
    """Fields of the trainer itself (optimizer, schedule, precision, checkpoints, devices): no system's."""
    c = ml_collections.ConfigDict()
    c.name = "run"
    c.task = "video_classification"  # a registered task (tcvideo/core/registry.py): what is trained and evaluated
    c.seed = 0
    c.init_clip = ""  # OpenAI CLIP .pt / HF dir / tcvideo CLIP model dir the task starts from; '' = random init
    c.init_checkpoint = ""  # tcvideo model dir of the task's model to start from

    c.batch_size = 256  # total (global) batch per optimizer step
    c.per_device_batch_size = 4  # micro-batch per device; accumulation fills the total batch
    c.grad_accum_steps = 0  # 0 = batch_size // (per_device_batch_size * num_devices)
    c.epochs = 10
    c.warmup_epochs = 5
    c.total_steps = 0  # > 0 overrides epochs * steps_per_epoch
    c.lr = 8e-6
    c.min_lr = 8e-8
    c.weight_decay = 0.001
    c.b1 = 0.9
    c.b2 = 0.98
    c.eps = 1e-8
    c.grad_clip = 0.0  # global-norm clipping; 0 = off
    # Parameter groups: (regex, group) pairs matched before the task's own; group -> lr multiplier.
    c.param_rules = ()
    c.lr_mults = ml_collections.ConfigDict()
    c.compute_dtype = "float32"  # float32 | bfloat16 | float16 (params stay float32)
    c.loss_scale = ml_collections.ConfigDict()
    c.loss_scale.init = 2.0 ** 15  # float16 only: dynamic loss scaling
    c.loss_scale.growth_interval = 2000
    c.remat = False  # rematerialise transformer blocks in the backward pass (less memory, ~1/3 more compute)
    c.fsdp = False  # shard params / optimizer state over 'data'

    c.log_every = 10
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.eval_every = 0  # steps between evals during training; 0 = once per epoch
    # > 0: evaluate after epochs e (0-based) with e % eval_every_epochs == 0 and after the last one (the
    # official TC-CLIP save_freq: few-shot 10 -> epochs 0/10/20/30/40/49); replaces eval_every.
    c.eval_every_epochs = 0
    c.async_checkpointing = True
    c.resume_allowed_changes = ()  # extra fields a restart may change (see STATE_NEUTRAL_FIELDS), at your risk

    # label -> overrides of this config: the main job trains and evaluates each in workdir/<label> and prints
    # their results side by side (tcvideo/core/compare.py); empty = one run in workdir
    c.compare = ml_collections.ConfigDict()

    c.eval = ml_collections.ConfigDict()
    c.eval.final = True  # evaluate at the end of training
    c.eval.batch_size = 8  # global

    c.multihost = "auto"  # 'auto' (Slurm / TPU / coordinator env), 'true', 'false'
    c.coordinator_address = ""
    c.num_processes = 0
    c.process_id = -1
    return c


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Any) -> ml_collections.ConfigDict:
    """A copy of ``cfg`` with the (nested) fields of ``overrides`` replaced or added."""
    out = copy.deepcopy(cfg)
    with out.unlocked():
        for k, v in dict(overrides).items():
            if isinstance(v, (dict, ml_collections.ConfigDict)) and k in out and isinstance(out[k], ml_collections.ConfigDict):
                out[k] = apply_overrides(out[k], v)
            else:
                out[k] = v
    return out


def err(field: str, msg: str) -> ConfigError:
    return ConfigError(f"config.{field}: {msg}")


def validate_common(config) -> None:
    """Check the fields every task shares (optimizer, precision, batch, files), before any compute."""
    if config.compute_dtype not in COMPUTE_DTYPES:
        raise err("compute_dtype", f"{config.compute_dtype!r} not in {COMPUTE_DTYPES}")
    if str(config.multihost).lower() not in ("auto", "true", "false"):
        raise err("multihost", f"{config.multihost!r} not in ('auto', 'true', 'false')")
    for f in ("batch_size", "per_device_batch_size"):
        if config[f] < 1:
            raise err(f, "must be >= 1")
    if config.grad_accum_steps < 0 or (config.grad_accum_steps and config.batch_size % config.grad_accum_steps):
        raise err("grad_accum_steps", f"{config.grad_accum_steps} does not divide batch_size {config.batch_size}")
    if config.total_steps <= 0 and config.epochs <= 0:
        raise err("epochs", "must be > 0 (or set total_steps)")
    for i, rule in enumerate(config.get("param_rules", ())):
        if len(rule) != 2:
            raise err(f"param_rules[{i}]", f"{rule!r} is not a (regex, group) pair")
        try:
            re.compile(rule[0])
        except re.error as e:
            raise err(f"param_rules[{i}]", f"bad regex {rule[0]!r}: {e}") from None
    for f in ("init_clip", "init_checkpoint"):
        if config.get(f) and not os.path.exists(config[f]):
            raise err(f, f"no such file or directory {config[f]!r}")


# ----------------------------------------------------------------------------- restarts

# Trainer fields a restart may change: they steer logging, checkpoint cadence, evaluation and which
# processes run, never the train state nor the data stream. A task adds its own
# (``Task.state_neutral_fields``), a config more (``resume_allowed_changes``, at its own risk). Every other
# field, and one present on only one side, is taken to change the state. Not here on purpose:
# total_steps / epochs / warmup_epochs (the lr schedule), batch_size and the per-device / accumulation
# layout (the batches and their float summation order), remat / fsdp / compute_dtype (the numbers),
# seed, init_* (what the run started from), everything of the model and the training data.
STATE_NEUTRAL_FIELDS = ("name", "log_every", "checkpoint_every", "keep_checkpoints", "eval_every",
                        "async_checkpointing", "eval", "multihost", "coordinator_address", "num_processes",
                        "process_id", "resume_allowed_changes")
_ABSENT = "<absent>"


def _flat(d: Any, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}; an empty dict is a leaf (so that {} vs absent shows)."""
    if isinstance(d, dict) and d:
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _is_neutral(field: str, neutral) -> bool:
    return any(field == n or field.startswith(n + ".") for n in neutral)


def check_restart_config(config, workdir: str, extra_neutral=()) -> list[str]:
    """Compare ``config`` with the one the checkpoints of ``workdir`` were trained with (its config.json).

    ConfigError naming every field that changes the model or the data stream (``STATE_NEUTRAL_FIELDS`` and
    ``extra_neutral`` aside), before any compute; else the changed state-neutral fields, as
    "field old -> new" (empty when nothing changed, or when the workdir holds no checkpoint yet)."""
    import json
    path = os.path.join(workdir, "config.json")
    ckdir = os.path.join(workdir, "checkpoints")
    if not (os.path.isfile(path) and os.path.isdir(ckdir) and any(d.isdigit() for d in os.listdir(ckdir))):
        return []
    with open(path) as f:
        saved = _flat(json.load(f))
    now = _flat(json.loads(config.to_json_best_effort()))
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k, _ABSENT) != now.get(k, _ABSENT))
    neutral = STATE_NEUTRAL_FIELDS + tuple(extra_neutral) + tuple(config.get("resume_allowed_changes", ()))
    changing = [k for k in diff if not _is_neutral(k, neutral)]
    show = lambda k: f"{k} {now.get(k, _ABSENT)!r} (saved {saved.get(k, _ABSENT)!r})"
    if changing:
        shown = ", ".join(show(k) for k in changing[:8]) + (f", and {len(changing) - 8} more" if len(changing) > 8 else "")
        raise ConfigError(
            f"{', '.join('config.' + k for k in changing[:8])}: differ from the run in {workdir} ({path}): {shown}; "
            f"they change the model or the data stream, so resuming would mix two runs: use a new --workdir, or "
            f"resume with the saved values (--config={os.path.join(workdir, 'config.py')})")
    return [f"{k} {saved.get(k, _ABSENT)!r} -> {now.get(k, _ABSENT)!r}" for k in diff]
