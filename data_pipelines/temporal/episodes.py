"""FS-CAL episodes: one untrimmed query window plus S trimmed support instances of one common action.

Construction (the ECCV 2020 common-action protocol, simplest form):

* Classes are split into disjoint train / val / test sets (``sources.split_classes``); an episode only
  uses instances of one class of its split.
* The class is drawn uniformly among the split's classes that can form an episode; the query instance
  uniformly among that class's instances no longer than ``query_len`` snippets.
* Query: a window of ``query_len`` snippets of the query instance's video placed uniformly at random
  among the positions that contain the whole instance (the whole video when the video is shorter:
  queries are untrimmed videos of any length up to ``query_len``). Ground truth: every instance of the
  episode class overlapping the window, clipped to it, in window snippet units (at most ``max_gt``).
  Instances of other classes in the window stay unlabeled background (distractors).
  ``single_instance``: only instances that are the one instance of their class in their video are
  queries (the benchmark's queries hold one instance each).
* Shapes: a query of ``window_len`` snippets is zero-padded (mask False) to the smallest of
  ``buckets`` (those below ``query_len``, then ``query_len``) that holds it, so each bucket has one static shape; a
  batch is padded to its longest row's bucket (``batch(..., length=)`` forces one).
* Supports: ``shots`` distinct instances of the class drawn **from videos other than the query video**
  (the query is never a support), each cropped to its segment and linearly resampled to
  ``support_len`` snippets (its segments).

Test episodes are fixed: ``make_episodes(sampler, n, seed)`` is deterministic and ``save_episodes`` /
``load_episodes`` keep them in a JSON file (``{"meta": {...}, "episodes": [spec, ...]}``; a spec holds
the class, query video and window start, the supports as [video, start, end] and the ground truth) so
every model is evaluated on the same episodes. Training episodes are drawn on the fly from
``np.random.default_rng([seed, step, row])``, a pure function of (seed, step) for exact resume.
"""
from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np

from data_pipelines.temporal.sources import FeatureSource
from data_pipelines.temporal.video import Segment


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """[n, D] -> [length, D] by linear interpolation between snippet centres."""
    n = x.shape[0]
    if n == 1:
        return np.repeat(x, length, 0)
    u = np.linspace(0, n - 1, length)
    lo = np.floor(u).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (u - lo)[:, None].astype(x.dtype)
    return x[lo] * (1 - w) + x[hi] * w


