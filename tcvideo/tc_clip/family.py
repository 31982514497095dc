"""TC-CLIP (and its baselines, as variants) as the "tc_clip" model family of the video-classification task.

``config.model.variant`` picks a row of ``tcvideo.tc_clip.model.VARIANTS`` (TC-CLIP, TC only, VP only,
ViFi-CLIP, vanilla CLIP, lightweight TC-CLIP): variants are configurations of the one model, not
families. ``config.model.overrides`` sets ``TCCLIPConfig`` fields.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.classification.config import check_input_size, clip_config
from tcvideo.classification.task import ModelFamily, register_model_family
from tcvideo.core.config import ConfigError, err

# CLIP's token embedding is a buffer in the official code (never trained); learnable prompts and the
# prompt-generation layers train at config.lr_mults.prompt x lr (10x in the official recipe).
PARAM_RULES = (("^text/token_embedding", "frozen"), ("text/ctx|prompt_generation", "prompt"))


def model_config(config):
    """The TCCLIPConfig of a training config (raises ConfigError naming the field)."""
    from tcvideo.tc_clip import model as tc_lib

    clip = clip_config(config)
    if config.model.variant not in tc_lib.VARIANTS:
        raise err("model.variant", f"unknown variant {config.model.variant!r}; known: {sorted(tc_lib.VARIANTS)}")
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
        raise err(field, msg) from e
    check_input_size(config, mc)
    if config.init_checkpoint:
        _check_init_checkpoint(config)
    return mc


def _check_init_checkpoint(config) -> None:
    """The model dir of ``config.init_checkpoint`` holds a TC-CLIP of the config's frame count."""
    from tcvideo.core import model_dir

    try:
        meta = model_dir.load_meta(config.init_checkpoint)
    except FileNotFoundError as e:
        raise err("init_checkpoint", str(e).splitlines()[0]) from e
    ck = meta.get("config", {})
    if meta.get("model") not in ("tc_clip", "tcclip", None):
        raise err("init_checkpoint", f"holds a {meta.get('model')!r} model, not TC-CLIP")
    if "num_frames" in ck and ck.get("positional_embedding_type", "space") == "joint" \
            and int(ck["num_frames"]) != int(config.data.num_frames):
        raise err("data.num_frames", f"{config.data.num_frames} frames but the checkpoint's joint positional "
                                     f"embedding has {ck['num_frames']}")
    if "num_frames" in ck and int(ck["num_frames"]) != int(config.data.num_frames):
        raise err("data.num_frames", f"{config.data.num_frames} frames but {config.init_checkpoint} was "
                                     f"trained with {ck['num_frames']}")


def initial_params(config, mc) -> dict:
    """Numpy TC-CLIP params before fine-tuning: from init_checkpoint, from CLIP (init_clip), or random."""
    from tcvideo.tc_clip import model as tc_lib
    if config.init_checkpoint:
        from tcvideo.core import model_dir
        params, _ = model_dir.load_model(config.init_checkpoint)
        return jax.tree_util.tree_map(np.asarray, params)
    if config.init_clip:
        from tcvideo.clip.loader import load_clip
        from tcvideo.tc_clip.convert import clip_init_params
        clip_cfg, clip_params = load_clip(config.init_clip)
        if clip_cfg != mc.clip:
            raise ConfigError(f"config.init_clip: checkpoint is {clip_cfg} but config.model.clip is {mc.clip}")
        return clip_init_params(clip_params, mc, rng=np.random.default_rng(config.seed))
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        p = tc_lib.init_params(mc, jax.random.PRNGKey(config.seed))
    return jax.tree_util.tree_map(np.asarray, p)


def build(mc, dtype, remat: bool = False):
    from tcvideo.tc_clip.model import TCCLIP
    return TCCLIP(mc, dtype=dtype, param_dtype=jnp.float32, remat=remat)


FAMILY = ModelFamily(model_config, build, initial_params, PARAM_RULES)
register_model_family("tc_clip", FAMILY)
