"""Hugging Face CLIP directories (``CLIPModel.save_pretrained``) -> tcvideo CLIP params.

A directory holds ``config.json`` and the weights as ``model.safetensors`` (read with
``safetensors.numpy``: no torch needed), sharded ``model.safetensors.index.json`` + shards, or
``pytorch_model.bin`` (needs torch). The architecture comes from ``config.json`` and is checked
against the tensor shapes; every key mismatch is reported at once.

HF splits attention into q_proj/k_proj/v_proj; tcvideo (like OpenAI) uses one fused
``in_proj_kernel`` [W, 3W] with columns in q, k, v order.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from tcvideo.clip.convert.common import ConversionError, Rule, apply_rules, conv_kernel, dense_rules, layernorm_rules, read_torch_file, to_numpy_state_dict, transpose
from tcvideo.clip.convert.openai import expected_shapes
from tcvideo.clip import model as clip_lib
from tcvideo.clip.layers import LN_EPS

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"

# transformers' CLIPTextConfig / CLIPVisionConfig defaults, used when config.json omits a field
# (as old exports of openai/clip-vit-base-patch32 do).
_TEXT_DEFAULTS = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                      num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu",
                      layer_norm_eps=1e-5)
_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        num_channels=3, image_size=224, patch_size=32, hidden_act="quick_gelu",
                        layer_norm_eps=1e-5)

_IGNORED_SUFFIXES = ("position_ids",)  # buffers some exports carry; recomputed, not learned


# ----------------------------------------------------------------------------------------- reading


def _load_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from e


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file  # numpy backend: torch is never imported

    try:
        return dict(load_file(path))
    except Exception as e:  # noqa: BLE001 - report the file and the reader's reason
        raise ConversionError(f"{path} is not a readable safetensors file: {e}") from e


def _read_bin(path: str) -> dict[str, np.ndarray]:
    obj = read_torch_file(path)
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return to_numpy_state_dict(obj)


def _read_sharded(directory: str, index_file: str, reader) -> dict[str, np.ndarray]:
    index = _load_json(os.path.join(directory, index_file))
    shards = sorted(set(index.get("weight_map", {}).values()))
    if not shards:
        raise ConversionError(f"{os.path.join(directory, index_file)} has no weight_map")
    sd: dict[str, np.ndarray] = {}
    for shard in shards:
        path = os.path.join(directory, shard)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{directory}: shard {shard} named in {index_file} is missing")
        sd.update(reader(path))
    return sd


def weights_file(model_dir: str) -> str:
    """The weights file of ``model_dir`` that will be read (safetensors preferred)."""
    for name in (SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE, TORCH_INDEX):
        if os.path.exists(os.path.join(model_dir, name)):
            return os.path.join(model_dir, name)
    raise FileNotFoundError(
        f"{model_dir} has no weights: expected {SAFETENSORS_FILE}, {SAFETENSORS_INDEX}, {TORCH_FILE} or "
        f"{TORCH_INDEX} next to {CONFIG_FILE} (as written by CLIPModel.save_pretrained)")


def load_state_dict(model_dir: str) -> dict[str, np.ndarray]:
    """All tensors of a HF directory as numpy arrays."""
    path = weights_file(model_dir)
    name = os.path.basename(path)
    if name == SAFETENSORS_FILE:
        return _read_safetensors(path)
    if name == SAFETENSORS_INDEX:
        return _read_sharded(model_dir, name, _read_safetensors)
    if name == TORCH_FILE:
        return _read_bin(path)
    return _read_sharded(model_dir, name, _read_bin)


def read_config(model_dir: str) -> dict:
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"Hugging Face model directory not found: {model_dir}")
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{model_dir} has no {CONFIG_FILE}; expected a directory written by "
                                "transformers' CLIPModel.save_pretrained")
    return _load_json(path)


# ----------------------------------------------------------------------------------- architecture


def config_from_hf(hf: Mapping[str, Any], source: str = "config.json") -> clip_lib.CLIPConfig:
    """HF CLIPConfig dict -> tcvideo CLIPConfig, refusing what tcvideo's CLIP cannot compute."""
    model_type = hf.get("model_type")
    if model_type not in (None, "clip"):
        raise ConversionError(f"{source}: model_type is {model_type!r}; only 'clip' (CLIPModel) is supported")
    if "text_config" not in hf or "vision_config" not in hf:
        raise ConversionError(f"{source}: needs text_config and vision_config (a CLIPModel config); "
                              "text-only or vision-only models are not supported")
    text = {**_TEXT_DEFAULTS, **(hf["text_config"] or {})}
    vision = {**_VISION_DEFAULTS, **(hf["vision_config"] or {})}
    problems = []
    for tower, c in (("text_config", text), ("vision_config", vision)):
        if c["hidden_act"] != "quick_gelu":
            problems.append(f"{tower}.hidden_act is {c['hidden_act']!r}; tcvideo's CLIP uses 'quick_gelu' "
                            "(OpenAI CLIP's activation)")
        if not math.isclose(float(c["layer_norm_eps"]), LN_EPS, rel_tol=1e-3):
            problems.append(f"{tower}.layer_norm_eps is {c['layer_norm_eps']}; tcvideo's CLIP uses {LN_EPS}")
        if c["intermediate_size"] != 4 * c["hidden_size"]:
            problems.append(f"{tower}.intermediate_size is {c['intermediate_size']}; tcvideo's CLIP needs "
                            f"4 * hidden_size = {4 * c['hidden_size']}")
    if vision.get("num_channels", 3) != 3:
        problems.append(f"vision_config.num_channels is {vision['num_channels']}; only 3 is supported")
    if problems:
        raise ConversionError(f"{source} describes a model tcvideo cannot load:\n  " + "\n  ".join(problems))
    try:
        return clip_lib.CLIPConfig(
            embed_dim=int(hf.get("projection_dim", 512)),
            image_resolution=int(vision["image_size"]),
            patch_size=int(vision["patch_size"]),
            vision_width=int(vision["hidden_size"]),
            vision_layers=int(vision["num_hidden_layers"]),
            vision_heads=int(vision["num_attention_heads"]),
            context_length=int(text["max_position_embeddings"]),
            vocab_size=int(text["vocab_size"]),
            text_width=int(text["hidden_size"]),
            text_heads=int(text["num_attention_heads"]),
            text_layers=int(text["num_hidden_layers"]),
        )
    except ValueError as e:
        raise ConversionError(f"{source}: {e}") from e


