"""Seeing TC-CLIP's context tokens: ``tcvideo visualize`` and its Python API.

At a layer that makes context tokens, every frame contributes its top-s patches by CLS attention
("seed tokens"); bipartite merging then folds the T*s seeds of the video into k context tokens.
This module traces those merges back to the seeds, so each seed patch can be drawn in the colour of
the context token it ended up in (one colour per context token, the same in every frame), next to
the CLS attention map that chose the seeds.

    tcvideo visualize video.mp4 --checkpoint DIR --out viz/ [--layer L]

writes ``viz/frame_XX.png`` (per frame: input | seeds coloured by context token | CLS attention),
``viz/overview.png`` (all frames side by side, plus a legend of the context tokens and their sizes),
``viz/context_tokens.gif`` (the frame panels animated) and ``viz/context_tokens.json``.

Python (e.g. in a notebook)::

    from tcvideo.classification import predict
    from tcvideo.tc_clip import visualize
    model = predict.load_model("workdir")
    m = visualize.context_token_map(model, predict.load_video("v.mp4", model.data)[0])
    display(visualize.render_overview(m))
"""
from __future__ import annotations

import argparse
import colorsys
import dataclasses
import functools
import json
import os
import sys
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tcvideo.classification import predict as predict_lib


@dataclasses.dataclass
class ContextTokenMap:
    """Seeds, merges and CLS attention of one video at one layer (g = patches per side, k context tokens).

    frames: uint8 [T, S, S, 3] the model's input (de-normalised); seed_index: int [T, s] patch index
    (row-major on the g x g grid) of each seed, best first; seed_context: int [T, s] context token each
    seed was merged into; context_sizes: [k] seeds per context token; cls_attention: [T, g, g]
    head-mean CLS attention over the frame's patches at ``layer``.
    """

    frames: np.ndarray
    layer: int
    grid: int
    seed_index: np.ndarray
    seed_context: np.ndarray
    context_sizes: np.ndarray
    cls_attention: np.ndarray

    @property
    def num_context(self) -> int:
        return int(len(self.context_sizes))

    def to_json(self) -> dict:
        return {"layer": self.layer, "grid": self.grid, "num_frames": int(len(self.frames)),
                "seed_index": self.seed_index.tolist(), "seed_context": self.seed_context.tolist(),
                "context_sizes": [float(x) for x in self.context_sizes]}


# ----------------------------------------------------------------------------- merge tracing

def seed_to_context(plans: Sequence[Any], num_seeds: int) -> np.ndarray:
    """Final token index of each of ``num_seeds`` tokens after the bipartite steps ``plans``.

    Each plan (unm, src, dst; one video, no batch axis) maps tokens x [M] to concat(A[unm], B') with
    A = x[0::2], B = x[1::2], A[src[i]] added into B[dst[i]] (``context_summary.apply_plan``).
    -> int [num_seeds] in [0, k).
    """
    pos = np.arange(num_seeds)
    m = num_seeds
    for plan in plans:
        unm, src, dst = (np.asarray(a) for a in (plan.unm, plan.src, plan.dst))
        n_a, n_b = (m + 1) // 2, m // 2
        if len(unm) + len(src) != n_a or (len(dst) and dst.max() >= n_b):
            raise ValueError(f"merge plan does not fit {m} tokens (A {n_a}, B {n_b})")
        a_to = np.empty(n_a, np.int64)
        a_to[unm] = np.arange(len(unm))
        a_to[src] = len(unm) + dst
        step = np.empty(m, np.int64)
        step[0::2] = a_to
        step[1::2] = len(unm) + np.arange(n_b)
        pos = step[pos]
        m = len(unm) + n_b
    return pos


@functools.partial(jax.jit, static_argnums=0)
def _diagnostics(model, params, video):
    """Per-layer diagnostics of TCCLIP.encode_video; the module is static so equal models share the compile."""
    return model.apply({"params": params}, video, return_diagnostics=True, method="encode_video")["layers"]


def context_layers(model: predict_lib.LoadedModel) -> tuple[int, ...]:
    """Vision layers that make context tokens (the ones ``context_token_map`` can show).

    Raises ValueError for a model of another family than TC-CLIP (VicTR, ...): only TC-CLIP makes them.
    """
    from tcvideo.tc_clip.model import TCCLIPConfig
    if model.family != "tc_clip" or not isinstance(model.config, TCCLIPConfig):
        raise ValueError(f"context tokens are TC-CLIP's; this is a {model.family!r} model, which makes none "
                         "(tcvideo predict classifies with it)")
    cfg = model.config
    return cfg.vision.making_layers(cfg.clip.vision_layers) if (cfg.use_tc or cfg.use_vp) else ()


