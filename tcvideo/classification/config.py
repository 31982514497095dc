"""Config of the video-classification task (TC-CLIP, its baselines, VicTR): the trainer's fields plus the
model family, class prompts, the video data, the evaluation targets and protocol, WiSE-FT; and their
checks, run before any compute."""
from __future__ import annotations

import os

import ml_collections

from tcvideo.core import config as core_config
from tcvideo.core.config import ConfigError, err

PROTOCOLS = ("supervised", "zero_shot", "few_shot", "base2novel")


def base_config() -> ml_collections.ConfigDict:
    """``tcvideo.core.config.base_config()`` plus the video-classification fields (configs/tc_clip, victr)."""
    from data_pipelines.video.input_pipeline import default_data_config

    c = core_config.base_config()
    c.task = "video_classification"
    c.protocol = "supervised"  # how eval results are summarised (see PROTOCOLS)

    c.model = ml_collections.ConfigDict()
    c.model.family = "tc_clip"  # a registered model family (tcvideo.classification.task.FAMILIES)
    c.model.variant = "tc_clip"  # tc_clip family: tc_clip | tc_only | vp_only | vifi_clip | vanilla_clip | tc_clip_light
    c.model.clip = "ViT-B/16"  # CLIP preset name
    c.model.clip_overrides = ml_collections.ConfigDict()  # CLIPConfig fields replacing the preset's
    c.model.overrides = ml_collections.ConfigDict()  # tc_clip family: TCCLIPConfig field overrides
    c.prompt_prefix = "a photo of a"
    c.prompt_template = "{prefix} {name}."  # vanilla CLIP (official zs_eval): "{name}", the bare class name
    # JSON {id: "Name: description"} of the training classes; replaces class names in prompts. Every eval
    # target with other classes names its own (eval.datasets.<t>.llm_descriptions, eval.validation.*).
    c.llm_descriptions = ""
    c.lr_mults.prompt = 10.0  # learnable prompts / video-conditional prompting (the family's 'prompt' group)

    c.data = default_data_config()
    c.train_eval_clips = 1  # views used by evals during training (official: 1x1)
    c.train_eval_crops = 1
    c.eval.num_clips = 2
    c.eval.num_crops = 1
    c.eval.compute_dtype = ""  # '' = config.compute_dtype; 'float16' evaluates as the official fp16 (apex O1)
    # name -> ConfigDict(group=str, data=ConfigDict of overrides of config.data). Empty: one target
    # named after config.data.name on config.data.test_split.
    c.eval.datasets = ml_collections.ConfigDict()
    # Model selection: the target evaluated during training (at train_eval views), whose top-1 picks best/
    # and the checkpoint of the final evaluation. group "" = none: in-training evals run every eval target
    # and the first one's top-1 is the score. Official: K400 val (zero-shot, fully supervised), base_val
    # (base-to-novel), the test list itself (few-shot).
    # target: the name of an eval target to validate on (its data); else config.data with data's overrides.
    c.eval.validation = eval_target("")
    c.eval.validation.target = ""
    c.eval.validation.llm_descriptions = ""
    # Config fields (dotted) that must name a file / folder: a recipe lists the official files it needs.
    c.required_files = ()
    c.wise_ft_weight = -1.0  # >= 0: also evaluate the WiSE-FT ensemble at this w (1 = fine-tuned)
    return c


def eval_target(group: str, **data_overrides) -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.group = group
    t.data = ml_collections.ConfigDict(data_overrides)
    return t


def validation_target(config) -> tuple[str, ml_collections.ConfigDict] | None:
    """(group, data config) of ``config.eval.validation``, or None when the config has none."""
    v = config.eval.get("validation", None)
    if v is None or not v.get("group", ""):
        return None
    if v.get("target", ""):
        targets = eval_targets(config)
        if v.target not in targets:
            raise err("eval.validation.target", f"{v.target!r} is not an eval target; known: {sorted(targets)}")
        return v.group, targets[v.target][1]
    return v.group, core_config.apply_overrides(config.data, v.get("data", {}))


def target_llm_descriptions(config, name: str) -> str:
    """The LLM-description file of eval target ``name`` ('validation' = eval.validation): its own, else
    the training one (validate() checks that the class count then matches)."""
    if name == "validation":
        own = config.eval.validation.get("llm_descriptions", "")
        if not own and config.eval.validation.get("target", ""):
            return target_llm_descriptions(config, config.eval.validation.target)
    else:
        t = config.eval.datasets.get(name, None) if len(config.eval.datasets) else None
        own = t.get("llm_descriptions", "") if t is not None else ""
    return own or config.llm_descriptions


def eval_targets(config) -> dict[str, tuple[str, ml_collections.ConfigDict]]:
    """name -> (group, data config) of every final evaluation target."""
    if not len(config.eval.datasets):
        return {config.data.name: (config.data.name, config.data)}
    return {name: (t.get("group", name), core_config.apply_overrides(config.data, t.get("data", {})))
            for name, t in config.eval.datasets.items()}


