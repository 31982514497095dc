"""Deterministic synthetic videos of moving / changing shapes with text class names.

Temporal classes come in time-reversed pairs ("moving left" / "moving right", "growing" /
"shrinking", "appearing" / "disappearing"): a model that ignores frame order cannot tell
a pair apart, which is what makes the set useful to test temporal modelling. Appearance
classes ("red circle", ...) are static up to a small jitter, so a single frame suffices.

Everything is a pure function of (seed, split, class, index): tests, demos and notebooks
get the same pixels on every machine.
"""
from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np

TEMPORAL_CLASSES = ("moving left", "moving right", "moving up", "moving down",
                    "growing", "shrinking", "appearing", "disappearing")
APPEARANCE_CLASSES = ("red circle", "blue square", "green triangle", "yellow circle",
                      "red square", "blue triangle")
# A shape that keeps one colour, or switches to another colour halfway through the clip. Colour, shape and
# place are random per video, so every single frame has the same distribution in both classes: only
# comparing frames tells them apart (the XOR argument in configs/demo.py).
CONSISTENCY_CLASSES = ("steady colour", "colour change")
ALL_CLASSES = TEMPORAL_CLASSES + APPEARANCE_CLASSES  # the default set (num_classes counts into it)
KNOWN_CLASSES = ALL_CLASSES + CONSISTENCY_CLASSES  # every name an explicit class list may use

COLORS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 235),
          "yellow": (235, 220, 40), "white": (235, 235, 235), "magenta": (220, 60, 220)}
SHAPES = ("circle", "square", "triangle")
_SPLIT_CODE = {"train": 0, "test": 1, "val": 2, "validation": 2}


def class_list(num_classes: int | None = None, classes: Sequence[str] | None = None) -> list[str]:
    """The class names used: an explicit list, or the first `num_classes` of ALL_CLASSES."""
    if classes:
        unknown = [c for c in classes if c not in KNOWN_CLASSES]
        if unknown:
            raise ValueError(f"unknown synthetic classes {unknown}; known: {KNOWN_CLASSES}")
        return list(classes)
    n = len(ALL_CLASSES) if not num_classes else num_classes
    if not 1 <= n <= len(ALL_CLASSES):
        raise ValueError(f"num_classes must be in 1..{len(ALL_CLASSES)}, got {n}")
    return list(ALL_CLASSES[:n])


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy, cx, r) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy * dy + dx * dx <= r * r
    if shape == "square":
        return (np.abs(dy) <= r) & (np.abs(dx) <= r)
    if shape == "triangle":  # apex up
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    raise ValueError(shape)


