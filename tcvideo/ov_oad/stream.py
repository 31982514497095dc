"""Streaming (online) OV-OAD inference and the batched offline scorer built on the same function.

    det = OnlineDetector(model_config, params, ["background", "jumping", ...])
    for feat in stream:                 # one [D] feature (or det.push_frame(image) with a FrameEncoder)
        scores = det.push(feat)         # [C] class scores of this frame, from frames <= now only
    det.set_vocabulary(["background", "diving"])   # text only: the video model is not rebuilt

The detector keeps a ring buffer of the last ``window`` features (zeros before it is full; the offline
scorer pads the same way), so each step runs the model once on one window: the model's learnable
per-position embedding and its attention over the whole window mean nothing of a past step can be
reused. ``score_video`` runs the same jitted function over all windows of a video in batches, and the
task's sharded evaluation (``tcvideo/ov_oad/task.py``) traces the same ``window_scores`` inside its
mesh-sharded step, over windows cut by ``VideoWindows``.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines.temporal.windows import sliding_windows
from tcvideo.ov_oad.model import OVOAD, OVOADConfig

EVAL_PROMPT = "A photo of action {}."


def tokenize_classes(class_names: Sequence[str], context_length: int, prompt: str = EVAL_PROMPT) -> np.ndarray:
    from tcvideo.clip.tokenizer import get_tokenizer
    return get_tokenizer().tokenize([prompt.format(c) for c in class_names], context_length, truncate=True)


def class_vocabulary(model: OVOAD, params, ids: jax.Array) -> dict:
    """Class prompt ids [C, L] -> class embeddings (traceable; see ``OVOAD.vocabulary``)."""
    return model.apply({"params": params}, ids, method=OVOAD.vocabulary)


def window_scores(model: OVOAD, params, windows: jax.Array, vocab) -> jax.Array:
    """windows [B, W, D] float32 -> last-frame class scores [B, C] (traceable).

    The one per-window scoring function: the streaming detector, ``score_video`` and the task's sharded
    evaluation all jit this, so their scores cannot drift apart."""
    return model.apply({"params": params}, windows, vocab, method=OVOAD.scores)


@functools.lru_cache(maxsize=None)
def _fns(config: OVOADConfig, dtype_name: str):
    """Jitted (vocabulary, scores) functions of one model config (shared by streaming and offline)."""
    model = OVOAD(config, dtype=jnp.dtype(dtype_name))
    return jax.jit(functools.partial(class_vocabulary, model)), jax.jit(functools.partial(window_scores, model))


def vocabulary(config: OVOADConfig, params, class_names: Sequence[str], *, context_length: int = 77,
               prompt: str = EVAL_PROMPT, dtype: Any = jnp.float32) -> dict:
    """Class embeddings of a vocabulary (text only)."""
    ids = jnp.asarray(tokenize_classes(class_names, context_length, prompt))
    return _fns(config, jnp.dtype(dtype).name)[0](params, ids)


def score_windows(config: OVOADConfig, params, windows, vocab, dtype: Any = jnp.float32) -> np.ndarray:
    """windows [B, W, D] -> last-frame class scores [B, C]."""
    return np.asarray(_fns(config, jnp.dtype(dtype).name)[1](params, jnp.asarray(windows, jnp.float32), vocab))


def score_video(config: OVOADConfig, params, features: np.ndarray, vocab, *, batch_size: int = 64,
                dtype: Any = jnp.float32) -> np.ndarray:
    """Offline evaluation: features [T, D] -> scores [T, C], frame t scored from frames <= t only.

    Every batch has ``batch_size`` windows (the last one padded) so one compiled function serves all videos.
    """
    wins = sliding_windows(np.asarray(features, np.float32), config.window)
    out = []
    for i in range(0, len(wins), batch_size):
        chunk = wins[i:i + batch_size]
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], chunk.dtype)])
        out.append(score_windows(config, params, chunk, vocab, dtype)[:n])
    return np.concatenate(out) if out else np.zeros((0, len(vocab["proj"])), np.float32)


class VideoWindows:
    """The sliding windows of several videos, frame after frame over all of them, cut on demand.

    Row i is ``sliding_windows``' row of frame i (frames t-W+1..t of its own video, zeros before its first
    frame). Rows are gathered only when asked for: all T windows at once (T x W x D floats) would not fit
    for a full benchmark, and each process of a sharded evaluation builds only its own rows."""

    def __init__(self, features: Sequence[np.ndarray], window: int, feature_dim: int):
        self.window, self.feature_dim = window, feature_dim
        lead = np.zeros((window - 1, feature_dim), np.float32)
        padded = [np.concatenate([lead, np.asarray(f, np.float32).reshape(-1, feature_dim)]) for f in features]
        offsets = np.cumsum([0] + [len(p) for p in padded[:-1]])
        # starts[i]: row of `flat` where frame i's window begins (its video's offset + its frame index).
        self.starts = np.concatenate([o + np.arange(len(p) - window + 1) for o, p in zip(offsets, padded)]
                                     ) if padded else np.zeros((0,), np.int64)
        self.flat = np.concatenate(padded) if padded else lead

    def __len__(self) -> int:
        return len(self.starts)

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """positions [n] (frame indices; -1 = padding) -> windows [n, W, D] float32, zeros for padding."""
        positions = np.asarray(positions)
        valid = positions >= 0
        if not len(self.starts):
            return np.zeros((len(positions), self.window, self.feature_dim), np.float32)
        idx = self.starts[np.where(valid, positions, 0)][:, None] + np.arange(self.window)[None, :]
        return np.where(valid[:, None, None], self.flat[idx], np.float32(0.0))


class OnlineDetector:
    """One frame in, that frame's class scores out. See the module docstring."""

    def __init__(self, config: OVOADConfig, params: Any, class_names: Sequence[str], *, context_length: int = 77,
                 prompt: str = EVAL_PROMPT, frame_encoder: Optional[Any] = None, dtype: Any = jnp.float32):
        # Params go to the device once: host (numpy) params would be copied over on every push.
        self.config, self.dtype = config, dtype
        self.params = jax.tree_util.tree_map(jnp.asarray, params)
        self.context_length, self.prompt = context_length, prompt
        self.frame_encoder = frame_encoder
        self.buffer = np.zeros((config.window, config.feature_dim), np.float32)  # ring buffer
        self.pos = 0  # next slot to write
        self.count = 0  # frames pushed since reset
        self.set_vocabulary(class_names)

    def set_vocabulary(self, class_names: Sequence[str]) -> None:
        """Swap the classes (text prompts) without touching the video side or the buffer."""
        self.class_names = list(class_names)
        self.vocab = vocabulary(self.config, self.params, self.class_names, context_length=self.context_length,
                                prompt=self.prompt, dtype=self.dtype)

    def reset(self) -> None:
        self.buffer[:] = 0.0
        self.pos = self.count = 0

    def window(self) -> np.ndarray:
        """The buffered frames in time order [W, D] (oldest first; zeros before the first frame)."""
        return np.roll(self.buffer, -self.pos, axis=0)

    def push(self, feature) -> np.ndarray:
        """feature [D] -> scores [C] of this frame."""
        f = np.asarray(feature, np.float32).reshape(-1)
        if f.shape[0] != self.config.feature_dim:
            raise ValueError(f"feature of size {f.shape[0]}; the model expects {self.config.feature_dim}")
        self.buffer[self.pos] = f
        self.pos = (self.pos + 1) % self.config.window
        self.count += 1
        return score_windows(self.config, self.params, self.window()[None], self.vocab, self.dtype)[0]

    def push_frame(self, image) -> np.ndarray:
        """A raw frame [H, W, 3] (0..255) -> scores [C], through the CLIP ``frame_encoder``."""
        if self.frame_encoder is None:
            raise ValueError("push_frame needs a frame_encoder (tcvideo.clip.frame_encoder.FrameEncoder)")
        return self.push(self.frame_encoder(np.asarray(image)[None])[0])
