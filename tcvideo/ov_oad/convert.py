"""Official OV-OAD checkpoints (ZQSIAT/OV-OAD, ``MultiLabelContrastive`` with the feature-input GroupViT of
``models/group_vit_0423.py``) -> tcvideo OV-OAD params.

Source layout (``utils/checkpoint.py:save_checkpoint``): ``{'model': state_dict, 'optimizer', 'lr_scheduler',
'scaler', 'metrics', 'epoch', 'config'}``; keys without DDP's ``module.`` prefix (one is stripped if present):
``img_encoder.pos_embed``, ``img_encoder.layers.{0,1,2}.blocks.i`` (fused ``attn.qkv``), ``layers.0.long_short_xattn``
(post-norm cross block, separate q/k/v), ``layers.1.group_token``, ``layers.1.downsample.*`` (grouping block),
``img_encoder.norm``, ``text_encoder.*`` (OpenAI CLIP text names + ``adaptmlp``), ``img_projector`` /
``text_projector`` (``linear_hidden.0/1``, ``linear_out``), ``saliency_projector``, ``logit_scale``,
``multi_label_logit_scale``.

The architecture is read from the shapes, except the visual head count (not in the weights): the
checkpoint's saved ``config.model.img_encoder.num_heads`` when present, else ``num_heads`` (released: 8).
The plain-CLIP zero-shot branch is not in the checkpoint; it comes from the OpenAI CLIP state dict
(``visual.proj``, the text tower, ``logit_scale``) when one is given.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.clip import model as clip_lib
from tcvideo.clip.convert import openai as openai_conv
from tcvideo.clip.convert.common import (ConversionError, Rule, apply_rules, count_indexed, dense_rules, flatten_shapes,
                                         layernorm_rules, read_torch_file, strip_prefix, to_numpy_state_dict, transpose)
from tcvideo.ov_oad import model as oad

IMG = "img_encoder"
TXT = "text_encoder"


def _qkv_kernel(q, k, v):
    return transpose(np.concatenate([q, k, v], axis=0))


def _adapter_rules(dst: str, src: str) -> list[Rule]:
    return [*dense_rules(f"{dst}/adapter/down", f"{src}.adaptmlp.down_proj"),
            *dense_rules(f"{dst}/adapter/up", f"{src}.adaptmlp.up_proj")]


def attn_block_rules(dst: str, src: str, adapter: bool) -> list[Rule]:
    """One released AttnBlock (fused qkv [3D, D]) -> tcvideo ``Block``."""
    rules = [
        Rule(f"{dst}/attn/in_proj_kernel", (f"{src}.attn.qkv.weight",), transpose),
        Rule(f"{dst}/attn/in_proj_bias", (f"{src}.attn.qkv.bias",)),
        *dense_rules(f"{dst}/attn/out_proj", f"{src}.attn.proj"),
        *layernorm_rules(f"{dst}/ln_1", f"{src}.norm1"),
        *layernorm_rules(f"{dst}/ln_2", f"{src}.norm2"),
        *dense_rules(f"{dst}/mlp/fc1", f"{src}.mlp.fc1"),
        *dense_rules(f"{dst}/mlp/fc2", f"{src}.mlp.fc2"),
    ]
    return rules + (_adapter_rules(dst, src) if adapter else [])


def cross_block_rules(dst: str, src: str) -> list[Rule]:
    """A released post-norm CrossAttnBlock (separate q/k/v projections) -> ``PostNormCrossBlock``."""
    return [
        Rule(f"{dst}/attn/in_proj_kernel", tuple(f"{src}.attn.{p}_proj.weight" for p in "qkv"), _qkv_kernel),
        Rule(f"{dst}/attn/in_proj_bias", tuple(f"{src}.attn.{p}_proj.bias" for p in "qkv"),
             lambda q, k, v: np.concatenate([q, k, v])),
        *dense_rules(f"{dst}/attn/out_proj", f"{src}.attn.proj"),
        *layernorm_rules(f"{dst}/ln_2", f"{src}.norm2"),
        *dense_rules(f"{dst}/mlp/fc1", f"{src}.mlp.fc1"),
        *dense_rules(f"{dst}/mlp/fc2", f"{src}.mlp.fc2"),
        *layernorm_rules(f"{dst}/ln_post", f"{src}.norm_post"),
    ]


def _projector_rules(dst: str, src: str) -> list[Rule]:
    return [*dense_rules(f"{dst}/fc1", f"{src}.linear_hidden.0"), *layernorm_rules(f"{dst}/ln", f"{src}.linear_hidden.1"),
            *dense_rules(f"{dst}/fc2", f"{src}.linear_out")]


def ovoad_rules(c: oad.OVOADConfig) -> list[Rule]:
    """Every official key -> tcvideo parameter rule (the zero-shot CLIP branch excluded)."""
    va = c.visual_adapter_dim > 0
    rules = [Rule("pos_embed", (f"{IMG}.pos_embed",)), Rule("group_token", (f"{IMG}.layers.1.group_token",)),
             *layernorm_rules("ln_out", f"{IMG}.norm")]
    for i in range(c.dntr_layers):
        rules += attn_block_rules(f"dntr_{i}", f"{IMG}.layers.0.blocks.{i}", va)
    rules += cross_block_rules("dntr_cross", f"{IMG}.layers.0.long_short_xattn")
    for i in range(c.cluster_layers):
        rules += attn_block_rules(f"cluster_{i}", f"{IMG}.layers.1.blocks.{i}", va)
    for i in range(c.out_layers):
        rules += attn_block_rules(f"out_{i}", f"{IMG}.layers.2.blocks.{i}", va)
    g, s = "grouping", f"{IMG}.layers.1.downsample"
    rules += [*layernorm_rules(f"{g}/norm_x", f"{s}.norm_x"), *layernorm_rules(f"{g}/norm_tokens", f"{s}.norm_tokens"),
              *dense_rules(f"{g}/mlp_inter/fc1", f"{s}.mlp_inter.fc1"),
              *dense_rules(f"{g}/mlp_inter/fc2", f"{s}.mlp_inter.fc2"),
              *layernorm_rules(f"{g}/norm_post_tokens", f"{s}.norm_post_tokens"),
              *cross_block_rules(f"{g}/pre_assign_attn", f"{s}.pre_assign_attn"),
              *dense_rules(f"{g}/assign_q", f"{s}.assign.q_proj"), *dense_rules(f"{g}/assign_k", f"{s}.assign.k_proj"),
              *dense_rules(f"{g}/assign_v", f"{s}.assign.v_proj"), *dense_rules(f"{g}/assign_proj", f"{s}.assign.proj"),
              *layernorm_rules(f"{g}/norm_new_x", f"{s}.norm_new_x"),
              *dense_rules(f"{g}/mlp_channels/fc1", f"{s}.mlp_channels.fc1"),
              *dense_rules(f"{g}/mlp_channels/fc2", f"{s}.mlp_channels.fc2")]
    rules += openai_conv.text_rules(c.text, dst="text", src=f"{TXT}.")
    if c.text_adapter_dim:
        for i in range(c.text.text_layers):
            rules += _adapter_rules(f"text/resblocks_{i}", f"{TXT}.transformer.resblocks.{i}")
    rules += [*_projector_rules("img_projector", "img_projector"), *_projector_rules("text_projector", "text_projector"),
              Rule("saliency_projector", ("saliency_projector",)), Rule("logit_scale", ("logit_scale",)),
              Rule("multi_label_logit_scale", ("multi_label_logit_scale",))]
    return rules


def zero_shot_rules(c: oad.OVOADConfig) -> list[Rule]:
    """OpenAI CLIP state dict -> the frozen zero-shot branch (zs_visual_proj, zs_text, zs_logit_scale)."""
    return [Rule("zs_visual_proj", ("visual.proj",)), Rule("zs_logit_scale", ("logit_scale",)),
            *openai_conv.text_rules(c.text, dst="zs_text", src="")]


def _shape(sd: Mapping[str, Any], key: str, source: str) -> tuple[int, ...]:
    if key not in sd:
        raise ConversionError(f"{source} is not an official OV-OAD state dict (feature-input GroupViT): no key {key}")
    return tuple(np.shape(sd[key]))


def detect_config(sd: Mapping[str, Any], *, num_heads: int = 8, zero_shot_clip: bool = True, source: str = "checkpoint",
                  **overrides) -> oad.OVOADConfig:
    """OVOADConfig from the official state-dict shapes (``num_heads``: not recorded in the weights)."""
    _, window, d = _shape(sd, f"{IMG}.pos_embed", source)
    count = lambda layer: count_indexed(sd, f"{IMG}.layers.{layer}.blocks.", ".attn.qkv.weight")
    ds = f"{IMG}.layers.1.downsample"
    adapter_key = f"{IMG}.layers.0.blocks.0.adaptmlp.down_proj.weight"
    text_adapter_key = f"{TXT}.transformer.resblocks.0.adaptmlp.down_proj.weight"
    tw = _shape(sd, f"{TXT}.ln_final.weight", source)[0]
    text = clip_lib.CLIPConfig.from_dict({
        **clip_lib.PRESETS["ViT-B/16"].to_dict(), "vision_width": int(d), "vision_heads": None,
        "embed_dim": int(_shape(sd, f"{TXT}.text_projection", source)[1]),
        "context_length": int(_shape(sd, f"{TXT}.positional_embedding", source)[0]),
        "vocab_size": int(_shape(sd, f"{TXT}.token_embedding.weight", source)[0]), "text_width": int(tw),
        "text_heads": None, "text_layers": count_indexed(sd, f"{TXT}.transformer.resblocks.", ".attn.in_proj_weight")})
    fields = dict(
        feature_dim=int(d), window=int(window), num_heads=int(num_heads),
        mlp_ratio=_shape(sd, f"{IMG}.layers.0.blocks.0.mlp.fc1.weight", source)[0] // int(d),
        dntr_layers=count(0), cluster_layers=count(1), out_layers=count(2),
        num_group_tokens=_shape(sd, f"{IMG}.layers.1.group_token", source)[1],
        num_output_groups=_shape(sd, f"{ds}.mlp_inter.fc2.weight", source)[0],
        group_mlp_hidden=_shape(sd, f"{ds}.mlp_inter.fc1.weight", source)[0],
        proj_hidden=_shape(sd, "img_projector.linear_hidden.0.weight", source)[0],
        proj_dim=_shape(sd, "img_projector.linear_out.weight", source)[0],
        visual_adapter_dim=int(np.shape(sd[adapter_key])[0]) if adapter_key in sd else 0,
        text_adapter_dim=int(np.shape(sd[text_adapter_key])[0]) if text_adapter_key in sd else 0,
        text=text, zero_shot_clip=zero_shot_clip)
    fields.update(overrides)
    try:
        return oad.OVOADConfig(**fields)
    except ValueError as e:
        raise ConversionError(f"{source}: {e}") from e


def expected_shapes(config: oad.OVOADConfig) -> dict[str, tuple[int, ...]]:
    feats = jnp.zeros((1, config.window, config.feature_dim), jnp.float32)
    ids = jnp.zeros((2, config.text.context_length), jnp.int32)
    return flatten_shapes(jax.eval_shape(oad.OVOAD(config).init, jax.random.PRNGKey(0), feats, ids)["params"])


def convert_state_dict(sd: Mapping[str, Any], clip_sd: Optional[Mapping[str, Any]] = None, *, num_heads: int = 8,
                       source: str = "checkpoint", clip_source: str = "CLIP checkpoint", dtype: Any = np.float32,
                       **overrides) -> tuple[oad.OVOADConfig, dict]:
    """Official OV-OAD state dict (numpy; + the OpenAI CLIP one for the zero-shot branch) -> (config, params)."""
    sd = strip_prefix(sd, "module.")
    config = detect_config(sd, num_heads=num_heads, zero_shot_clip=clip_sd is not None, source=source, **overrides)
    shapes = expected_shapes(config)
    own = {k: v for k, v in shapes.items() if not k.startswith("zs_")}
    params = apply_rules(sd, ovoad_rules(config), own, source=source, dtype=dtype)
    if clip_sd is not None:
        zs = {k: v for k, v in shapes.items() if k.startswith("zs_")}
        # Only the projection, the text tower and the scale are used; the rest of CLIP's vision tower is not.
        ignore = lambda k: k.startswith("visual.") or k in ("input_resolution", "context_length", "vocab_size")
        params.update(apply_rules(clip_sd, zero_shot_rules(config), zs, source=clip_source, ignore=ignore, dtype=dtype))
    return config, params


def _saved_num_heads(ckpt: Mapping[str, Any]) -> Optional[int]:
    try:
        heads = ckpt["config"]["model"]["img_encoder"]["num_heads"]
    except (KeyError, TypeError, IndexError):
        return None
    return int(heads[0] if isinstance(heads, (list, tuple)) else heads)


def convert(checkpoint: str, clip: Optional[str] = None, *, num_heads: Optional[int] = None, dtype: Any = np.float32,
            **overrides) -> tuple[oad.OVOADConfig, dict]:
    """Official OV-OAD ``.pth`` (+ OpenAI CLIP ``.pt`` for the zero-shot branch) -> (config, params)."""
    obj = read_torch_file(checkpoint)
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{checkpoint} holds a {type(obj).__name__}, not an OV-OAD checkpoint")
    sd = obj["model"] if isinstance(obj.get("model"), Mapping) else obj
    heads = num_heads or _saved_num_heads(obj) or 8
    clip_sd = openai_conv.load_state_dict(clip) if clip else None
    return convert_state_dict(to_numpy_state_dict(sd), clip_sd, num_heads=heads, source=checkpoint,
                              clip_source=clip or "", dtype=dtype, **overrides)


def convert_to_directory(checkpoint: str, clip: Optional[str], out: str, *, num_heads: Optional[int] = None,
                         dtype: str = "float32", overwrite: bool = False, **overrides) -> tuple[oad.OVOADConfig, dict]:
    """``convert`` and write a tcvideo model directory (model.json + orbax params; load with
    ``tcvideo.core.model_dir.load_model``; ``meta['config']`` is the OVOADConfig)."""
    from tcvideo.clip.convert.api import numpy_dtype
    from tcvideo.core import model_dir
    config, params = convert(checkpoint, clip, num_heads=num_heads, dtype=numpy_dtype(dtype), **overrides)
    model_dir.save_model(out, params, {"model": "ov_oad", "config": config.to_dict(),
                                       "source": {"checkpoint": checkpoint, "clip": clip}}, overwrite=overwrite)
    return config, params