def check_data(prefix: str, data, train: bool) -> dict:
    """The dataset_info of one data config (ConfigError naming ``prefix``'s field when it cannot be read:
    the dataset, a split / class file, the few-shot K)."""
    import data_pipelines.video as dp
    from data_pipelines.video import input_pipeline
    from data_pipelines.video import splits as dp_splits

    try:
        dp.DATASETS.lookup(data.name)
    except KeyError as e:
        raise err(f"{prefix}.name", e.args[0]) from None
    if data.name == "video_folder":
        if not data.data_dir:
            raise err(f"{prefix}.data_dir", "empty; give the built video_folder version directory")
        if not os.path.isdir(data.data_dir):
            raise err(f"{prefix}.data_dir", f"no such directory {data.data_dir!r}")
    for field in ("train_list", "test_list", "class_names_file"):  # before any dataset is opened
        path = data.get(field, "")
        if path and not os.path.isfile(path):
            raise err(f"{prefix}.{field}", f"no such file {path!r}")
    try:
        if train and data.few_shot_k:
            import numpy as np
            all_shots = core_config.apply_overrides(data, {"few_shot_k": 0})
            _, _, labels, names = input_pipeline._split_view(all_shots, data.train_split, True)
            counts = np.bincount(labels, minlength=len(names))
            if data.few_shot_k > counts.min():
                raise err(f"{prefix}.few_shot_k", f"{data.few_shot_k} shots asked but a class has only "
                                                  f"{int(counts.min())} training examples")
        info = input_pipeline.dataset_info(data)
    except dp_splits.SplitFileError as e:
        raise err(f"{prefix}.{e.field}", str(e)[len(e.field) + 2:]) from None
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - reported as a one-line config error
        raise err(prefix, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if train and data.num_frames < 1:
        raise err(f"{prefix}.num_frames", "must be >= 1")
    return info


def clip_config(config):
    """The CLIP architecture of a training config: preset name ``model.clip``, or a dict of its fields
    with ``model.clip_overrides`` applied (raises ConfigError naming the field)."""
    from tcvideo.clip.model import CLIPConfig, PRESETS

    clip = config.model.clip
    if isinstance(clip, str) and clip not in PRESETS:
        raise err("model.clip", f"unknown CLIP preset {clip!r}; known: {sorted(PRESETS)}")
    if len(config.model.get("clip_overrides", {})):
        extra = config.model.clip_overrides.to_dict()
        try:
            clip = {**PRESETS[clip].to_dict(), **extra}
            CLIPConfig.from_dict(clip)
        except (ValueError, TypeError) as e:
            raise err("model.clip_overrides", str(e).splitlines()[0]) from e
    return clip


def check_input_size(config, mc) -> None:
    if mc.clip.image_resolution != config.data.input_size:
        raise err("data.input_size", f"{config.data.input_size} differs from the model's image_resolution "
                                     f"{mc.clip.image_resolution}")


def validate(config, model_config_fn) -> dict:
    """Video-classification config check without devices. ``model_config_fn``: the family's (training
    config -> model config). -> {'model': model config, 'info': dataset info, 'eval_info': per target,
    'validation_info': the validation target's (None without one)}."""
    if config.protocol not in PROTOCOLS:
        raise err("protocol", f"{config.protocol!r} not in {PROTOCOLS}")
    if config.wise_ft_weight > 1.0:
        raise err("wise_ft_weight", f"{config.wise_ft_weight} > 1 (1 = fine-tuned model, 0 = CLIP init)")
    from tcvideo.core.task import DTYPES
    check_required_files(config)
    if config.eval.get("compute_dtype", "") and config.eval.compute_dtype not in DTYPES:
        raise err("eval.compute_dtype", f"{config.eval.compute_dtype!r} not in {sorted(DTYPES)} (or '')")
    if "{name}" not in config.get("prompt_template", "{name}"):
        raise err("prompt_template", f"{config.prompt_template!r} has no '{{name}}'")
    mc = model_config_fn(config)
    info = check_data("data", config.data, train=True)
    targets = {}
    for name, (group, data) in eval_targets(config).items():
        prefix = f"eval.datasets.{name}.data" if len(config.eval.datasets) else "data"
        targets[name] = check_data(prefix, data, train=False)
    val = validation_target(config)
    val_info = check_data("eval.validation.data", val[1], train=False) if val is not None else None
    _check_llm("llm_descriptions", config.llm_descriptions, info["class_names"], "the training classes")
    named = {name: (f"eval.datasets.{name}.llm_descriptions" if len(config.eval.datasets) else "llm_descriptions", i)
             for name, i in targets.items()}
    if val_info is not None:
        named["validation"] = ("eval.validation.llm_descriptions", val_info)
    for name, (field, t_info) in named.items():
        path = target_llm_descriptions(config, name)
        own = path and path != config.llm_descriptions
        if path and not own and t_info["class_names"] != info["class_names"]:
            raise err(field, f"empty, but target {name!r} has other classes ({t_info['num_classes']}) than the "
                             f"training set: give its own description file (llm_descriptions is the training set's)")
        _check_llm(field, path, t_info["class_names"], f"target {name!r}")
    return {"model": mc, "info": info, "eval_info": targets, "validation_info": val_info}


def check_required_files(config) -> None:
    """Every field of ``config.required_files`` names an existing file or folder (before any compute)."""
    for field in config.get("required_files", ()):
        node = config
        for part in field.split("."):
            node = node.get(part, None) if hasattr(node, "get") else None
            if node is None:
                raise err(field, "missing; the recipe needs it (required_files)")
        if not node:
            raise err(field, "empty; the recipe reads the official file given here (required_files)")
        if not os.path.exists(str(node)):
            raise err(field, f"no such file or directory {node!r}")


def _check_llm(field: str, path: str, class_names, what: str) -> None:
    """An LLM-description file exists, reads, and has one description per class of ``what``."""
    if not path:
        return
    if not os.path.isfile(path):
        raise err(field, f"no such file {path!r}")
    from tcvideo.classification.prompts import load_llm_descriptions
    try:
        descs = load_llm_descriptions(path)
    except ValueError as e:
        raise err(field, str(e).splitlines()[0]) from e
    if len(descs) != len(class_names):
        raise err(field, f"{path}: {len(descs)} descriptions for the {len(class_names)} classes of {what}")
