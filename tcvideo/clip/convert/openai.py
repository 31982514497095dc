"""OpenAI CLIP checkpoints (released TorchScript .pt archives and plain state dicts) -> tcvideo params."""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.clip.convert.common import ConversionError, Rule, apply_rules, conv_kernel, count_indexed, dense_rules, flatten_shapes, layernorm_rules, read_torch_file, to_numpy_state_dict, transpose
from tcvideo.clip import model as clip_lib

# Integer metadata the TorchScript archives carry next to the weights.
_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


def detect_config(sd: Mapping[str, Any], source: str = "checkpoint") -> clip_lib.CLIPConfig:
    """Architecture from tensor shapes, as OpenAI's build_model does (ViT image towers only)."""
    need = ["visual.conv1.weight", "visual.positional_embedding", "text_projection", "positional_embedding",
            "token_embedding.weight", "ln_final.weight"]
    absent = [k for k in need if k not in sd]
    if absent:
        hint = (" (ResNet image towers are not supported)" if "visual.layer1.0.conv1.weight" in sd else "")
        raise ConversionError(f"{source} is not an OpenAI CLIP ViT state dict{hint}: missing keys "
                              + ", ".join(absent))
    conv = np.shape(sd["visual.conv1.weight"])
    grid = round(math.sqrt(np.shape(sd["visual.positional_embedding"])[0] - 1))
    return clip_lib.CLIPConfig(
        embed_dim=int(np.shape(sd["text_projection"])[1]),
        image_resolution=int(conv[-1] * grid),
        patch_size=int(conv[-1]),
        vision_width=int(conv[0]),
        vision_layers=count_indexed(sd, "visual.transformer.resblocks.", ".attn.in_proj_weight"),
        context_length=int(np.shape(sd["positional_embedding"])[0]),
        vocab_size=int(np.shape(sd["token_embedding.weight"])[0]),
        text_width=int(np.shape(sd["ln_final.weight"])[0]),
        text_layers=count_indexed(sd, "transformer.resblocks.", ".attn.in_proj_weight"),
    )


def block_rules(dst: str, src: str) -> list[Rule]:
    """One OpenAI residual block (fused in_proj) -> tcvideo ResidualAttentionBlock."""
    return [
        Rule(f"{dst}/attn/in_proj_kernel", (f"{src}.attn.in_proj_weight",), transpose),
        Rule(f"{dst}/attn/in_proj_bias", (f"{src}.attn.in_proj_bias",)),
        *dense_rules(f"{dst}/attn/out_proj", f"{src}.attn.out_proj"),
        *layernorm_rules(f"{dst}/ln_1", f"{src}.ln_1"),
        *layernorm_rules(f"{dst}/ln_2", f"{src}.ln_2"),
        *dense_rules(f"{dst}/mlp/c_fc", f"{src}.mlp.c_fc"),
        *dense_rules(f"{dst}/mlp/c_proj", f"{src}.mlp.c_proj"),
    ]


def vision_rules(config: clip_lib.CLIPConfig, dst: str = "visual", src: str = "visual") -> list[Rule]:
    rules = [
        Rule(f"{dst}/embed/conv1/kernel", (f"{src}.conv1.weight",), conv_kernel),
        Rule(f"{dst}/embed/class_embedding", (f"{src}.class_embedding",)),
        Rule(f"{dst}/embed/positional_embedding", (f"{src}.positional_embedding",)),
        *layernorm_rules(f"{dst}/ln_pre", f"{src}.ln_pre"),
        *layernorm_rules(f"{dst}/ln_post", f"{src}.ln_post"),
        Rule(f"{dst}/proj", (f"{src}.proj",)),
    ]
    for i in range(config.vision_layers):
        rules += block_rules(f"{dst}/resblocks_{i}", f"{src}.transformer.resblocks.{i}")
    return rules


def text_rules(config: clip_lib.CLIPConfig, dst: str = "text", src: str = "",
               with_token_embedding: bool = True) -> list[Rule]:
    rules = [
        Rule(f"{dst}/positional_embedding", (f"{src}positional_embedding",)),
        *layernorm_rules(f"{dst}/ln_final", f"{src}ln_final"),
        Rule(f"{dst}/text_projection", (f"{src}text_projection",)),
    ]
    if with_token_embedding:
        rules.append(Rule(f"{dst}/token_embedding/embedding", (f"{src}token_embedding.weight",)))
    for i in range(config.text_layers):
        rules += block_rules(f"{dst}/resblocks_{i}", f"{src}transformer.resblocks.{i}")
    return rules


def clip_rules(config: clip_lib.CLIPConfig) -> list[Rule]:
    return [*vision_rules(config), *text_rules(config), Rule("logit_scale", ("logit_scale",))]


def expected_shapes(config: clip_lib.CLIPConfig) -> dict[str, tuple[int, ...]]:
    model = clip_lib.CLIP(config)
    images = jnp.zeros((1, config.image_resolution, config.image_resolution, 3))
    ids = jnp.zeros((1, config.context_length), jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), images, ids)["params"]
    return flatten_shapes(shapes)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Read an OpenAI CLIP file (TorchScript archive or ``torch.save``d state dict) as numpy arrays."""
    obj = read_torch_file(path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return to_numpy_state_dict(obj)


def convert_state_dict(sd: Mapping[str, Any], source: str = "checkpoint", dtype: Any = np.float32,
                       ignore_extra: tuple[str, ...] = ()) -> tuple[clip_lib.CLIPConfig, dict]:
    """OpenAI state dict (numpy) -> (CLIPConfig, params). ``ignore_extra``: key suffixes to tolerate."""
    config = detect_config(sd, source)
    ignore = lambda k: k in _METADATA_KEYS or any(k.endswith(s) for s in ignore_extra)
    params = apply_rules(sd, clip_rules(config), expected_shapes(config), source=source, ignore=ignore,
                         dtype=dtype)
    return config, params


def convert_file(path: str, dtype: Any = np.float32) -> tuple[clip_lib.CLIPConfig, dict]:
    """OpenAI CLIP ``.pt`` (TorchScript or plain state dict) -> (CLIPConfig, params)."""
    return convert_state_dict(load_state_dict(path), source=path, dtype=dtype)
