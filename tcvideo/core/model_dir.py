"""Saving and loading converted models: params with orbax, the model description as JSON beside them.

Layout of a model directory::

    DIR/model.json   {"model": "clip" | "tc_clip" | ..., "config": {...}, "source": "...", ...}
    DIR/params/      orbax PyTree checkpoint of the parameters
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

MODEL_JSON = "model.json"
PARAMS_DIR = "params"


def save_model(directory: str, params: Mapping[str, Any], meta: Mapping[str, Any], *,
               overwrite: bool = False) -> str:
    """Write params (orbax) and ``meta`` (JSON: model kind, config, provenance) to ``directory``."""
    directory = os.path.abspath(directory)
    if os.path.exists(os.path.join(directory, MODEL_JSON)) and not overwrite:
        raise FileExistsError(f"{directory} already holds a model (pass overwrite=True / --overwrite)")
    if "model" not in meta or "config" not in meta:
        raise ValueError("meta needs 'model' and 'config' entries")
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, PARAMS_DIR)
    params = jax.tree_util.tree_map(np.asarray, dict(params))
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(target, params, force=True)
    # model.json last: its presence marks a complete directory.
    with open(os.path.join(directory, MODEL_JSON), "w") as f:
        json.dump(dict(meta), f, indent=2, sort_keys=True)
    return directory


def load_meta(directory: str) -> dict:
    path = os.path.join(directory, MODEL_JSON)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory} is not a tcvideo model directory (no {MODEL_JSON}); "
                                "create one with `python -m tcvideo.convert ...`")
    with open(path) as f:
        return json.load(f)


def load_model(directory: str) -> tuple[dict, dict]:
    """-> (params as numpy arrays, meta)."""
    meta = load_meta(directory)
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(os.path.abspath(os.path.join(directory, PARAMS_DIR)))
    return jax.tree_util.tree_map(np.asarray, params), meta
