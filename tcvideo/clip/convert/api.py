"""Python API of the converters: foreign checkpoint -> (CLIPConfig, params) [-> tcvideo model dir].

    from tcvideo.clip.convert import api
    config, params = api.convert_openai("ViT-B-16.pt", out_dir="models/vit_b16")

Loading any CLIP checkpoint (these formats or the model dir written) is ``tcvideo.clip.loader.load_clip``.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import numpy as np

from tcvideo.clip.convert import hf, openai
from tcvideo.core import model_dir as store
from tcvideo.clip import model as clip_lib

DTYPES = ("float32", "bfloat16", "float16")


def numpy_dtype(name: str) -> Any:
    """'float32' | 'bfloat16' | 'float16' -> a dtype numpy arrays can be cast to."""
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {name!r}")
    import jax.numpy as jnp  # jnp.bfloat16 is ml_dtypes' numpy bfloat16

    return np.dtype(getattr(jnp, name))


def param_count(params: Any) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def describe(config: clip_lib.CLIPConfig) -> str:
    """'ViT-B/16' when the config is a preset, else the sizes."""
    for name, preset in clip_lib.PRESETS.items():
        if preset == config:
            return name
    c = config
    return (f"ViT (width {c.vision_width}, {c.vision_layers} layers, {c.vision_heads} heads, patch {c.patch_size}, "
            f"{c.image_resolution}px; text width {c.text_width}, {c.text_layers} layers; embed {c.embed_dim})")


def _save(out_dir: Optional[str], config: clip_lib.CLIPConfig, params: dict, source: str, fmt: str,
          dtype: str, overwrite: bool) -> None:
    if out_dir is None:
        return
    meta = {"model": "clip", "config": config.to_dict(), "source": os.path.abspath(source), "format": fmt,
            "dtype": dtype}
    store.save_model(out_dir, params, meta, overwrite=overwrite)


def convert_openai(path: str, out_dir: Optional[str] = None, *, dtype: str = "float32",
                   overwrite: bool = False) -> tuple[clip_lib.CLIPConfig, dict]:
    """OpenAI CLIP ``.pt`` (TorchScript release archive or plain state dict) -> (config, params);
    written as a tcvideo model dir when ``out_dir`` is given."""
    config, params = openai.convert_file(path, dtype=numpy_dtype(dtype))
    _save(out_dir, config, params, path, "openai", dtype, overwrite)
    return config, params


def convert_hf(model_dir: str, out_dir: Optional[str] = None, *, dtype: str = "float32",
               overwrite: bool = False) -> tuple[clip_lib.CLIPConfig, dict]:
    """Hugging Face CLIP directory (config.json + model.safetensors / pytorch_model.bin) -> (config, params);
    written as a tcvideo model dir when ``out_dir`` is given."""
    config, params = hf.convert_dir(model_dir, dtype=numpy_dtype(dtype))
    _save(out_dir, config, params, model_dir, "hf", dtype, overwrite)
    return config, params


def convert_tc_clip(checkpoint: str, clip_checkpoint: str, out_dir: Optional[str] = None, *,
                    dtype: str = "float32", overwrite: bool = False, **overrides):
    """Official TC-CLIP ``.pth`` + the OpenAI CLIP ``.pt`` it was trained from -> (TCCLIPConfig, params).

    ``overrides`` are TCCLIPConfig fields (num_frames, context_tokens, seed_ratio, tome_r, prompt_levels,
    prompt_context_length, ...), winning over the checkpoint's saved config; ``report=dict`` receives
    ``'saved_config'`` (the settings read from it). Written as a model dir when ``out_dir``.
    """
    from tcvideo.tc_clip import convert as tc_conv

    report = overrides.pop("report", None)
    report = {} if report is None else report
    config, params = tc_conv.convert(checkpoint, clip_checkpoint, dtype=numpy_dtype(dtype), report=report,
                                     **overrides)
    if out_dir is not None:
        meta = {"model": "tc_clip", "config": config.to_dict(), "source": os.path.abspath(checkpoint),
                "clip_source": os.path.abspath(clip_checkpoint), "format": "official_tc_clip", "dtype": dtype,
                "saved_config": report["saved_config"]}
        store.save_model(out_dir, params, meta, overwrite=overwrite)
    return config, params
