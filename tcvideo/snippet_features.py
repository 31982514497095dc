"""Per-snippet CLIP features of untrimmed videos, in the layout FS-CAL reads
(``data_pipelines/fs_cal/sources.py``): one ``<video_id>.npy`` float32 [T, E] per video.

A snippet is ``frames_per_snippet`` consecutive decoded frames (the last one may be shorter); its
feature is CLIP's image embedding (``encode_image``, before normalisation) of the snippet's centre
frame, resized on the short side to the model's resolution, centre-cropped and CLIP-normalised.
So T = ceil(num_frames / frames_per_snippet), and snippets per second = fps / frames_per_snippet.

    python -m tcvideo.snippet_features --clip=ViT-B-16.pt --out=/data/feats --frames_per_snippet=16 \
        /data/videos/*.mp4
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

CLIP_MEAN = np.array([122.7709383, 116.7460125, 104.09373615], np.float32)  # OpenAI CLIP x 255
CLIP_STD = np.array([68.5005327, 66.6321579, 70.3231630], np.float32)


def snippet_centres(num_frames: int, frames_per_snippet: int) -> np.ndarray:
    """Index of the centre frame of each snippet [T = ceil(F / k)]."""
    t = math.ceil(num_frames / frames_per_snippet)
    starts = np.arange(t) * frames_per_snippet
    ends = np.minimum(starts + frames_per_snippet, num_frames)
    return (starts + ends - 1) // 2


def preprocess(frames: np.ndarray, resolution: int) -> jax.Array:
    """uint8 [N, H, W, 3] -> float32 [N, r, r, 3]: short side to r (bilinear), centre crop, normalise."""
    n, h, w, _ = frames.shape
    scale = resolution / min(h, w)
    nh, nw = max(resolution, round(h * scale)), max(resolution, round(w * scale))
    x = jax.image.resize(jnp.asarray(frames, jnp.float32), (n, nh, nw, 3), "bilinear")
    oy, ox = (nh - resolution) // 2, (nw - resolution) // 2
    x = x[:, oy:oy + resolution, ox:ox + resolution]
    return (x - CLIP_MEAN) / CLIP_STD


def make_encoder(clip_config, params) -> Callable[[jax.Array], jax.Array]:
    """Jitted images [N, r, r, 3] -> CLIP image embeddings [N, E]."""
    from tcvideo.models.clip import CLIP
    model = CLIP(clip_config)
    return jax.jit(lambda x: model.apply({"params": params}, x, method=CLIP.encode_image))


def snippet_features(frames: np.ndarray, encode: Callable, *, resolution: int, frames_per_snippet: int,
                     batch_size: int = 64) -> np.ndarray:
    """Decoded frames uint8 [F, H, W, 3] -> float32 [ceil(F / k), E]."""
    idx = snippet_centres(len(frames), frames_per_snippet)
    out = []
    for i in range(0, len(idx), batch_size):
        chunk = frames[idx[i:i + batch_size]]
        pad = batch_size - len(chunk) if len(idx) > batch_size else 0  # one compiled shape for long videos
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        emb = np.asarray(encode(preprocess(chunk, resolution)), np.float32)
        out.append(emb[: len(emb) - pad])
    return np.concatenate(out)


def video_id(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tcvideo.snippet_features", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", required=True, help="OpenAI CLIP .pt or tcvideo CLIP model directory")
    ap.add_argument("--out", required=True, help="output folder of <video_id>.npy files")
    ap.add_argument("--frames_per_snippet", type=int, default=16)
    ap.add_argument("--fps", type=float, default=None, help="cap the decoding frame rate")
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("videos", nargs="+")
    a = ap.parse_args(argv)
    from data_pipelines.video_io import VideoDecodeError, decode_video
    from tcvideo.tasks.classification import load_clip_params
    cfg, params = load_clip_params(a.clip)
    encode = make_encoder(cfg, params)
    os.makedirs(a.out, exist_ok=True)
    failed = 0
    for path in a.videos:
        dst = os.path.join(a.out, video_id(path) + ".npy")
        if os.path.exists(dst) and not a.overwrite:
            continue
        try:
            v = decode_video(path, short_side=None, fps_cap=a.fps)
        except VideoDecodeError as e:
            print(f"skipped {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        feats = snippet_features(v.frames, encode, resolution=cfg.image_resolution,
                                 frames_per_snippet=a.frames_per_snippet, batch_size=a.batch_size)
        np.save(dst, feats)
        print(f"{dst}: {feats.shape[0]} snippets at {v.fps / a.frames_per_snippet:.3f} per second")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