def context_token_map(model: predict_lib.LoadedModel, video: np.ndarray, layer: Optional[int] = None
                      ) -> ContextTokenMap:
    """video: one normalised clip [T, S, S, 3] (``predict.load_video(...)[0]``) -> ContextTokenMap.

    layer: a vision layer that makes context tokens (default: the last one).
    """
    cfg = model.config
    layers = context_layers(model)
    if not layers:
        raise ValueError("this model makes no context tokens (variant without TC and VP)")
    layer = layers[-1] if layer is None else int(layer)
    if layer not in layers:
        raise ValueError(f"--layer {layer}: context tokens are made at layers {list(layers)}")
    method = cfg.context_summary
    if method not in ("bipartite", "none"):
        raise ValueError(f"context_summary={method!r}: seeds can be traced to context tokens only for "
                         "'bipartite' (merge plans) and 'none' (seeds are the context tokens)")
    clf = model.classifier
    diag = _diagnostics(clf.model, clf.params, jnp.asarray(video, clf.dtype)[None])[layer]
    seed_index = np.asarray(diag["seed_index"])[0]  # [T, s]
    t, s = seed_index.shape
    plans = [type(p)(*(np.asarray(a)[0] for a in p)) for p in diag.get("merge_plans", [])]
    assign = seed_to_context(plans, t * s).reshape(t, s)  # seeds are gathered frame-major
    g = cfg.clip.grid_size
    cls = np.asarray(diag["cls_scores"], np.float32)[0].reshape(t, g, g)
    frames = predict_lib.denormalize(np.asarray(video), model.data.normalization)
    return ContextTokenMap(frames, layer, g, seed_index, assign, np.asarray(diag["context_sizes"])[0], cls)


# ----------------------------------------------------------------------------- rendering

def palette(k: int) -> np.ndarray:
    """k distinguishable RGB colours, uint8 [k, 3] (golden-ratio hue steps, alternating brightness)."""
    cols = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85 if i % 2 else 0.65, 1.0 if i % 3 else 0.8)
            for i in range(k)]
    return np.round(np.asarray(cols) * 255).astype(np.uint8).reshape(k, 3)


