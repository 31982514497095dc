"""The one CLIP loader: any CLIP checkpoint the project reads -> (CLIPConfig, params).

    from tcvideo.clip.loader import load_clip
    config, params = load_clip("ViT-B-16.pt")            # OpenAI release (TorchScript) or torch.save'd state dict
    config, params = load_clip("clip-vit-base-patch16/")  # Hugging Face CLIPModel.save_pretrained directory
    config, params = load_clip("models/vit_b16")         # tcvideo CLIP model dir (python -m tcvideo.convert)
    model = clip_lib.CLIP(config)                        # then model.apply({"params": params}, ...)

Foreign formats are converted in memory (``tcvideo.clip.convert``); a tcvideo model dir is read as stored.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.clip import model as clip_lib
from tcvideo.clip.convert.common import ConversionError

EXPECTED = ("an OpenAI CLIP .pt file, a Hugging Face CLIP directory (config.json + model.safetensors / "
            "pytorch_model.bin) or a tcvideo CLIP model directory (model.json, written by python -m tcvideo.convert)")


def checkpoint_kind(path: str) -> str:
    """'openai' | 'hf' | 'tcvideo': what ``path`` holds, judged by its files (FileNotFoundError naming the
    path and what was expected when it is none of them)."""
    from tcvideo.clip.convert import hf
    from tcvideo.core import model_dir as store
    if not os.path.exists(path):
        raise FileNotFoundError(f"CLIP checkpoint not found: {path} (expected {EXPECTED})")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, store.MODEL_JSON)):
            return "tcvideo"
        if os.path.exists(os.path.join(path, hf.CONFIG_FILE)):
            return "hf"
        raise FileNotFoundError(f"{path} is a directory with neither {store.MODEL_JSON} nor {hf.CONFIG_FILE}: "
                                f"not a tcvideo model directory nor a Hugging Face one (expected {EXPECTED})")
    if path.endswith((".json", ".safetensors")):
        # One file of a directory format: the directory is what can be loaded.
        raise ConversionError(f"{path} is one file of a CLIP directory; pass its directory "
                              f"{os.path.dirname(path) or '.'} (expected {EXPECTED})")
    return "openai"


def load_clip(path: str, dtype: Any = None) -> tuple[clip_lib.CLIPConfig, dict]:
    """An OpenAI ``.pt``, a Hugging Face CLIP dir or a tcvideo CLIP model dir -> (CLIPConfig, numpy params).

    ``dtype`` of the float params: None keeps a model dir's stored dtype and converts foreign checkpoints to
    float32; a name ('float32' | 'bfloat16' | 'float16') or a numpy dtype casts to it. Errors name ``path``:
    FileNotFoundError when it is none of the three, ConversionError when its contents do not fit.
    """
    from tcvideo.clip.convert import api, hf, openai
    dt = api.numpy_dtype(dtype) if isinstance(dtype, str) else (None if dtype is None else np.dtype(dtype))
    kind = checkpoint_kind(path)
    if kind == "openai":
        return openai.convert_file(path, dtype=dt or np.float32)
    if kind == "hf":
        return hf.convert_dir(path, dtype=dt or np.float32)
    config, params = _load_model_dir(path)
    return config, (params if dt is None else _cast_floats(params, dt))


def _load_model_dir(path: str) -> tuple[clip_lib.CLIPConfig, dict]:
    from tcvideo.core import model_dir as store
    params, meta = store.load_model(path)
    if meta.get("model") != "clip":
        raise ConversionError(f"{path} holds a {meta.get('model')!r} model, not 'clip' (expected {EXPECTED})")
    return clip_lib.CLIPConfig.from_dict(meta["config"]), params


def _cast_floats(params: dict, dtype: Optional[np.dtype]) -> dict:
    cast = lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
    return jax.tree_util.tree_map(lambda x: cast(np.asarray(x)), params)
