"""Training windows with captions and sliding evaluation windows (OV-OAD's data recipe).

Training: every window of ``window`` consecutive frames (stride 1, all-background windows kept, the last
``exclude_last`` frames of each video never used). Captions per window:

* ``class_tags`` (ActivityNet): caption 0 = prompt of the most frequent class in the window, ``num_extra``
  more drawn with replacement from the classes present; a window without any class gets the background
  prompt for all of them.
* ``captions`` (InternVid-style): caption 0 = text of the segment covering most frames of the window,
  extras drawn with replacement from the segments overlapping the window; background as above.

Also per window: the caption of its last frame (L_current) and the caption mask [W] (1 where a frame
lies in a captioned segment; L_mask). The stream is a pure function of (seed, step).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from data_pipelines.temporal.video import OADVideo, frame_range

CAPTION_MODES = ("class_tags", "captions")
DEFAULT_PROMPT = "a video of a person {}"


class WindowSampler:
    """All training windows of ``videos`` and their captions as token ids.

    ``tokenize(list[str]) -> int32 [N, L]`` is called once, on the set of distinct captions.
    """

    def __init__(self, videos: Sequence[OADVideo], *, window: int, tokenize, mode: str = "class_tags",
                 num_extra: int = 2, exclude_last: int = 8, prompt: str = DEFAULT_PROMPT,
                 background: str = "background"):
        if mode not in CAPTION_MODES:
            raise ValueError(f"caption mode {mode!r} not in {CAPTION_MODES}")
        self.videos, self.window, self.mode, self.num_extra = list(videos), window, mode, num_extra
        texts: dict[str, int] = {}

        def tid(text: str) -> int:
            return texts.setdefault(text, len(texts))

        self.bg_text = tid(prompt.format(background))
        # Per video: segment id of every frame (-1: none) and the text id of every segment.
        self.frame_seg, self.seg_text = [], []
        for v in self.videos:
            seg_of = np.full((v.num_frames,), -1, np.int64)
            ids = []
            for s in v.segments:
                if s.ambiguous or (s.label is None and s.text is None):
                    continue
                if mode == "class_tags":
                    if s.label is None:
                        continue
                    t = tid(prompt.format(s.label))
                else:
                    t = tid(s.text if s.text is not None else prompt.format(s.label))
                r = frame_range(s.start, s.end, v.num_frames, v.fps)
                seg_of[r.start:r.stop] = len(ids)
                ids.append(t)
            self.frame_seg.append(seg_of)
            self.seg_text.append(np.asarray(ids, np.int64))
        self.texts = list(texts)
        self.token_ids = np.asarray(tokenize(self.texts), np.int32)  # [N_text, L]
        starts = [(vi, s) for vi, v in enumerate(self.videos)
                  for s in range(0, v.num_frames - window - exclude_last + 1)]
        if not starts:
            raise ValueError(f"no training window: every video is shorter than window + exclude_last "
                             f"= {window + exclude_last} frames")
        self.starts = np.asarray(starts, np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def window_texts(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray]:
        """-> (caption text ids [1 + num_extra], last-frame text id, caption mask [W] float32)."""
        vi, s = self.starts[index]
        segs = self.frame_seg[vi][s:s + self.window]
        texts = self.seg_text[vi]
        mask = (segs >= 0).astype(np.float32)
        if not mask.any():
            return np.full((1 + self.num_extra,), self.bg_text), self.bg_text, mask
        present = segs[segs >= 0]
        if self.mode == "class_tags":  # count frames per caption text (= per class)
            keys, counts = np.unique(texts[present], return_counts=True)
        else:  # per segment
            keys, counts = np.unique(present, return_counts=True)
        main = keys[np.argmax(counts)]
        extra = rng.choice(keys, size=self.num_extra, replace=True)
        cap = np.concatenate([[main], extra])
        if self.mode == "captions":
            cap = texts[cap]
        last = texts[segs[-1]] if segs[-1] >= 0 else self.bg_text
        return cap.astype(np.int64), int(last), mask

    def batch(self, indices: Sequence[int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        feats, caps, cur, masks = [], [], [], []
        for i in indices:
            vi, s = self.starts[i]
            feats.append(np.asarray(self.videos[vi].features[s:s + self.window], np.float32))
            c, l, m = self.window_texts(int(i), rng)
            caps.append(c)
            cur.append(l)
            masks.append(m)
        return {"features": np.stack(feats), "caption_ids": self.token_ids[np.stack(caps)],
                "current_ids": self.token_ids[np.asarray(cur)], "caption_mask": np.stack(masks)}

    def iterator(self, *, global_batch_size: int, seed: int, start_step: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """Endless batches; step k holds global rows k*B .. k*B+B-1 of a per-epoch permutation."""
        n, b = len(self), global_batch_size
        local = b // process_count
        perms: dict[int, np.ndarray] = {}
        step = start_step
        while True:
            rows = np.arange(step * b + process_index * local, step * b + (process_index + 1) * local)
            idx = []
            for g in rows:
                epoch = int(g // n)
                if epoch not in perms:
                    perms.clear() if len(perms) > 2 else None
                    perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
                idx.append(int(perms[epoch][g % n]))
            yield self.batch(idx, np.random.default_rng([seed, 7, step, process_index]))
            step += 1


def sliding_windows(features: np.ndarray, window: int) -> np.ndarray:
    """features [T, D] -> [T, window, D]: row t = frames t-window+1 .. t, zero-padded on the left
    (what the streaming ring buffer holds before it is full)."""
    t, d = features.shape
    padded = np.concatenate([np.zeros((window - 1, d), features.dtype), features], axis=0)
    idx = np.arange(t)[:, None] + np.arange(window)[None, :]
    return padded[idx]
