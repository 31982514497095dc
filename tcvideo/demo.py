"""Zero-shot ranking demo: a generated video and a few class prompts through a small random CLIP.

Used while no trained weights are at hand: it exercises tokenizer, video encoding and text encoding
end to end and prints the ranked classes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tcvideo.models import clip as clip_lib
from tcvideo.tokenizer import tokenize


def moving_square_video(num_frames: int, size: int, seed: int = 0) -> np.ndarray:
    """A square moving left to right on a dark background. -> [T, H, W, 3] float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    video = np.zeros((num_frames, size, size, 3), np.float32) + rng.uniform(0, 0.1, (1, 1, 1, 3))
    side = max(2, size // 4)
    for t in range(num_frames):
        x = int((size - side) * t / max(1, num_frames - 1))
        video[t, size // 2 - side // 2: size // 2 + side // 2, x:x + side] = (0.9, 0.2, 0.2)
    return video


def run(config: ml_collections.ConfigDict, workdir: str) -> list[tuple[str, float]]:
    cfg = clip_lib.get_config(config.get("clip", "tiny"))
    classes = list(config.get("class_names", ["moving left", "moving right", "growing", "shrinking"]))
    params = clip_lib.init_params(cfg, jax.random.PRNGKey(config.get("seed", 0)))
    model = clip_lib.CLIP(cfg)
    video = moving_square_video(config.get("num_frames", 8), cfg.image_resolution)[None]
    ids = tokenize([f"a video of {c}." for c in classes], cfg.context_length)

    @jax.jit
    def scores(p, v, t):
        frames = model.apply({"params": p}, v, method=model.encode_video)  # [1, T, E]
        vid = clip_lib.l2_normalize(clip_lib.l2_normalize(frames).mean(1))
        txt = clip_lib.l2_normalize(model.apply({"params": p}, t, method=model.encode_text))
        return jax.nn.softmax(jnp.exp(p["logit_scale"]) * vid @ txt.T, axis=-1)[0]

    probs = np.asarray(scores(params, jnp.asarray(video), jnp.asarray(ids)))
    ranked = sorted(zip(classes, probs.tolist()), key=lambda x: -x[1])
    print("Ranked classes (random weights, so the order is arbitrary):")
    for name, p in ranked:
        print(f"  {p:6.3f}  {name}")
    return ranked