class EpisodeSampler:
    """Draws and materialises episodes of one class split of a FeatureSource."""

    def __init__(self, source: FeatureSource, classes: Sequence[str], *, shots: int, query_len: int,
                 support_len: int, max_gt: int = 8, buckets: Sequence[int] = (), single_instance: bool = False):
        if shots < 1:
            raise ValueError(f"shots must be >= 1, got {shots}")
        # query_len is always the largest bucket (longer buckets are dropped)
        self.buckets = tuple(sorted({int(b) for b in buckets if int(b) < query_len})) + (int(query_len),)
        self.source, self.shots, self.query_len = source, shots, query_len
        self.support_len, self.max_gt = support_len, max_gt
        by_class: dict[str, list[Segment]] = {c: [] for c in classes}
        for inst in source.instances:
            if inst.label in by_class:
                by_class[inst.label].append(inst)
        self.by_class = by_class
        self.queries: dict[str, list[Segment]] = {}
        for c, insts in by_class.items():
            ok = [q for q in insts if math.ceil(q.end) - math.floor(q.start) <= query_len
                  and sum(i.video != q.video for i in insts) >= shots
                  and not (single_instance and sum(i.video == q.video for i in insts) > 1)]
            if ok:
                self.queries[c] = ok
        self.classes = sorted(self.queries)
        if not self.classes:
            raise ValueError(f"no class of {len(by_class)} can form a {shots}-shot episode (needs an instance of "
                             f"<= {query_len} snippets and {shots} instances in other videos)")
        self.num_queries = sum(len(v) for v in self.queries.values())

    def sample(self, rng: np.random.Generator) -> dict:
        """A random episode spec (JSON-serialisable)."""
        label = self.classes[rng.integers(len(self.classes))]
        cands = self.queries[label]
        q = cands[rng.integers(len(cands))]
        t = self.source.num_snippets[q.video]
        if t <= self.query_len:
            start = 0
        else:
            lo = max(0, math.ceil(q.end) - self.query_len)
            hi = min(math.floor(q.start), t - self.query_len)
            start = int(rng.integers(lo, hi + 1))
        others = [i for i in self.by_class[label] if i.video != q.video]
        picks = rng.choice(len(others), size=self.shots, replace=False)
        sup = [[others[k].video, others[k].start, others[k].end] for k in sorted(picks)]
        end = min(start + self.query_len, t)
        gt = [[max(i.start, start) - start, min(i.end, end) - start] for i in self.by_class[label]
              if i.video == q.video and i.end > start and i.start < end]
        gt.sort()
        return {"label": label, "query_video": q.video, "window_start": start, "window_len": end - start,
                "supports": sup, "gt": gt[: self.max_gt]}

    def window_len(self, spec: dict) -> int:
        """Snippets of the spec's query window (specs of older episode files: ``query_len`` or the video)."""
        if "window_len" in spec:
            return int(spec["window_len"])
        return min(self.query_len, self.source.num_snippets[spec["query_video"]] - spec["window_start"])

    def bucket(self, spec: dict) -> int:
        """The padded query length of a spec: the smallest bucket holding its window."""
        n = self.window_len(spec)
        for b in self.buckets:
            if n <= b:
                return b
        raise ValueError(f"a query of {n} snippets is longer than the largest bucket {self.buckets[-1]}")

    def materialize(self, spec: dict, length: int = 0) -> dict[str, np.ndarray]:
        """Spec -> arrays: query [L, D] (L = ``length`` or the spec's bucket), query_mask [L] bool, support
        [S, Ls, D], gt [G, 2] (window snippet units), gt_mask [G] bool."""
        d = self.source.feature_dim
        length = length or self.bucket(spec)
        x = self.source.features(spec["query_video"])
        w = x[spec["window_start"]: spec["window_start"] + self.window_len(spec)]
        if len(w) > length:
            raise ValueError(f"query window of {len(w)} snippets does not fit in {length}")
        query = np.zeros((length, d), np.float32)
        query[: len(w)] = w
        mask = np.zeros(length, bool)
        mask[: len(w)] = True
        support = np.stack([resample(np.asarray(self.source.features(v)[math.floor(s): math.ceil(e)], np.float32),
                                     self.support_len) for v, s, e in spec["supports"]])
        gt = np.zeros((self.max_gt, 2), np.float32)
        gt_mask = np.zeros(self.max_gt, bool)
        g = np.asarray(spec["gt"], np.float32).reshape(-1, 2)[: self.max_gt]
        gt[: len(g)], gt_mask[: len(g)] = g, True
        return {"query": query, "query_mask": mask, "support": support, "gt": gt, "gt_mask": gt_mask}

    def batch(self, specs: Sequence[dict], length: int = 0) -> dict[str, np.ndarray]:
        """Stacked ``materialize`` of the specs, padded to ``length`` (default: their largest bucket)."""
        length = length or max(self.bucket(s) for s in specs)
        items = [self.materialize(s, length) for s in specs]
        return {k: np.stack([it[k] for it in items]) for k in items[0]}


def make_episodes(sampler: EpisodeSampler, n: int, seed: int) -> list[dict]:
    """``n`` deterministic episodes (episode i from ``default_rng([seed, i])``)."""
    return [sampler.sample(np.random.default_rng([seed, 1000003, i])) for i in range(n)]


def save_episodes(path: str, episodes: list[dict], meta: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "episodes": episodes}, f, indent=1)


def load_episodes(path: str, sampler: EpisodeSampler, meta: dict) -> list[dict]:
    """Episodes of a file written by ``save_episodes``, checked against the sampler (videos known, shot
    count, the query video never a support) and against ``meta`` (e.g. shots, query_len)."""
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    if not isinstance(obj, dict) or "episodes" not in obj:
        raise ValueError(f"{path}: expected {{'meta': ..., 'episodes': [...]}}")
    for k, v in meta.items():
        if obj.get("meta", {}).get(k) != v:
            raise ValueError(f"{path}: meta.{k} is {obj.get('meta', {}).get(k)!r}, the config asks for {v!r}")
    for i, ep in enumerate(obj["episodes"]):
        where = f"{path}: episodes[{i}]"
        vids = [ep["query_video"]] + [s[0] for s in ep["supports"]]
        unknown = [v for v in vids if v not in sampler.source.num_snippets]
        if unknown:
            raise ValueError(f"{where}: videos {unknown} have no features")
        if len(ep["supports"]) != sampler.shots:
            raise ValueError(f"{where}: {len(ep['supports'])} supports, expected {sampler.shots}")
        if ep["query_video"] in vids[1:]:
            raise ValueError(f"{where}: the query video {ep['query_video']} is also a support")
    return obj["episodes"]
