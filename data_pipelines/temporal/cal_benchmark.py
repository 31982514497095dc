"""The common-action localisation benchmark's ActivityNet episode files (ECCV 2020, github
PengWan-Yang/commonLocalization, ``preprocess/activitynet/``), read into tcvideo episode specs.

Formats (learnt from its loader ``lib/roi_data_layer/roibatchLoader.py`` and evaluator; no file of it is
copied here):

* ``test_data.pkl`` / ``val_data.pkl``: a pickled list of episodes, each a sequence of 6 dicts: entry 0
  the query, entries 1-5 the supports. An entry holds ``frames`` [[fg_flag, start, end, step]] (frame
  indices of the 3 fps frames the benchmark extracts; the query spans [start, end), a support is
  already cropped to its instance), ``wins`` [G, 2] (instances in frames relative to ``start``),
  ``fg_name`` / ``bg_name`` (a frame folder ``.../<training|validation>/<youtube id>``; the query also
  has ``video_id`` = ``query_%05d``) and R-C3D roidb fields that are not used (``gt``, ``durations``,
  ``flipped``, ...). Only numpy arrays and plain data: read by ``tcvideo.core.safe_pickle``.
* ``train_data.pkl``: a dict class -> list of entries of the same form (R-C3D windows of training
  videos with all their instances in ``wins``).
* ``test_gt.json`` / ``val_gt.json``: ActivityNet-style ``{"database": {"query_%05d": {"annotations":
  [{"segment": [s, e], "label": "c1"}]}}}`` in the same query-relative frames; the evaluator reads
  ground truth from here (instances starting at frame >= 1536 dropped, ends clipped to 1536).

The benchmark's loader takes supports ``i % 5`` for i = 1..S, so its 5-shot test uses entries 1, 2, 3,
4 and 0 (the untrimmed query itself); tcvideo uses entries 1..S (``support_order="stored"``), the
loader's order is available as ``"reference_loader"`` (not the benchmark as published: a bug).
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import numpy as np

from tcvideo.core import safe_pickle

FRAMES_PER_SECOND = 3.0  # the benchmark's frame rate (R-C3D extraction, FPS=3)
GT_FRAME_LIMIT = 1536.0  # its evaluator drops ground truth from here on and clips ends to it
SUPPORT_ORDERS = ("stored", "reference_loader")


class BenchmarkFormatError(ValueError):
    """A benchmark file does not have the expected layout; the message names the file and the entry."""


def _video_of(entry: dict, where: str) -> str:
    frames = _frames(entry, where)
    name = entry.get("fg_name") if frames[0] else entry.get("bg_name")
    if not isinstance(name, str) or not name:
        raise BenchmarkFormatError(f"{where}: no frame folder name ('fg_name' / 'bg_name')")
    return os.path.basename(name.rstrip("/"))


def _frames(entry: dict, where: str) -> list:
    if not isinstance(entry, dict) or "frames" not in entry:
        raise BenchmarkFormatError(f"{where}: expected a dict with 'frames', got {type(entry).__name__}")
    f = np.asarray(entry["frames"]).reshape(-1)
    if f.size < 3 or not f[2] > f[1]:
        raise BenchmarkFormatError(f"{where}: 'frames' {f.tolist()} is not [[flag, start, end, step]] with end > start")
    return [int(x) for x in f[:3]]


def _wins(entry: dict, where: str) -> np.ndarray:
    w = np.asarray(entry.get("wins", np.zeros((0, 2))), np.float64).reshape(-1, 2)
    if len(w) == 0:
        raise BenchmarkFormatError(f"{where}: no instance in 'wins'")
    return w


def _entry(entry: dict, where: str) -> dict:
    """-> {'video', 'start', 'end'} in benchmark frames."""
    _, start, end = _frames(entry, where)
    return {"video": _video_of(entry, where), "start": start, "end": end}


def load_episode_file(path: str, gt_path: str = "") -> list[dict]:
    """A test / val pickle (and its GT JSON) -> episodes [{'id': 'query_%05d', 'query': {'video', 'start',
    'end'}, 'gt': [[s, e], ...] frames relative to the query start, 'supports': [{'video', 'start', 'end'}
    x 5 stored, entry 0 = the query last]}].

    Ground truth comes from ``gt_path`` when given (what the evaluator scores, its 1536-frame rule
    applied), else from the query's ``wins``. Errors (BenchmarkFormatError, UnsafePickleError) name the
    file and the episode."""
    data = safe_pickle.load_file(path)
    if not isinstance(data, (list, tuple)) or not data:
        raise BenchmarkFormatError(f"{path}: expected a non-empty list of episodes, got {type(data).__name__}")
    gts = load_gt_file(gt_path) if gt_path else None
    out = []
    for i, ep in enumerate(data):
        where = f"{path}: episode {i}"
        if not isinstance(ep, (list, tuple, np.ndarray)) or len(ep) < 2:
            raise BenchmarkFormatError(f"{where}: expected a query and supports, got {type(ep).__name__}")
        q = ep[0]
        qid = q.get("video_id", f"query_{i:05d}") if isinstance(q, dict) else None
        query = _entry(q, f"{where} (query)")
        supports = [_entry(s, f"{where} support {k}") for k, s in enumerate(ep[1:], 1)]
        if gts is not None:
            if qid not in gts:
                raise BenchmarkFormatError(f"{gt_path}: no ground truth for {qid!r} ({where})")
            gt = gts[qid]
        else:
            gt = _wins(q, f"{where} (query)").tolist()
        out.append({"id": str(qid), "query": query, "gt": gt, "supports": supports + [query]})
    return out


def load_gt_file(path: str) -> dict[str, list[list[float]]]:
    """test_gt.json / val_gt.json -> {query id: [[s, e], ...]} (frames relative to the query start) with the
    evaluator's rule: instances starting at >= 1536 dropped, ends clipped to 1536."""
    from data_pipelines.temporal.annotations import parse_activitynet  # the one ActivityNet JSON reader
    from data_pipelines.video.annotations import AnnotationError
    try:
        segments = parse_activitynet(path)
    except AnnotationError as e:
        raise BenchmarkFormatError(str(e)) from e
    return {qid: [[seg.start, min(seg.end, GT_FRAME_LIMIT)] for seg in segs if seg.start < GT_FRAME_LIMIT]
            for qid, segs in segments.items()}