def _scale_for(size: int, target: int = 192) -> int:
    return max(1, -(-target // size))


def _up(img: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def seed_overlay(m: ContextTokenMap, t: int, scale: int) -> np.ndarray:
    """uint8 [S*scale, S*scale, 3]: the frame dimmed, seed patches filled with their context colour."""
    frame = _up(m.frames[t], scale).astype(np.float32)
    out = 0.35 * frame
    p = m.frames.shape[1] // m.grid * scale  # patch side in output pixels
    colours = palette(m.num_context).astype(np.float32)
    for idx, ctx in zip(m.seed_index[t], m.seed_context[t]):
        y, x = divmod(int(idx), m.grid)
        tile = frame[y * p:(y + 1) * p, x * p:(x + 1) * p]
        out[y * p:(y + 1) * p, x * p:(x + 1) * p] = 0.35 * tile + 0.65 * colours[ctx]
        if p >= 6:  # a 1-px border separates neighbouring seeds of the same colour
            out[y * p, x * p:(x + 1) * p] = out[(y + 1) * p - 1, x * p:(x + 1) * p] = 255
            out[y * p:(y + 1) * p, x * p] = out[y * p:(y + 1) * p, (x + 1) * p - 1] = 255
    return np.clip(out, 0, 255).astype(np.uint8)


def attention_overlay(m: ContextTokenMap, t: int, scale: int, vmax: Optional[float] = None) -> np.ndarray:
    """uint8 [S*scale, S*scale, 3]: the CLS attention map (inferno colour map) over the frame.

    vmax: the value mapped to the top colour (default: this frame's maximum).
    """
    from matplotlib import colormaps
    att = m.cls_attention[t]
    att = att / max(float(vmax if vmax is not None else att.max()), 1e-12)
    heat = colormaps["inferno"](np.clip(att, 0, 1))[..., :3] * 255.0  # [g, g, 3]
    p = m.frames.shape[1] // m.grid * scale
    heat = _up(heat, p)
    frame = _up(m.frames[t], scale).astype(np.float32)
    return np.clip(0.3 * frame + 0.7 * heat, 0, 255).astype(np.uint8)


def _label(img: np.ndarray, text: str, height: int = 14):
    from PIL import Image, ImageDraw
    canvas = Image.new("RGB", (img.shape[1], img.shape[0] + height), (255, 255, 255))
    canvas.paste(Image.fromarray(img), (0, height))
    ImageDraw.Draw(canvas).text((2, 1), text, fill=(0, 0, 0))
    return canvas


def render_frame(m: ContextTokenMap, t: int, scale: Optional[int] = None):
    """PIL image of frame t: input | seeds coloured by context token | CLS attention."""
    scale = scale or _scale_for(m.frames.shape[1])
    parts = [_up(m.frames[t], scale), seed_overlay(m, t, scale), attention_overlay(m, t, scale)]
    gap = np.full((parts[0].shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([parts[0], gap, parts[1], gap, parts[2]], axis=1)
    return _label(row, f"frame {t}  layer {m.layer}: input | seeds -> context tokens | CLS attention")


def legend(m: ContextTokenMap, width: int, swatch: int = 14):
    """PIL image: one swatch per context token with its index and number of merged seeds."""
    from PIL import Image, ImageDraw
    cell = 56
    per_row = max(1, width // cell)
    rows = -(-m.num_context // per_row)
    img = Image.new("RGB", (width, rows * (swatch + 4) + 16), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((2, 1), f"context tokens at layer {m.layer} (index: seeds merged)", fill=(0, 0, 0))
    for i, (c, n) in enumerate(zip(palette(m.num_context), m.context_sizes)):
        y, x = 16 + (i // per_row) * (swatch + 4), (i % per_row) * cell + 2
        d.rectangle([x, y, x + swatch, y + swatch], fill=tuple(int(v) for v in c))
        d.text((x + swatch + 3, y + 1), f"{i}:{int(round(float(n)))}", fill=(0, 0, 0))
    return img


def render_overview(m: ContextTokenMap, scale: Optional[int] = None):
    """PIL image: rows input / seeds / CLS attention (one shared scale), one column per frame, and a legend."""
    from PIL import Image
    scale = scale or _scale_for(m.frames.shape[1], 96)
    vmax = float(m.cls_attention.max())
    gap = np.full((m.frames.shape[1] * scale, 3, 3), 255, np.uint8)
    rows = []
    for fn in (lambda t: _up(m.frames[t], scale), lambda t: seed_overlay(m, t, scale),
               lambda t: attention_overlay(m, t, scale, vmax)):
        cols = []
        for t in range(len(m.frames)):
            cols += [fn(t), gap]
        rows.append(np.concatenate(cols[:-1], axis=1))
    hgap = np.full((3, rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([rows[0], hgap, rows[1], hgap, rows[2]], axis=0)
    top = _label(grid, f"layer {m.layer}: frames | seeds coloured by context token | CLS attention (shared scale)")
    leg = legend(m, top.width)
    out = Image.new("RGB", (top.width, top.height + leg.height), (255, 255, 255))
    out.paste(top, (0, 0))
    out.paste(leg, (0, top.height))
    return out


def save_visualization(m: ContextTokenMap, out_dir: str, gif_ms: int = 400) -> dict:
    """Write frame_XX.png, overview.png, context_tokens.gif and context_tokens.json -> their paths."""
    os.makedirs(out_dir, exist_ok=True)
    frames = [render_frame(m, t) for t in range(len(m.frames))]
    paths = {"frames": []}
    for t, img in enumerate(frames):
        paths["frames"].append(os.path.join(out_dir, f"frame_{t:02d}.png"))
        img.save(paths["frames"][-1])
    paths["overview"] = os.path.join(out_dir, "overview.png")
    render_overview(m).save(paths["overview"])
    paths["gif"] = os.path.join(out_dir, "context_tokens.gif")
    frames[0].save(paths["gif"], save_all=True, append_images=frames[1:], duration=gif_ms, loop=0)
    paths["json"] = os.path.join(out_dir, "context_tokens.json")
    with open(paths["json"], "w") as f:
        json.dump(m.to_json(), f)
    return paths


def visualize_video(model: predict_lib.LoadedModel, video_path: str, out_dir: str, layer: Optional[int] = None
                    ) -> tuple[ContextTokenMap, dict]:
    """Decode ``video_path`` with the eval pipeline (first clip, centre crop), map and save. -> (map, paths)."""
    context_layers(model)  # a model of another family fails here, before any decoding
    views = predict_lib.load_video(video_path, model.data, 1, 1)
    m = context_token_map(model, views[0], layer)
    return m, save_visualization(m, out_dir)


# ----------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tcvideo visualize",
                                description="Draw the seed tokens, their context tokens and the CLS attention.")
    p.add_argument("video", metavar="VIDEO")
    predict_lib.add_model_args(p)
    p.add_argument("--out", required=True, help="output directory for the PNGs and the GIF")
    p.add_argument("--layer", type=int, default=None, help="vision layer (default: the last that makes context)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from data_pipelines.video.video_io import VideoDecodeError
    args = build_parser().parse_args(argv)
    try:
        model = predict_lib.load_model(args.checkpoint, step=args.step, num_frames=args.num_frames)
        m, paths = visualize_video(model, args.video, args.out, args.layer)
    except VideoDecodeError as e:
        print(f"tcvideo visualize: cannot read {args.video}: {e.reason}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as e:
        print(f"tcvideo visualize: {e}", file=sys.stderr)
        return 2
    print(f"layer {m.layer}: {m.seed_index.size} seeds ({m.seed_index.shape[1]} per frame) -> "
          f"{m.num_context} context tokens")
    print(f"overview: {paths['overview']}\ngif: {paths['gif']}\nframes: {os.path.dirname(paths['frames'][0])}"
          f"/frame_*.png ({len(paths['frames'])})")
    return 0