def _layer_count(keys, prefix: str) -> int:
    """Number of distinct i with some key ``{prefix}{i}.*`` (robust to a block missing one key)."""
    idx = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                idx.add(int(head))
    return len(idx)


def config_from_shapes(sd: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    """What the tensors say about the architecture: {field: (value, evidence)}. Absent keys are skipped
    (apply_rules reports them)."""
    out = {}
    shape = lambda k: tuple(np.shape(sd[k])) if k in sd else None
    ev = lambda k: f"{k} {shape(k)}"
    if (s := shape(k := "visual_projection.weight")) is not None and len(s) == 2:
        out["embed_dim"], out["vision_width"] = (s[0], ev(k)), (s[1], ev(k))
    if (s := shape(k := "vision_model.embeddings.patch_embedding.weight")) is not None and len(s) == 4:
        out["patch_size"] = (s[-1], ev(k))
        if (p := shape(k2 := "vision_model.embeddings.position_embedding.weight")) is not None and len(p) == 2:
            out["image_resolution"] = (s[-1] * round(math.sqrt(p[0] - 1)), f"{ev(k)}, {ev(k2)}")
    if (s := shape(k := "text_model.embeddings.token_embedding.weight")) is not None and len(s) == 2:
        out["vocab_size"], out["text_width"] = (s[0], ev(k)), (s[1], ev(k))
    if (s := shape(k := "text_model.embeddings.position_embedding.weight")) is not None and len(s) == 2:
        out["context_length"] = (s[0], ev(k))
    out["vision_layers"] = (_layer_count(sd, "vision_model.encoder.layers."), "vision_model.encoder.layers.*")
    out["text_layers"] = (_layer_count(sd, "text_model.encoder.layers."), "text_model.encoder.layers.*")
    return out


def check_config_against_shapes(config: clip_lib.CLIPConfig, sd: Mapping[str, Any], source: str) -> None:
    if not any(k.startswith(("vision_model.", "text_model.")) for k in sd):
        raise ConversionError(f"{source} holds no CLIPModel weights (no vision_model.* / text_model.* keys); "
                              f"first keys: {', '.join(sorted(sd)[:5]) or '(none)'}")
    diffs = [f"{k}: config.json gives {getattr(config, k)}, weights give {v} (from {evidence})"
             for k, (v, evidence) in config_from_shapes(sd).items() if getattr(config, k) != v]
    if diffs:
        raise ConversionError(f"{source}: config.json disagrees with the weights:\n  " + "\n  ".join(diffs))


# ---------------------------------------------------------------------------------------- mapping


def _qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """q/k/v Linear weights [W, W] -> fused kernel [W, 3W] (columns q | k | v)."""
    return np.ascontiguousarray(np.concatenate([q, k, v], axis=0).T)


def _qkv_bias(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.concatenate([q, k, v], axis=0)


def block_rules(dst: str, src: str) -> list[Rule]:
    """One HF CLIPEncoderLayer -> tcvideo ResidualAttentionBlock."""
    a = f"{src}.self_attn"
    return [
        Rule(f"{dst}/attn/in_proj_kernel", tuple(f"{a}.{n}_proj.weight" for n in "qkv"), _qkv),
        Rule(f"{dst}/attn/in_proj_bias", tuple(f"{a}.{n}_proj.bias" for n in "qkv"), _qkv_bias),
        *dense_rules(f"{dst}/attn/out_proj", f"{a}.out_proj"),
        *layernorm_rules(f"{dst}/ln_1", f"{src}.layer_norm1"),
        *layernorm_rules(f"{dst}/ln_2", f"{src}.layer_norm2"),
        *dense_rules(f"{dst}/mlp/c_fc", f"{src}.mlp.fc1"),
        *dense_rules(f"{dst}/mlp/c_proj", f"{src}.mlp.fc2"),
    ]


def clip_rules(config: clip_lib.CLIPConfig) -> list[Rule]:
    v, t = "vision_model", "text_model"
    rules = [
        Rule("visual/embed/conv1/kernel", (f"{v}.embeddings.patch_embedding.weight",), conv_kernel),
        Rule("visual/embed/class_embedding", (f"{v}.embeddings.class_embedding",)),
        Rule("visual/embed/positional_embedding", (f"{v}.embeddings.position_embedding.weight",)),
        *layernorm_rules("visual/ln_pre", f"{v}.pre_layrnorm"),  # sic: HF's spelling
        *layernorm_rules("visual/ln_post", f"{v}.post_layernorm"),
        Rule("visual/proj", ("visual_projection.weight",), transpose),
        Rule("text/token_embedding/embedding", (f"{t}.embeddings.token_embedding.weight",)),
        Rule("text/positional_embedding", (f"{t}.embeddings.position_embedding.weight",)),
        *layernorm_rules("text/ln_final", f"{t}.final_layer_norm"),
        Rule("text/text_projection", ("text_projection.weight",), transpose),
        Rule("logit_scale", ("logit_scale",)),
    ]
    for i in range(config.vision_layers):
        rules += block_rules(f"visual/resblocks_{i}", f"{v}.encoder.layers.{i}")
    for i in range(config.text_layers):
        rules += block_rules(f"text/resblocks_{i}", f"{t}.encoder.layers.{i}")
    return rules


def convert_state_dict(sd: Mapping[str, Any], config: clip_lib.CLIPConfig, source: str = "checkpoint",
                       dtype: Any = np.float32) -> dict:
    """HF CLIPModel state dict (numpy) + its architecture -> tcvideo params."""
    check_config_against_shapes(config, sd, source)
    ignore = lambda k: k.endswith(_IGNORED_SUFFIXES)
    return apply_rules(sd, clip_rules(config), expected_shapes(config), source=source, ignore=ignore,
                       dtype=dtype)


def convert_dir(model_dir: str, dtype: Any = np.float32) -> tuple[clip_lib.CLIPConfig, dict]:
    """HF CLIP directory (config.json + model.safetensors / pytorch_model.bin) -> (CLIPConfig, params)."""
    model_dir = os.path.abspath(model_dir)
    config = config_from_hf(read_config(model_dir), source=os.path.join(model_dir, CONFIG_FILE))
    sd = load_state_dict(model_dir)
    return config, convert_state_dict(sd, config, source=model_dir, dtype=dtype)