def load_training_file(path: str) -> dict[str, list[dict]]:
    """train_data.pkl -> {class: [{'video', 'start', 'end', 'wins': [[s, e], ...] relative frames}]}."""
    data = safe_pickle.load_file(path)
    if not isinstance(data, dict) or not data:
        raise BenchmarkFormatError(f"{path}: expected a dict class -> list of entries, got {type(data).__name__}")
    out = {}
    for c, items in data.items():
        rows = []
        for k, it in enumerate(items):
            where = f"{path}: class {c!r} entry {k}"
            rows.append({**_entry(it, where), "wins": _wins(it, where).tolist()})
        out[str(c)] = rows
    return out


def supports_for(episode: dict, shots: int, order: str = "stored") -> list[dict]:
    """The S supports of an episode: entries 1..S ("stored"), or the benchmark loader's i % 5 for i = 1..S
    ("reference_loader": its 5-shot includes the query itself)."""
    stored = episode["supports"][:-1]  # the last one is the query (entry 0)
    if order == "stored":
        if shots > len(stored):
            raise BenchmarkFormatError(f"episode {episode['id']}: {shots} shots asked, {len(stored)} supports stored")
        return stored[:shots]
    if order != "reference_loader":
        raise ValueError(f"support_order {order!r} not in {SUPPORT_ORDERS}")
    return [episode["supports"][(i % len(stored)) - 1] for i in range(1, shots + 1)]


def to_specs(episodes: Sequence[dict], num_snippets: dict[str, int], *, shots: int, snippets_per_second: float,
             support_order: str = "stored", frames_per_second: float = FRAMES_PER_SECOND,
             labels: Optional[dict] = None) -> list[dict]:
    """Benchmark episodes -> tcvideo episode specs (``episodes.EpisodeSampler.materialize``) in snippet units
    of the feature arrays: a query window [floor(start), ceil(end)) of its video, supports [video, s, e],
    ground truth relative to the window. ``num_snippets``: {video: T} (ActivityNet ``v_`` twins matched);
    a video without features raises ValueError listing them. ``labels``: {episode id: class} (else "c1")."""
    from data_pipelines.temporal.features import video_name_variants
    r = snippets_per_second / frames_per_second

    def vid(v: str) -> Optional[str]:
        return next((n for n in video_name_variants(v) if n in num_snippets), None)

    used = {e["query"]["video"] for e in episodes} | {s["video"] for e in episodes for s in e["supports"]}
    missing = sorted(v for v in used if vid(v) is None)
    if missing:
        raise ValueError(f"{len(missing)} benchmark videos have no feature file: {missing[:5]}"
                         + (" ..." if len(missing) > 5 else ""))
    specs = []
    for e in episodes:
        q = e["query"]
        v = vid(q["video"])
        t = num_snippets[v]
        w0 = min(int(math.floor(q["start"] * r)), t - 1)
        w1 = max(min(int(math.ceil(q["end"] * r)), t), w0 + 1)
        off = q["start"] * r - w0
        gt = [[s * r + off, e_ * r + off] for s, e_ in e["gt"]]
        sup = []
        for s in supports_for(e, shots, support_order):
            sv = vid(s["video"])
            ts = num_snippets[sv]
            a = min(s["start"] * r, ts - 1.0)
            sup.append([sv, a, max(min(s["end"] * r, float(ts)), a + 1e-3)])
        specs.append({"label": (labels or {}).get(e["id"], "c1"), "query_video": v, "window_start": w0,
                      "window_len": w1 - w0, "supports": sup, "gt": gt, "benchmark_id": e["id"]})
    return specs
