"""Config of the video-classification task (TC-CLIP, its baselines, VicTR): the trainer's fields plus the
model family, class prompts, the video data, the evaluation targets and protocol, WiSE-FT; and their
checks, run before any compute."""
from __future__ import annotations

import os

import ml_collections

from tcvideo.core import config as core_config
from tcvideo.core.config import err

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
    c.llm_descriptions = ""  # JSON {id: "Name: description"}; replaces class names in prompts
    c.lr_mults.prompt = 10.0  # learnable prompts / video-conditional prompting (the family's 'prompt' group)

    c.data = default_data_config()
    c.train_eval_clips = 1  # views used by evals during training (official: 1x1)
    c.train_eval_crops = 1
    c.eval.num_clips = 2
    c.eval.num_crops = 1
    # name -> ConfigDict(group=str, data=ConfigDict of overrides of config.data). Empty: one target
    # named after config.data.name on config.data.test_split.
    c.eval.datasets = ml_collections.ConfigDict()
    c.wise_ft_weight = -1.0  # >= 0: also evaluate the WiSE-FT ensemble at this w (1 = fine-tuned)
    return c


def eval_target(group: str, **data_overrides) -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.group = group
    t.data = ml_collections.ConfigDict(data_overrides)
    return t


def eval_targets(config) -> dict[str, tuple[str, ml_collections.ConfigDict]]:
    """name -> (group, data config) of every final evaluation target."""
    if not len(config.eval.datasets):
        return {config.data.name: (config.data.name, config.data)}
    return {name: (t.get("group", name), core_config.apply_overrides(config.data, t.get("data", {})))
            for name, t in config.eval.datasets.items()}


def check_data(prefix: str, data, train: bool) -> dict:
    """The dataset_info of one data config (ConfigError naming ``prefix``'s field when it cannot be read)."""
    import data_pipelines.video as dp
    from data_pipelines.video import input_pipeline

    try:
        dp.DATASETS.lookup(data.name)
    except KeyError as e:
        raise err(f"{prefix}.name", e.args[0]) from None
    if data.name == "video_folder":
        if not data.data_dir:
            raise err(f"{prefix}.data_dir", "empty; give the built video_folder version directory")
        if not os.path.isdir(data.data_dir):
            raise err(f"{prefix}.data_dir", f"no such directory {data.data_dir!r}")
    if train and data.few_shot_k:
        import numpy as np
        ds = dp.get_dataset(data.name, config=data)
        src = ds.split(data.train_split)
        counts = np.bincount(np.asarray(src.labels), minlength=len(ds.class_names))
        if data.few_shot_k > counts.min():
            raise err(f"{prefix}.few_shot_k", f"{data.few_shot_k} shots asked but a class has only "
                                              f"{int(counts.min())} training examples")
    try:
        info = input_pipeline.dataset_info(data)
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
    config -> model config). -> {'model': model config, 'info': dataset info, 'eval_info': per target}."""
    if config.protocol not in PROTOCOLS:
        raise err("protocol", f"{config.protocol!r} not in {PROTOCOLS}")
    if config.wise_ft_weight > 1.0:
        raise err("wise_ft_weight", f"{config.wise_ft_weight} > 1 (1 = fine-tuned model, 0 = CLIP init)")
    if config.llm_descriptions and not os.path.exists(config.llm_descriptions):
        raise err("llm_descriptions", f"no such file or directory {config.llm_descriptions!r}")
    mc = model_config_fn(config)
    info = check_data("data", config.data, train=True)
    targets = {}
    for name, (group, data) in eval_targets(config).items():
        prefix = f"eval.datasets.{name}.data" if len(config.eval.datasets) else "data"
        targets[name] = check_data(prefix, data, train=False)
    if config.llm_descriptions:
        from tcvideo.classification.prompts import load_llm_descriptions
        try:
            descs = load_llm_descriptions(config.llm_descriptions)
        except ValueError as e:
            raise err("llm_descriptions", str(e).splitlines()[0]) from e
        if len(descs) != info["num_classes"]:
            raise err("llm_descriptions", f"{len(descs)} descriptions for {info['num_classes']} classes")
    return {"model": mc, "info": info, "eval_info": targets}