def render_video(class_name: str, rng: np.random.Generator, num_frames: int = 16,
                 height: int = 64, width: int = 64) -> np.ndarray:
    """One clip of `class_name` as uint8 [T, H, W, 3]."""
    t = np.linspace(0.0, 1.0, num_frames, dtype=np.float32)[:, None, None]  # [T, 1, 1]
    yy = np.arange(height, dtype=np.float32)[None, :, None]
    xx = np.arange(width, dtype=np.float32)[None, None, :]
    s = float(min(height, width))
    words = class_name.split()
    if words[0] in COLORS and words[1] in SHAPES:  # appearance class: static with jitter
        color, shape = np.array(COLORS[words[0]], np.float32), words[1]
    elif class_name in CONSISTENCY_CLASSES:  # [T, 1, 1, 3]: one colour, or a second one from frame T/2 on
        names = list(COLORS)
        first = int(rng.integers(len(names)))
        second = first if class_name == "steady colour" else (first + 1 + int(rng.integers(len(names) - 1))) % len(names)
        half = (np.arange(num_frames) >= num_frames // 2)[:, None, None, None]
        color = np.where(half, np.array(COLORS[names[second]], np.float32), np.array(COLORS[names[first]], np.float32))
        shape = SHAPES[rng.integers(len(SHAPES))]
    else:  # temporal class: appearance is random so only the motion identifies it
        color = np.array(list(COLORS.values())[rng.integers(len(COLORS))], np.float32)
        shape = SHAPES[rng.integers(len(SHAPES))]
    # consistency classes: a larger shape, so that its colour fills whole patches of a small image
    r = s * (rng.uniform(0.22, 0.3) if class_name in CONSISTENCY_CLASSES else rng.uniform(0.12, 0.18))
    cy = height * rng.uniform(0.35, 0.65) + 0 * t
    cx = width * rng.uniform(0.35, 0.65) + 0 * t
    alpha = np.ones_like(t)
    travel = rng.uniform(0.45, 0.6)
    if class_name in ("moving left", "moving right"):
        start, end = (0.5 + travel / 2, 0.5 - travel / 2) if class_name == "moving left" else (0.5 - travel / 2, 0.5 + travel / 2)
        cx = width * (start + (end - start) * t)
    elif class_name in ("moving up", "moving down"):
        start, end = (0.5 + travel / 2, 0.5 - travel / 2) if class_name == "moving up" else (0.5 - travel / 2, 0.5 + travel / 2)
        cy = height * (start + (end - start) * t)
    elif class_name in ("growing", "shrinking"):
        small, big = s * rng.uniform(0.05, 0.08), s * rng.uniform(0.25, 0.32)
        a, b = (small, big) if class_name == "growing" else (big, small)
        r = a + (b - a) * t
    elif class_name in ("appearing", "disappearing"):
        t0, t1 = rng.uniform(0.0, 0.3), rng.uniform(0.6, 1.0)
        ramp = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
        alpha = ramp if class_name == "appearing" else 1.0 - ramp
    else:  # appearance and consistency classes: a little positional jitter so frames differ
        cy = cy + rng.normal(0, 0.01 * height, size=t.shape).astype(np.float32)
        cx = cx + rng.normal(0, 0.01 * width, size=t.shape).astype(np.float32)
    mask = _shape_mask(shape, yy, xx, cy, cx, r).astype(np.float32) * alpha  # [T, H, W]
    bg = rng.uniform(20, 70, size=3).astype(np.float32)
    noise = rng.normal(0, 4.0, size=(num_frames, height, width, 1)).astype(np.float32)
    frames = bg + noise + mask[..., None] * (color - bg)
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _generate(classes: tuple[str, ...], split: str, videos_per_class: int, num_frames: int,
              height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    code = _SPLIT_CODE.get(split)
    if code is None:
        raise ValueError(f"synthetic split must be one of {list(_SPLIT_CODE)}, got {split!r}")
    n = len(classes) * videos_per_class
    videos = np.empty((n, num_frames, height, width, 3), np.uint8)
    labels = np.empty((n,), np.int32)
    # Class-interleaved order (c0 v0, c1 v0, ...) so that any prefix is class balanced.
    for v in range(videos_per_class):
        for c, name in enumerate(classes):
            i = v * len(classes) + c
            rng = np.random.default_rng([seed, code, KNOWN_CLASSES.index(name), v])
            videos[i] = render_video(name, rng, num_frames, height, width)
            labels[i] = c
    videos.setflags(write=False)
    labels.setflags(write=False)
    return videos, labels


def generate(classes: Sequence[str], split: str = "train", videos_per_class: int = 8, num_frames: int = 16,
             height: int = 64, width: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All videos of a split: (uint8 [N, T, H, W, 3], int32 labels [N]); cached, read-only."""
    return _generate(tuple(classes), split, videos_per_class, num_frames, height, width, seed)


def write_mp4_dataset(out_dir: str, classes: Sequence[str] | None = None, *,
                      splits: dict[str, int] | None = None, num_frames: int = 16,
                      height: int = 48, width: int = 64, fps: int = 25, seed: int = 0,
                      annotation_format: str = "mmaction") -> dict[str, str]:
    """Write synthetic videos as mp4 files plus annotation lists and a class-name file.

    Layout: out_dir/videos/<class_slug>/<split>_<k>.mp4, out_dir/<split>.txt (mmaction
    `relative/path label` lines, or `path,label` for annotation_format="csv"),
    out_dir/classnames.csv (`id,name`). splits maps split -> videos per class.
    Returns {'video_dir', 'class_names', '<split>': annotation path, ...}.
    """
    from data_pipelines.video.video_io import write_mp4

    classes = list(classes) if classes else class_list()
    splits = splits or {"train": 4, "test": 2}
    video_dir = os.path.join(out_dir, "videos")
    os.makedirs(video_dir, exist_ok=True)
    result = {"video_dir": video_dir}
    for split, per_class in splits.items():
        videos, labels = generate(classes, split, per_class, num_frames, height, width, seed)
        lines = []
        for i, (video, label) in enumerate(zip(videos, labels)):
            slug = classes[label].replace(" ", "_")
            rel = f"{slug}/{split}_{i:05d}.mp4"
            os.makedirs(os.path.join(video_dir, slug), exist_ok=True)
            write_mp4(os.path.join(video_dir, rel), video, fps=fps)
            lines.append(f"{rel},{label}" if annotation_format == "csv" else f"{rel} {label}")
        ext = "csv" if annotation_format == "csv" else "txt"
        ann = os.path.join(out_dir, f"{split}.{ext}")
        with open(ann, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        result[split] = ann
    names = os.path.join(out_dir, "classnames.csv")
    with open(names, "w", encoding="utf-8") as f:
        f.write("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(classes)))
    result["class_names"] = names
    return result
