"""Segment-based (TSN) frame sampling, as numpy and as TF graph functions.

For a video of n frames and T sampled frames (segments of length n / T):
  train: idx_i = i * (n // T) + randint(n // T)         (random frame within each segment)
  test:  idx_i = int(i * n / T + n / (2T))              (segment centres)
Indices past the end wrap (mod n). When n < T the train rule has empty segments; as in
MMAction2's SampleFrames we then take round(i * n / T).

Multi-clip test (C clips), `rule="official"` (TC-CLIP / ViFi-CLIP's `SampleFrames(multiview=C)`,
which leaves test mode): every one of the C clips is drawn with the random train rule (seeded
here, so still reproducible); C = 1 is the test rule (segment centres). `rule="even"`: clip c takes
idx_i = int(i * n / T + (c + 0.5) * n / (T * C)), C evenly spaced positions inside every segment.

The randomness is an input (`u`, uniforms in [0, 1)) so that the functions are pure and
identical in numpy and TF.
"""
from __future__ import annotations

import numpy as np


def train_indices(n: int, num_frames: int, u: np.ndarray) -> np.ndarray:
    """int32 [T] train indices; u: float [T] uniforms in [0, 1) (one per segment)."""
    n, t = int(n), int(num_frames)
    if n <= 0:
        raise ValueError("video has no frames")
    seg = n // t
    i = np.arange(t)
    if seg > 0:
        # floor(u * seg) is randint(seg) for u ~ U[0, 1).
        idx = i * seg + np.minimum(np.floor(np.asarray(u, np.float64) * seg).astype(np.int64), seg - 1)
    else:
        idx = np.round(i * n / t).astype(np.int64)
    return (idx % n).astype(np.int32)


def test_indices(n: int, num_frames: int, clip: int = 0, num_clips: int = 1) -> np.ndarray:
    """int32 [T] deterministic indices of clip `clip` of `num_clips` (segment centres for 1)."""
    n, t = int(n), int(num_frames)
    if n <= 0:
        raise ValueError("video has no frames")
    i = np.arange(t, dtype=np.float64)
    idx = (i * n / t + (clip + 0.5) * n / (t * num_clips)).astype(np.int64)  # int() truncation
    return (idx % n).astype(np.int32)


def multi_clip_indices(n: int, num_frames: int, num_clips: int, rule: str = "even",
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """int32 [C, T]. rule="even": evenly spaced (deterministic); "official": one clip at the segment
    centres, or C > 1 clips all drawn with the train rule from `rng` (as the official code)."""
    if rule == "even":
        return np.stack([test_indices(n, num_frames, c, num_clips) for c in range(num_clips)])
    if rule == "official":
        if rng is None:
            raise ValueError("rule='official' needs an rng")
        if num_clips == 1:
            return test_indices(n, num_frames)[None]
        return np.stack([train_indices(n, num_frames, rng.random(num_frames)) for _ in range(num_clips)])
    raise ValueError(f"unknown multi-clip rule {rule!r}")


# ----------------------------------------------------------------------------- TF versions

def train_indices_tf(n, num_frames: int, u):
    """TF-graph twin of `train_indices`: n scalar int tensor, u float [T]."""
    import tensorflow as tf

    n = tf.cast(n, tf.int64)
    t = tf.constant(num_frames, tf.int64)
    seg = n // t
    i = tf.range(t, dtype=tf.int64)
    u = tf.cast(u, tf.float64)
    rand = tf.minimum(tf.cast(tf.floor(u * tf.cast(seg, tf.float64)), tf.int64), tf.maximum(seg - 1, 0))
    short = tf.cast(tf.round(tf.cast(i, tf.float64) * tf.cast(n, tf.float64) / tf.cast(t, tf.float64)), tf.int64)
    idx = tf.where(seg > 0, i * seg + rand, short)
    return tf.cast(tf.math.floormod(idx, n), tf.int32)


def test_indices_tf(n, num_frames: int, clip: int = 0, num_clips: int = 1):
    """TF-graph twin of `test_indices`."""
    import tensorflow as tf

    nf = tf.cast(n, tf.float64)
    i = tf.range(num_frames, dtype=tf.float64)
    idx = tf.cast(i * nf / num_frames + (clip + 0.5) * nf / (num_frames * num_clips), tf.int64)
    return tf.cast(tf.math.floormod(idx, tf.cast(n, tf.int64)), tf.int32)
