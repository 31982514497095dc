"""Base training config shared by configs/*.py, and config validation (run before any compute).

Config files (big_vision style) start from ``base_config()`` and override fields; every field can
be overridden on the command line (``--config.lr=1e-5``, ``--config.data.few_shot_k=8``).
"""
from __future__ import annotations

import copy
import os
import re
from typing import Any

import ml_collections

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
PROTOCOLS = ("supervised", "zero_shot", "few_shot", "base2novel")


class ConfigError(ValueError):
    """A user-fixable problem with the config; the message is one line naming the field."""


def config_module(config_file: str, relative_path: str):
    """Import another config file (e.g. a folder's ``common.py``) by path, relative to ``config_file``.

    Config folders are not packages and several have a ``common.py``; importing by path under a
    module name unique to the file keeps them apart in one process (tests, notebooks).
    """
    import importlib.util
    import sys
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_file)), relative_path))
    name = "tcvideo_config_" + re.sub(r"\W", "_", path)
    if name not in sys.modules:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{config_file}: config module {path} not found")
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def base_config() -> ml_collections.ConfigDict:
    from data_pipelines.video.input_pipeline import default_data_config

    c = ml_collections.ConfigDict()
    c.name = "run"
    c.task = "video_classification"  # a registered task (tcvideo/tasks): what is trained and evaluated
    c.protocol = "supervised"  # how eval results are summarised (see PROTOCOLS)
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.family = "tc_clip"  # video_classification: model family (tcvideo/classification/task.py)
    c.model.variant = "tc_clip"  # tc_clip | tc_only | vp_only | vifi_clip | vanilla_clip | tc_clip_light
    c.model.clip = "ViT-B/16"  # CLIP preset name
    c.model.clip_overrides = ml_collections.ConfigDict()  # CLIPConfig fields replacing the preset's
    c.model.overrides = ml_collections.ConfigDict()  # TCCLIPConfig field overrides (context_tokens, ...)
    c.init_clip = ""  # OpenAI CLIP .pt or tcvideo CLIP model dir; '' = random init
    c.init_checkpoint = ""  # tcvideo TC-CLIP model dir (e.g. a converted official checkpoint)
    c.prompt_prefix = "a photo of a"
    c.llm_descriptions = ""  # JSON {id: "Name: description"}; replaces class names in prompts

    c.data = default_data_config()

    c.batch_size = 256  # total (global) batch per optimizer step
    c.per_device_batch_size = 4  # micro-batch per device; accumulation fills the total batch
    c.grad_accum_steps = 0  # 0 = batch_size // (per_device_batch_size * num_devices)
    c.epochs = 10
    c.warmup_epochs = 5
    c.total_steps = 0  # > 0 overrides epochs * steps_per_epoch
    c.lr = 8e-6
    c.min_lr = 8e-8
    c.prompt_lr_mult = 10.0  # lr multiplier for 'text/ctx' and 'prompt_generation' params
    c.weight_decay = 0.001
    c.b1 = 0.9
    c.b2 = 0.98
    c.eps = 1e-8
    c.grad_clip = 0.0  # global-norm clipping; 0 = off
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
    c.train_eval_clips = 1  # views used by evals during training (official: 1x1)
    c.train_eval_crops = 1
    c.async_checkpointing = True

    c.eval = ml_collections.ConfigDict()
    c.eval.final = True  # evaluate at the end of training
    c.eval.batch_size = 8  # global
    c.eval.num_clips = 2
    c.eval.num_crops = 1
    # name -> ConfigDict(group=str, data=ConfigDict of overrides of config.data). Empty: one target
    # named after config.data.name on config.data.test_split.
    c.eval.datasets = ml_collections.ConfigDict()
    c.wise_ft_weight = -1.0  # >= 0: also evaluate the WiSE-FT ensemble at this w (1 = fine-tuned)

    c.multihost = "auto"  # 'auto' (Slurm / TPU / coordinator env), 'true', 'false'
    c.coordinator_address = ""
    c.num_processes = 0
    c.process_id = -1
    return c


