"""Synthetic long videos for online action detection: action segments of known classes separated by
background, one caption per segment, per-frame features at 4 fps.

Each class (and the background) has a fixed random prototype in feature space; a frame's feature is
sqrt(dim) x the prototype of its class plus N(0, noise^2) per coordinate, so a model must learn which feature directions go with
which caption words. Everything is a pure function of (seed, split, index).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from data_pipelines.temporal.video import BACKGROUND, FPS, OADVideo, Segment

CLASSES = ("jumping", "running", "swimming", "cooking", "dancing", "climbing", "throwing", "riding")
# Caption templates of the "captions" style (InternVid-like free text); class-tag style uses the prompt.
CAPTION_TEMPLATES = ("someone is {c} here", "a person {c} in this clip", "people {c} outdoors", "{c} happening now")
_SPLITS = {"train": 0, "test": 1, "val": 2}


def prototypes(num_classes: int, dim: int, seed: int) -> np.ndarray:
    """Unit-norm prototypes [1 + num_classes, dim]; row 0 is the background."""
    rng = np.random.default_rng([seed, 991])
    p = rng.standard_normal((1 + num_classes, dim)).astype(np.float32)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def make_segments(num_frames: int, classes: Sequence[str], rng: np.random.Generator, *, fps: float = FPS,
                  action_frames=(8, 24), gap_frames=(4, 16)) -> list[Segment]:
    """Alternating background gaps and action segments covering ``num_frames`` frames.

    Times are chosen so that OV-OAD's label rule (``video.frame_range``) gives frames [a, b) exactly:
    start = (a + 1) / fps, end = b / fps.
    """
    segs, t = [], int(rng.integers(gap_frames[0], gap_frames[1] + 1))
    while t < num_frames - action_frames[0]:
        n = int(rng.integers(action_frames[0], action_frames[1] + 1))
        b = min(t + n, num_frames)
        c = classes[int(rng.integers(len(classes)))]
        text = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))].format(c=c)
        segs.append(Segment(start=(t + 1) / fps, end=b / fps, label=c, text=text))
        t = b + int(rng.integers(gap_frames[0], gap_frames[1] + 1))
    return segs


def make_video(index: int, *, split: str = "train", classes: Sequence[str] = CLASSES[:4], num_frames: int = 160,
               dim: int = 32, noise: float = 1.0, seed: int = 0, action_frames=(8, 24),
               gap_frames=(4, 16)) -> OADVideo:
    """One synthetic video: features [num_frames, dim] float32 and its segments."""
    from data_pipelines.temporal.video import frame_labels
    rng = np.random.default_rng([seed, _SPLITS.get(split, 3), index])
    segs = make_segments(num_frames, classes, rng, action_frames=action_frames, gap_frames=gap_frames)
    video = OADVideo(name=f"synthetic_{split}_{index:04d}", features=np.zeros((num_frames, dim), np.float32),
                     segments=segs, duration=num_frames / FPS)
    labels, _ = frame_labels(video, (BACKGROUND, *classes))
    cls = labels.argmax(1)  # one class per frame (segments do not overlap)
    protos = prototypes(len(classes), dim, seed)
    feats = protos[cls] * np.sqrt(dim) + noise * rng.standard_normal((num_frames, dim))
    video.features[:] = feats.astype(np.float32)
    return video


def make_videos(n: int, *, split: str = "train", **kw) -> list[OADVideo]:
    return [make_video(i, split=split, **kw) for i in range(n)]
