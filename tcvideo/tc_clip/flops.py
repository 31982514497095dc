"""GFLOPs per clip from XLA's cost analysis of the compiled forward pass."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from tcvideo.tc_clip import model as tcm


def compiled_flops(fn, *args) -> float:
    """FLOPs XLA counts for ``jax.jit(fn)(*args)`` (args may be ShapeDtypeStructs)."""
    # XLA:GPU's cost analysis misses cuDNN/custom-call work, so count on the CPU backend everywhere.
    with jax.default_device(jax.devices("cpu")[0]):
        cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax returns one dict per device program
        cost = cost[0]
    return float(cost.get("flops", 0.0))


def vision_gflops_per_clip(config: tcm.TCCLIPConfig, batch: int = 1, dtype: Any = jnp.float32) -> float:
    """GFLOPs of the video encoder for one clip of ``config.num_frames`` frames (the paper's measure)."""
    c = config.clip
    params = tcm.param_shapes(config)
    video = jax.ShapeDtypeStruct((batch, config.num_frames, c.image_resolution, c.image_resolution, 3), dtype)
    model = tcm.TCCLIP(config)
    fn = lambda p, v: model.apply({"params": p}, v, method=model.encode_video)["video_embedding"]
    return compiled_flops(fn, params, video) / batch / 1e9
