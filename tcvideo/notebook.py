"""Helpers behind the Colab notebooks in ``colab/`` (the notebooks only set options and call these).

Everything here works on CPU with tiny models: building a random TC-CLIP model directory, converting
a user's checkpoint, writing a demo video, reading and plotting the trainer's metrics, showing frames
and scores.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The demo model (configs/demo.py): tiny CLIP (width 64, 2+2 layers, 32 px, patch 8), 8 frames.
DEMO_MODEL = dict(clip="tiny", num_frames=8, context_tokens=8, tome_r=2, prompt_context_length=16)
DEMO_CLASSES = ("moving left", "moving right", "growing", "shrinking")


def load_config(path: str = "configs/demo.py", **overrides):
    """A config file's get_config() (path relative to the repo root if not found as given), with
    dotted-key overrides, e.g. load_config("configs/demo.py", total_steps=100, **{"data.num_frames": 8})."""
    from tcvideo.core.config import load_config_file
    return load_config_file(path, overrides, root=REPO_ROOT)


def random_model_dir(out_dir: str, *, variant: str = "tc_clip", seed: int = 0, **fields) -> str:
    """Write a randomly initialised TC-CLIP model directory (default: the demo model's sizes). -> out_dir."""
    import jax
    from tcvideo.core import model_dir as store
    from tcvideo.tc_clip import model as tcm
    kw = {**DEMO_MODEL, **fields}
    cfg = tcm.variant_config(variant, **kw)
    params = tcm.init_params(cfg, jax.random.PRNGKey(seed))
    meta = {"model": "tc_clip", "config": cfg.to_dict(), "source": f"random init (seed {seed})"}
    store.save_model(out_dir, params, meta, overwrite=True)
    return out_dir


def convert_checkpoint(checkpoint: str, out_dir: str, clip_checkpoint: str = "", **tc_overrides) -> str:
    """An OpenAI CLIP ``.pt`` (alone) or an official TC-CLIP ``.pth`` plus the CLIP ``.pt`` it was trained
    from -> a tcvideo model directory. -> out_dir."""
    from tcvideo.clip.convert import api
    for p in (checkpoint, clip_checkpoint):
        if p and not os.path.exists(p):
            raise FileNotFoundError(f"checkpoint {p!r} does not exist")
    if clip_checkpoint:
        api.convert_tc_clip(checkpoint, clip_checkpoint, out_dir, overwrite=True, **tc_overrides)
    else:
        api.convert_openai(checkpoint, out_dir, overwrite=True)
    return out_dir


def demo_video(path: str, class_name: str = "moving left", *, num_frames: int = 16, height: int = 48,
               width: int = 64, seed: int = 0) -> str:
    """Write a synthetic clip of ``class_name`` (data_pipelines.video.synthetic) as an mp4. -> path."""
    from data_pipelines.video import synthetic
    from data_pipelines.video.video_io import write_mp4
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_mp4(path, synthetic.render_video(class_name, np.random.default_rng(seed), num_frames, height, width))
    return path


# ----------------------------------------------------------------------------- plots

def show_frames(frames: np.ndarray, title: str = "", max_frames: int = 16):
    """uint8 frames [T, H, W, 3] in one row -> matplotlib figure."""
    import matplotlib.pyplot as plt
    frames = frames[:max_frames]
    fig, axes = plt.subplots(1, len(frames), figsize=(1.4 * len(frames), 1.6), squeeze=False)
    for t, ax in enumerate(axes[0]):
        ax.imshow(frames[t])
        ax.set_title(str(t), fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_scores(ranked: Sequence[tuple[str, float]], title: str = ""):
    """(class, probability) pairs, best first -> horizontal bar chart."""
    import matplotlib.pyplot as plt
    names = [c for c, _ in ranked][::-1]
    probs = [p for _, p in ranked][::-1]
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(names) + 0.8))
    ax.barh(names, probs, color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def read_metrics(workdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The trainer's ``train_log.jsonl`` -> {metric: (steps, values)} (e.g. 'train/loss', 'eval/primary');
    the final evaluation (``eval_results.json``) is added as 'final/top1' at the last logged step."""
    path = os.path.join(workdir, "train_log.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: has training run in {workdir}?")
    series: dict[str, list] = {}
    last = 0
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not JSON ({e.msg})") from None
            step = int(rec["step"])
            last = max(last, step)
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)):
                    series.setdefault(k, []).append((step, float(v)))
    final = os.path.join(workdir, "eval_results.json")
    if os.path.exists(final):
        with open(final) as f:
            res = json.load(f).get("fine_tuned", {}).get("results", {})
        if res:
            series["final/top1"] = [(last, float(next(iter(res.values()))["top1"]))]
    return {k: (np.array([s for s, _ in v]), np.array([x for _, x in v])) for k, v in series.items()}


def plot_training_curves(workdir: str):
    """Loss and accuracy (eval top-1 during training and at the end) of a workdir -> figure."""
    import matplotlib.pyplot as plt
    m = read_metrics(workdir)
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3))
    if "train/loss" in m:
        ax_l.plot(*m["train/loss"], marker=".")
    ax_l.set(xlabel="step", ylabel="training loss", title="loss")
    for key, style in (("eval/primary", "o-"), ("final/top1", "s")):
        if key in m:
            ax_a.plot(*m[key], style, label=key)
    ax_a.set(xlabel="step", ylabel="top-1 accuracy (%)", title="held-out accuracy", ylim=(0, 100))
    if ax_a.get_legend_handles_labels()[0]:
        ax_a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def predict_and_plot(model, video_path: str, class_names: Sequence[str], top_k: int = 5):
    """Classify one file and draw its input frames and scores -> (Prediction, frames figure, scores figure)."""
    from tcvideo.classification import predict
    preds, failures = predict.predict_files(model, [video_path], class_names, top_k=top_k)
    if failures:
        raise ValueError(f"cannot read {failures[0][0]}: {failures[0][1]}")
    views = predict.load_video(video_path, model.data, 1, 1)
    frames = predict.denormalize(views[0], model.data.normalization)
    return (preds[0], show_frames(frames, f"model input: {os.path.basename(video_path)}"),
            plot_scores(preds[0].ranked, "class probabilities"))

