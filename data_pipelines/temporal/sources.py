"""Per-snippet feature sources for FS-CAL: untrimmed videos as [T, D] feature arrays plus their
action instances in snippet units.

Feature layout on disk (what ``tcvideo extract-features --format=npy --fps=R`` writes: CLIP features
of one frame per snippet, R snippets per second): one file per video in ``feature_dir``,
``<video_id>.npy`` (a float [T, D] array, memory-mapped) or any other file the project's one feature
reader takes (``data_pipelines.temporal.features.read_feature_file``: ``.npz`` with key ``rgb`` or
``features``, else its only array; ``.pkl``); ActivityNet's ``v_<video_id>`` file names are also found.
Snippet t covers [t, t + 1) in snippet units; annotations (``load_annotations``: segments in seconds and
ActivityNet's durations) are converted to these units by ``annotations.to_snippets``.

``SyntheticFeatureSource`` builds feature-level long videos in memory (tests and the demo): each class
is a fixed sequence of prototype vectors (its temporal pattern), an instance is that pattern
stretched over its length plus noise, embedded in a background of noise around a random-walk mean.
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np

from data_pipelines.temporal import annotations as ann_lib
from data_pipelines.temporal.features import LOOKUP_EXTS, find_feature_file, read_feature_file
from data_pipelines.temporal.video import Segment
from data_pipelines.video.annotations import AnnotationError


class FeatureSource:
    """Videos (id -> number of snippets T), action instances (``Segment``s in snippet units of their video's
    feature array, ``video`` and ``label`` set), and ``features(video) -> float32 [T, D]``."""

    num_snippets: dict[str, int]
    instances: list[Segment]
    feature_dim: int

    def features(self, video: str) -> np.ndarray:
        raise NotImplementedError

    def class_names(self) -> list[str]:
        return sorted({i.label for i in self.instances})


# ----------------------------------------------------------------------------- files on disk

def load_annotations(dataset: str, path: str) -> tuple[dict[str, list[Segment]], dict[str, float]]:
    """FS-CAL's annotations -> ({video: [Segment] in seconds}, {video: duration in seconds}).

    'activitynet': the training and validation videos of an ActivityNet 1.3 JSON, with durations.
    'thumos14': the val and test files of a THUMOS'14 annotation folder pooled (the common-action protocol
    splits classes, not videos), ambiguous segments left out, no durations. AnnotationError names the file."""
    if dataset == "activitynet":
        videos = ann_lib.activitynet_videos(path)
        segments = ann_lib.parse_activitynet(path)  # all subsets: a malformed entry anywhere is reported
        kept = [v for v, m in videos.items() if m["subset"] in ("training", "validation")]
        return {v: segments[v] for v in kept}, {v: videos[v]["duration"] for v in kept}
    if dataset != "thumos14":
        raise ValueError(f"dataset {dataset!r}: annotations are read for 'activitynet' or 'thumos14'")
    segments: dict[str, list[Segment]] = {}
    for split in ("val", "test"):
        try:
            segments.update(ann_lib.labelled_segments(ann_lib.parse_thumos14(path, split)))
        except AnnotationError as e:
            if "annotation files" not in str(e):  # a split without files is fine; a bad file is not
                raise
    if not segments:
        raise AnnotationError(path, None, "no <Class>_val.txt or <Class>_test.txt files")
    return segments, {}


class NpyFeatureSource(FeatureSource):
    """Features read from ``feature_dir`` for the annotated videos that have a feature file.

    ``segments``: {video: [Segment]} in seconds; ``durations`` (seconds, where known) or else
    ``snippets_per_second`` (THUMOS) convert them to snippets. Videos without a feature file are skipped
    (their ids in ``missing``)."""

    def __init__(self, segments: dict[str, list[Segment]], feature_dir: str, snippets_per_second: float, *,
                 durations: Optional[dict[str, float]] = None):
        if not os.path.isdir(feature_dir):
            raise ValueError(f"feature_dir {feature_dir!r}: no such directory")
        durations = durations or {}
        self.paths, self.num_snippets, self.instances, self.missing = {}, {}, [], []
        dims = set()
        for vid in sorted(segments):
            p = find_feature_file(feature_dir, vid)
            if p is None:
                self.missing.append(vid)
                continue
            t, d = self._read(p).shape
            dims.add(d)
            self.paths[vid], self.num_snippets[vid] = p, t
            self.instances += ann_lib.to_snippets(segments[vid], t, snippets_per_second, durations.get(vid), video=vid)
        if not self.paths:
            raise ValueError(f"feature_dir {feature_dir!r}: none of the {len(segments)} annotated videos has a "
                             f"feature file (<video_id> with one of {LOOKUP_EXTS})")
        if len(dims) != 1:
            raise ValueError(f"feature_dir {feature_dir!r}: feature files disagree on D: {sorted(dims)}")
        self.feature_dim = dims.pop()

    @staticmethod
    def _read(path: str) -> np.ndarray:
        """[T, D], memory-mapped for .npy files (only the snippets an episode uses are read)."""
        return read_feature_file(path, mmap=True)["rgb"]

    def features(self, video: str) -> np.ndarray:
        return np.asarray(self._read(self.paths[video]), np.float32)


# ----------------------------------------------------------------------------- synthetic

class SyntheticFeatureSource(FeatureSource):
    """Deterministic feature-level long videos.

    ``num_classes`` classes named ``action_00`` ...; ``videos_per_class`` videos are built per class,
    each with one instance of its class and ``distractors`` instances of other classes, at random
    non-overlapping places; instance lengths are uniform in [min_len, max_len] snippets.
    """

    def __init__(self, *, num_classes: int = 16, videos_per_class: int = 8, video_len: int = 64,
                 feature_dim: int = 16, pattern_len: int = 4, min_len: int = 6, max_len: int = 16,
                 distractors: int = 1, noise: float = 0.5, seed: int = 0):
        if (1 + distractors) * max_len > video_len:
            raise ValueError(f"synthetic: {1 + distractors} instances of up to {max_len} snippets do not fit in "
                             f"video_len {video_len}")
        rng = np.random.default_rng([seed, 7])
        self.feature_dim = feature_dim
        self.classes = [f"action_{i:02d}" for i in range(num_classes)]
        self.patterns = rng.normal(size=(num_classes, pattern_len, feature_dim)).astype(np.float32)
        self.num_snippets, self.instances, self._feats = {}, [], {}
        for c in range(num_classes):
            for v in range(videos_per_class):
                vid = f"syn_{c:02d}_{v:03d}"
                others = rng.choice([k for k in range(num_classes) if k != c], size=distractors, replace=False)
                labels = [c, *others.tolist()]
                rng.shuffle(labels)
                x, inst = self._video(rng, labels, video_len, min_len, max_len, noise)
                self._feats[vid] = x
                self.num_snippets[vid] = video_len
                self.instances += [Segment(float(s), float(e), self.classes[k], video=vid) for k, s, e in inst]

    def _video(self, rng, labels, video_len, min_len, max_len, noise):
        d = self.feature_dim
        walk = np.cumsum(rng.normal(scale=0.1, size=(video_len, d)), 0) + rng.normal(size=(1, d))
        x = (walk + noise * rng.normal(size=(video_len, d))).astype(np.float32)
        lens = rng.integers(min_len, max_len + 1, size=len(labels))
        gaps = rng.multinomial(video_len - lens.sum(), np.ones(len(labels) + 1) / (len(labels) + 1))
        pos, inst = int(gaps[0]), []
        for k, n, gap in zip(labels, lens, gaps[1:]):
            u = np.linspace(0, self.patterns.shape[1] - 1, n)  # stretch the pattern over n snippets
            lo = np.floor(u).astype(int)
            hi = np.minimum(lo + 1, self.patterns.shape[1] - 1)
            pat = self.patterns[k][lo] * (1 - (u - lo))[:, None] + self.patterns[k][hi] * (u - lo)[:, None]
            x[pos:pos + n] = pat + noise * rng.normal(size=(n, d))
            inst.append((k, pos, pos + int(n)))
            pos += int(n) + int(gap)
        return x, inst

    def features(self, video: str) -> np.ndarray:
        return self._feats[video]


# ----------------------------------------------------------------------------- class splits

def split_classes(classes: Sequence[str], fractions: Sequence[float], seed: int,
                  split_file: str = "") -> dict[str, list[str]]:
    """{'train', 'val', 'test'} disjoint class lists: from ``split_file`` (JSON with those keys) or a
    seeded shuffle of the sorted class names cut by ``fractions`` (train, val, test)."""
    if split_file:
        with open(split_file, encoding="utf-8") as f:
            obj = json.load(f)
        missing = [k for k in ("train", "test") if k not in obj]
        if missing:
            raise ValueError(f"{split_file}: missing keys {missing} (needs 'train', 'test', optional 'val')")
        out = {k: list(obj.get(k, [])) for k in ("train", "val", "test")}
        seen: dict[str, str] = {}
        for k, names in out.items():
            for n in names:
                if n in seen:
                    raise ValueError(f"{split_file}: class {n!r} is in both {seen[n]!r} and {k!r}")
                seen[n] = k
        return out
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"class_fractions {tuple(fractions)}: need three non-negative numbers summing to 1")
    names = sorted(classes)
    order = np.random.default_rng([seed, 11]).permutation(len(names))
    n_tr = int(round(fractions[0] * len(names)))
    n_va = int(round(fractions[1] * len(names)))
    shuffled = [names[i] for i in order]
    return {"train": sorted(shuffled[:n_tr]), "val": sorted(shuffled[n_tr:n_tr + n_va]),
            "test": sorted(shuffled[n_tr + n_va:])}
