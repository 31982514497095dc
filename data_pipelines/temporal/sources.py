"""Per-snippet feature sources for FS-CAL: untrimmed videos as [T, D] feature arrays plus their
action instances in snippet units.

Feature layout on disk (what ``tcvideo extract-features --format=npy --fps=R`` writes: CLIP features
of one frame per snippet, R snippets per second): one file per video in ``feature_dir``,
``<video_id>.npy`` (a float [T, D] array) or ``<video_id>.npz`` (key ``features`` or ``rgb``, else its
only array); ActivityNet's ``v_<video_id>`` file names are also found. Snippet t covers
[t, t + 1) in snippet units; annotations are converted to these units by
``temporal_annotations.to_snippets``.

``SyntheticFeatureSource`` builds feature-level long videos in memory (tests and the demo): each class
is a fixed sequence of prototype vectors (its temporal pattern), an instance is that pattern
stretched over its length plus noise, embedded in a background of noise around a random-walk mean.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Sequence

import numpy as np

from data_pipelines.temporal import snippets as ta


@dataclasses.dataclass(frozen=True)
class Instance:
    """One action instance, in snippet units of its video's feature array."""

    video: str
    start: float
    end: float
    label: str


class FeatureSource:
    """Videos (id -> number of snippets T), instances, and ``features(video) -> float32 [T, D]``."""

    num_snippets: dict[str, int]
    instances: list[Instance]
    feature_dim: int

    def features(self, video: str) -> np.ndarray:
        raise NotImplementedError

    def class_names(self) -> list[str]:
        return sorted({i.label for i in self.instances})


# ----------------------------------------------------------------------------- files on disk

def feature_path(feature_dir: str, video: str) -> Optional[str]:
    for stem in (video, f"v_{video}"):
        for ext in (".npy", ".npz"):
            p = os.path.join(feature_dir, stem + ext)
            if os.path.exists(p):
                return p
    return None


def load_feature_file(path: str, mmap: bool = True) -> np.ndarray:
    """[T, D] array of a .npy / .npz feature file (ValueError naming the file otherwise)."""
    if path.endswith(".npz"):
        with np.load(path) as z:
            keys = list(z.keys())
            key = next((k for k in ("features", "rgb") if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(f"{path}: no 'features' or 'rgb' array among {keys}")
            x = z[key]
    else:
        x = np.load(path, mmap_mode="r" if mmap else None)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{path}: features must be [T, D] with T >= 1, got shape {x.shape}")
    return x


class NpyFeatureSource(FeatureSource):
    """Features read from ``feature_dir`` for the annotated videos that have a feature file.

    Videos without a feature file are skipped (their ids in ``missing``); ``snippets_per_second``
    converts THUMOS seconds (no durations) to snippets."""

    def __init__(self, annotations: dict[str, ta.VideoAnnotation], feature_dir: str, snippets_per_second: float):
        if not os.path.isdir(feature_dir):
            raise ValueError(f"feature_dir {feature_dir!r}: no such directory")
        self.paths, self.num_snippets, self.instances, self.missing = {}, {}, [], []
        dims = set()
        for vid in sorted(annotations):
            p = feature_path(feature_dir, vid)
            if p is None:
                self.missing.append(vid)
                continue
            x = load_feature_file(p)
            dims.add(x.shape[1])
            self.paths[vid], self.num_snippets[vid] = p, int(x.shape[0])
            for g in ta.to_snippets(annotations[vid], x.shape[0], snippets_per_second):
                self.instances.append(Instance(vid, g.start, g.end, g.label))
        if not self.paths:
            raise ValueError(f"feature_dir {feature_dir!r}: none of the {len(annotations)} annotated videos has a "
                             f"<video_id>.npy/.npz feature file")
        if len(dims) != 1:
            raise ValueError(f"feature_dir {feature_dir!r}: feature files disagree on D: {sorted(dims)}")
        self.feature_dim = dims.pop()

    def features(self, video: str) -> np.ndarray:
        return np.asarray(load_feature_file(self.paths[video]), np.float32)


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
                self.instances += [Instance(vid, float(s), float(e), self.classes[k]) for k, s, e in inst]

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
