"""CLIP frame features for OV-OAD: frames -> 224x224 bicubic (no crop), CLIP mean/std, CLIP image encoder,
CLS token after ln_post WITHOUT the visual projection ([N, vision_width], 768 for ViT-B/16).

Used by ``tcvideo extract-features`` and by the streaming detector when it is given raw frames.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines.video.augment import CLIP_MEAN, CLIP_STD
from tcvideo.clip.model import CLIPConfig, VisionTransformer
from tcvideo.clip.layers import LayerNorm

FEATURE_FPS = 4.0


def frame_times(duration: float, fps: float = FEATURE_FPS) -> np.ndarray:
    """Centres of the 1/fps bins covering [0, duration): (i + 0.5) / fps, i < ceil(duration * fps) (s)."""
    n = int(np.ceil(duration * fps - 1e-9))
    return (np.arange(n) + 0.5) / fps


def preprocess(frames: jax.Array, size: int) -> jax.Array:
    """uint8 / float [N, H, W, 3] (0..255) -> bicubic resize to size x size, CLIP-normalised float32."""
    x = jnp.asarray(frames, jnp.float32)
    if x.shape[1:3] != (size, size):
        x = jax.image.resize(x, (x.shape[0], size, size, 3), method="cubic", antialias=True)
    x = jnp.clip(x, 0.0, 255.0)
    return (x - jnp.asarray(CLIP_MEAN)) / jnp.asarray(CLIP_STD)


class FrameEncoder:
    """CLIP image encoder -> pre-projection CLS features. ``__call__(frames [N, H, W, 3]) -> [N, width]``.

    ``params``: a CLIP parameter tree (with 'visual') or the visual subtree itself.
    """

    def __init__(self, config: CLIPConfig, params: Any, dtype: Any = jnp.float32):
        self.config = config
        self.params = params["visual"] if "visual" in params else params
        self._fn = jax.jit(functools.partial(_encode, config, dtype))

    @property
    def width(self) -> int:
        return self.config.vision_width

    def __call__(self, frames) -> np.ndarray:
        return np.asarray(self._fn(self.params, jnp.asarray(frames)))


def _encode(config: CLIPConfig, dtype, params, frames):
    x = preprocess(frames, config.image_resolution).astype(dtype)
    _, tokens = VisionTransformer(config, dtype=dtype).apply({"params": params}, x)
    cls = LayerNorm(dtype=dtype).apply({"params": params["ln_post"]}, tokens[:, 0])
    return cls.astype(jnp.float32)