def eval_target(group: str, **data_overrides) -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.group = group
    t.data = ml_collections.ConfigDict(data_overrides)
    return t


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Any) -> ml_collections.ConfigDict:
    out = copy.deepcopy(cfg)
    with out.unlocked():
        for k, v in dict(overrides).items():
            if isinstance(v, (dict, ml_collections.ConfigDict)) and k in out and isinstance(out[k], ml_collections.ConfigDict):
                out[k] = apply_overrides(out[k], v)
            else:
                out[k] = v
    return out


def eval_targets(config) -> dict[str, tuple[str, ml_collections.ConfigDict]]:
    """name -> (group, data config) of every final evaluation target."""
    if not len(config.eval.datasets):
        return {config.data.name: (config.data.name, config.data)}
    return {name: (t.get("group", name), apply_overrides(config.data, t.get("data", {})))
            for name, t in config.eval.datasets.items()}


def _err(field: str, msg: str) -> ConfigError:
    return ConfigError(f"config.{field}: {msg}")


def _check_data(prefix: str, data, train: bool) -> dict:
    import data_pipelines.video
    from data_pipelines.video import input_pipeline

    for mod in data_pipelines.video._BUILTIN_MODULES:
        __import__(mod)
    if data.name not in data_pipelines.video.DATASETS:
        raise _err(f"{prefix}.name", f"unknown dataset {data.name!r}; registered: {sorted(data_pipelines.video.DATASETS)}")
    if data.name == "video_folder":
        if not data.data_dir:
            raise _err(f"{prefix}.data_dir", "empty; give the built video_folder version directory")
        if not os.path.isdir(data.data_dir):
            raise _err(f"{prefix}.data_dir", f"no such directory {data.data_dir!r}")
    if train and data.few_shot_k:
        import numpy as np
        ds = data_pipelines.video.get_dataset(data.name, config=data)
        src = ds.split(data.train_split)
        counts = np.bincount(np.asarray(src.labels), minlength=len(ds.class_names))
        if data.few_shot_k > counts.min():
            raise _err(f"{prefix}.few_shot_k", f"{data.few_shot_k} shots asked but a class has only "
                                               f"{int(counts.min())} training examples")
    try:
        info = input_pipeline.dataset_info(data)
    except Exception as e:  # noqa: BLE001 - reported as a one-line config error
        raise _err(prefix, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if train and data.num_frames < 1:
        raise _err(f"{prefix}.num_frames", "must be >= 1")
    return info


def clip_config(config):
    """The CLIP architecture of a training config: preset name ``model.clip``, or a dict of its fields
    with ``model.clip_overrides`` applied (raises ConfigError naming the field)."""
    from tcvideo.clip.model import PRESETS

    clip = config.model.clip
    if isinstance(clip, str) and clip not in PRESETS:
        raise _err("model.clip", f"unknown CLIP preset {clip!r}; known: {sorted(PRESETS)}")
    if len(config.model.get("clip_overrides", {})):
        extra = config.model.clip_overrides.to_dict()
        try:
            clip = {**PRESETS[clip].to_dict(), **extra}
            from tcvideo.clip.model import CLIPConfig
            CLIPConfig.from_dict(clip)
        except (ValueError, TypeError) as e:
            raise _err("model.clip_overrides", str(e).splitlines()[0]) from e
    return clip


def model_config(config):
    """The TCCLIPConfig of a training config (raises ConfigError naming the field)."""
    from tcvideo.tc_clip import model as tc_lib

    clip = clip_config(config)
    if config.model.variant not in tc_lib.VARIANTS:
        raise _err("model.variant", f"unknown variant {config.model.variant!r}; known: {sorted(tc_lib.VARIANTS)}")
    overrides = config.model.overrides.to_dict()
    try:
        mc = tc_lib.variant_config(config.model.variant, clip=clip, num_frames=int(config.data.num_frames),
                                   **overrides)
    except (ValueError, TypeError) as e:
        msg = str(e).splitlines()[0]
        field = "model.overrides"
        for name in ("context_tokens", "seed_ratio", "prompt_context_length", "n_ctx"):
            if name in msg:
                field = f"model.overrides.{name}"
        raise _err(field, msg) from e
    if mc.clip.image_resolution != config.data.input_size:
        raise _err("data.input_size", f"{config.data.input_size} differs from the model's image_resolution "
                                      f"{mc.clip.image_resolution}")
    return mc


def validate_common(config) -> None:
    """Check the fields every task shares (optimizer, precision, batch, files), before any compute."""
    if config.compute_dtype not in COMPUTE_DTYPES:
        raise _err("compute_dtype", f"{config.compute_dtype!r} not in {COMPUTE_DTYPES}")
    if str(config.multihost).lower() not in ("auto", "true", "false"):
        raise _err("multihost", f"{config.multihost!r} not in ('auto', 'true', 'false')")
    for f in ("batch_size", "per_device_batch_size"):
        if config[f] < 1:
            raise _err(f, "must be >= 1")
    if config.grad_accum_steps < 0 or (config.grad_accum_steps and config.batch_size % config.grad_accum_steps):
        raise _err("grad_accum_steps", f"{config.grad_accum_steps} does not divide batch_size {config.batch_size}")
    if config.wise_ft_weight > 1.0:
        raise _err("wise_ft_weight", f"{config.wise_ft_weight} > 1 (1 = fine-tuned model, 0 = CLIP init)")
    if config.total_steps <= 0 and config.epochs <= 0:
        raise _err("epochs", "must be > 0 (or set total_steps)")
    for f in ("init_clip", "init_checkpoint", "llm_descriptions"):
        if config.get(f) and not os.path.exists(config[f]):
            raise _err(f, f"no such file or directory {config[f]!r}")


def validate(config, model_config_fn=None) -> dict:
    """Video-classification config check without devices. -> {'model': model config, 'info': ...,
    'eval_info': ...}. ``model_config_fn`` (training config -> model config) defaults to TC-CLIP's."""
    validate_common(config)
    if config.protocol not in PROTOCOLS:
        raise _err("protocol", f"{config.protocol!r} not in {PROTOCOLS}")
    mc = (model_config_fn or model_config)(config)
    if config.init_checkpoint:
        from tcvideo.core import model_dir as store
        try:
            meta = store.load_meta(config.init_checkpoint)
        except FileNotFoundError as e:
            raise _err("init_checkpoint", str(e).splitlines()[0]) from e
        ck = meta.get("config", {})
        if meta.get("model") not in ("tc_clip", "tcclip", None):
            raise _err("init_checkpoint", f"holds a {meta.get('model')!r} model, not TC-CLIP")
        if "num_frames" in ck and ck.get("positional_embedding_type", "space") == "joint" \
                and int(ck["num_frames"]) != int(config.data.num_frames):
            raise _err("data.num_frames", f"{config.data.num_frames} frames but the checkpoint's joint positional "
                                          f"embedding has {ck['num_frames']}")
        if "num_frames" in ck and int(ck["num_frames"]) != int(config.data.num_frames):
            raise _err("data.num_frames", f"{config.data.num_frames} frames but {config.init_checkpoint} was "
                                          f"trained with {ck['num_frames']}")
    info = _check_data("data", config.data, train=True)
    targets = {}
    for name, (group, data) in eval_targets(config).items():
        prefix = f"eval.datasets.{name}.data" if len(config.eval.datasets) else "data"
        targets[name] = _check_data(prefix, data, train=False)
    if config.llm_descriptions:
        from tcvideo.tc_clip.prompting import load_llm_descriptions
        try:
            descs = load_llm_descriptions(config.llm_descriptions)
        except ValueError as e:
            raise _err("llm_descriptions", str(e).splitlines()[0]) from e
        if len(descs) != info["num_classes"]:
            raise _err("llm_descriptions", f"{len(descs)} descriptions for {info['num_classes']} classes")
    return {"model": mc, "info": info, "eval_info": targets}
