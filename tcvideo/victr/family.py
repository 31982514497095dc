"""VicTR as a model family of the video-classification task (``config.model.family = "victr"``).

Same datasets, protocols, loss, evaluation, trainer and CLI as TC-CLIP; the model is
``tcvideo.victr.model.VicTR``. Its fields live in ``config.model.victr`` (``victr_config_defaults``);
``config.model.variant`` / ``config.model.overrides`` (TC-CLIP's) are not used.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tcvideo.classification.config import check_input_size, clip_config
from tcvideo.classification.task import ModelFamily, register_model_family
from tcvideo.clip.loader import load_clip
from tcvideo.core.config import ConfigError
from tcvideo.victr.model import HEAD_PARAMS


def victr_config_defaults() -> ml_collections.ConfigDict:
    """``config.model.victr``: the VicTRConfig fields a training config sets (see tcvideo/victr/model.py)."""
    return ml_collections.ConfigDict(dict(
        head_layers=1,
        head_heads=0,                # 0 = embed_dim // 64
        aux_prompts="",              # JSON {category: [texts]}; '' = no auxiliary text
        use_aux_text=True,           # ablation: False ignores aux_prompts
        attention="divided",         # divided | joint
        reweight=True,               # affinity re-weighting in the head
        affinity="softmax",          # softmax | shifted_cosine
        affinity_scale="learned",    # learned | clip (softmax temperature)
        identity_init=True,          # head starts as the identity: logits at step 0 = CLIP's zero-shot
        final_norm="none",           # none | layernorm (one LayerNorm on visual and text tokens)
        visual_embedding="victr",    # victr | clip
        text_embedding="victr",      # victr | clip
        classifier="affinity",       # affinity | visual | text
        split_camel_case=True,
        prompt_context_length=77,
    ))


def model_config(config):
    """Training config -> VicTRConfig (raises ConfigError naming the field)."""
    from tcvideo.victr import model as victr_lib
    from tcvideo.clip.model import get_config

    clip = get_config(clip_config(config))
    if "victr" not in config.model:
        raise ConfigError("config.model.victr: missing; start from tcvideo.victr.family.victr_config_defaults()")
    v = config.model.victr.to_dict()
    known = set(victr_config_defaults().keys())
    unknown = sorted(set(v) - known)
    if unknown:
        raise ConfigError(f"config.model.victr: unknown field(s) {unknown}; known: {sorted(known)}")
    if config.init_checkpoint:
        raise ConfigError("config.init_checkpoint: not supported by the victr family (use init_clip, or "
                          "`tcvideo eval` on a training workdir)")
    path = v.pop("aux_prompts", "")
    cats, texts = (), ()
    if path and v.get("use_aux_text", True):
        try:
            cats, texts = victr_lib.load_aux_prompts(path)
        except ValueError as e:
            raise ConfigError(f"config.model.victr.aux_prompts: {str(e).splitlines()[0]}") from e
    try:
        mc = victr_lib.VicTRConfig(clip=clip, num_frames=int(config.data.num_frames), aux_categories=cats,
                                   aux_texts=texts, **v)
    except (ValueError, TypeError) as e:
        msg = str(e).splitlines()[0]
        field = next((f for f in known if msg.startswith(f + "=")), "")
        raise ConfigError(f"config.model.victr{'.' + field if field else ''}: {msg}") from e
    try:
        mc.aux_ids()
    except ValueError as e:
        raise ConfigError(f"config.model.victr.aux_prompts: {path}: {str(e).splitlines()[0]} "
                          f"(prompt_context_length={mc.prompt_context_length})") from e
    check_input_size(config, mc)
    return mc


def build(mc, dtype, remat: bool = False):
    from tcvideo.victr.model import VicTR
    return VicTR(mc, dtype=dtype, param_dtype=jnp.float32, remat=remat)


def initial_params(config, mc) -> dict:
    """Numpy VicTR params: CLIP towers from ``config.init_clip`` (head from ``init_params``: the identity
    by default), or all random."""
    from tcvideo.victr import model as victr_lib
    rng = jax.random.PRNGKey(config.seed)
    if config.init_clip:
        clip_cfg, clip_params = load_clip(config.init_clip)
        if clip_cfg != mc.clip:
            raise ConfigError(f"config.init_clip: checkpoint is {clip_cfg} but config.model.clip is {mc.clip}")
        try:
            return victr_lib.clip_init_params(clip_params, mc, rng)
        except ValueError as e:
            raise ConfigError(f"config.init_clip: {e}") from e
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        p = victr_lib.init_params(mc, rng)
    return jax.tree_util.tree_map(np.asarray, p)


# CLIP's token embedding stays frozen, as in the TC-CLIP recipe VicTR's configs borrow. The video head
# (layers, time embedding, affinity temperature, aux gate, ...) trains at config.lr_mults.head x lr.
PARAM_RULES = (("^text/token_embedding", "frozen"), (HEAD_PARAMS, "head"))

FAMILY = ModelFamily(model_config, build, initial_params, PARAM_RULES)
register_model_family("victr", FAMILY)
