"""Local annotation files of untrimmed videos (OV-OAD and FS-CAL) -> {video name: [Segment, ...]} (times in
seconds; ``to_snippets`` converts one video's segments to snippet units of its feature array, for FS-CAL).

Formats (``fmt``):

* ``thumos14``: a directory of THUMOS'14 temporal annotation files, one per class
  (``{Class}_val.txt`` / ``{Class}_test.txt``, lines ``video_name start end``); ``Ambiguous_*.txt`` gives
  ambiguous segments.
* ``tvseries``: one text file, lines ``video<sep>class<sep>start<sep>end`` with ``<sep>`` a tab or a comma
  (class names contain spaces), or whitespace-separated with the class in the middle.
* ``activitynet``: ActivityNet 1.3 JSON ``{"database": {id: {"subset", "duration", "annotations":
  [{"segment": [s, e], "label"}]}}}``; ``subset`` filters (training / validation / testing).
* ``captions``: generic captions for video-text pre-training (InternVid-style): text lines
  ``video_id start end caption words ...`` or JSON ``{video_id: [[start, end, text], ...]}`` or
  ``[{"video", "start", "end", "caption"|"text"}, ...]``.

Every parse error raises ``AnnotationError`` naming the file and line.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from typing import Optional, Sequence

from data_pipelines.video.annotations import AnnotationError
from data_pipelines.temporal.video import Segment

FORMATS = ("thumos14", "tvseries", "activitynet", "captions")


def load_segments(path: str, fmt: str, *, subset=None,
                  class_names: Optional[Sequence[str]] = None) -> dict[str, list[Segment]]:
    if fmt not in FORMATS:
        raise ValueError(f"annotation format {fmt!r} not in {FORMATS}")
    if not os.path.exists(path):
        raise AnnotationError(path, None, "no such file or directory")
    out = {"thumos14": parse_thumos14, "tvseries": parse_tvseries, "activitynet": parse_activitynet,
           "captions": parse_captions}[fmt](path, **({"subset": subset} if fmt == "activitynet" else {}))
    if class_names is not None:
        known = set(class_names)
        for vid, segs in out.items():
            for s in segs:
                if s.label is not None and not s.ambiguous and s.label not in known:
                    raise AnnotationError(path, None, f"video {vid}: class {s.label!r} is not in the class list")
    return out


def _float(value: object, path: str, lineno: Optional[int]) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnnotationError(path, lineno, f"{value!r} is not a time in seconds") from None


def _interval(start: object, end: object, path: str, lineno: Optional[int]) -> tuple[float, float]:
    """(start, end) in seconds of one annotation, checked: AnnotationError naming the file and line."""
    s, e = _float(start, path, lineno), _float(end, path, lineno)
    if e < s or s < 0:
        raise AnnotationError(path, lineno, f"segment [{s}, {e}] has end < start or a negative start")
    return s, e


def _read_json(path: str) -> object:
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise AnnotationError(path, e.lineno, f"not valid JSON: {e.msg}") from None


def parse_thumos14(path: str, split: Optional[str] = None) -> dict[str, list[Segment]]:
    """A folder of ``{Class}_{split}.txt`` files (or one such file) -> {video: [Segment]}; ``split``
    ('val' / 'test') keeps only that split's files. ``Ambiguous_*`` segments come with ambiguous=True."""
    pattern = f"*_{split}.txt" if split else "*.txt"
    files = sorted(glob.glob(os.path.join(path, pattern))) if os.path.isdir(path) else [path]
    if not files:
        raise AnnotationError(path, None, f"no '<Class>_{split}.txt' annotation files" if split
                              else "no *.txt annotation file")
    out: dict[str, list[Segment]] = {}
    for f in files:
        m = re.match(r"(.+?)_(val|test|validation|train)\.txt$", os.path.basename(f))
        if not m:
            raise AnnotationError(f, None, "file name is not {Class}_{val|test}.txt")
        cls = m.group(1)
        with open(f) as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 3:
                    raise AnnotationError(f, lineno, f"expected 'video start end', got {line.strip()!r}")
                s, e = _interval(parts[1], parts[2], f, lineno)
                amb = cls.lower() == "ambiguous"
                out.setdefault(parts[0], []).append(Segment(s, e, None if amb else cls, ambiguous=amb))
    return out


def parse_tvseries(path: str) -> dict[str, list[Segment]]:
    out: dict[str, list[Segment]] = {}
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            sep = "\t" if "\t" in line else ("," if "," in line else None)
            parts = [p.strip() for p in line.split(sep)] if sep else line.split()
            if sep is None and len(parts) >= 4:
                parts = [parts[0], " ".join(parts[1:-2]), parts[-2], parts[-1]]
            if len(parts) != 4:
                raise AnnotationError(path, lineno, f"expected 'video, class, start, end', got {line!r}")
            s, e = _interval(parts[2], parts[3], path, lineno)
            out.setdefault(parts[0], []).append(Segment(s, e, parts[1]))
    return out


def _activitynet_database(path: str) -> dict:
    raw = _read_json(path)
    db = raw.get("database", raw) if isinstance(raw, dict) else None
    if not isinstance(db, dict) or not all(isinstance(v, dict) for v in db.values()):
        raise AnnotationError(path, None, "expected {'database': {video_id: {...}}}")
    return db


def activitynet_videos(path: str) -> dict[str, dict]:
    """ActivityNet 1.3 JSON -> {video_id: {'duration': seconds, 'subset': str}} (duration required)."""
    out = {}
    for vid, entry in _activitynet_database(path).items():
        try:
            duration = float(entry["duration"])
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(path, None, f"database[{vid!r}].duration: missing or not a number") from None
        out[vid] = {"duration": duration, "subset": str(entry.get("subset", ""))}
    return out


def parse_activitynet(path: str, subset=None) -> dict[str, list[Segment]]:
    """``subset``: one name or several (the released OV-OAD pre-training reads ('training', 'validation'))."""
    db = _activitynet_database(path)
    out: dict[str, list[Segment]] = {}
    keep = (subset,) if isinstance(subset, str) else tuple(subset or ())
    for vid, entry in db.items():
        if keep and entry.get("subset") not in keep:
            continue
        segs = []
        for i, a in enumerate(entry.get("annotations", [])):
            try:
                (s, e), label = a["segment"], a["label"]
            except (KeyError, TypeError, ValueError):
                raise AnnotationError(path, None, f"database[{vid!r}].annotations[{i}]: needs 'segment' [start, end] "
                                                  f"and 'label'") from None
            segs.append(Segment(*_interval(s, e, path, None), str(label)))
        out[vid] = segs
    return out


def parse_captions(path: str) -> dict[str, list[Segment]]:
    out: dict[str, list[Segment]] = {}
    if path.endswith(".json"):
        raw = _read_json(path)
        items = []
        if isinstance(raw, dict):
            for vid, caps in raw.items():
                caps = caps.values() if isinstance(caps, dict) else caps  # released {id: [s, e, text]}
                items += [(vid, c) for c in caps]
        elif isinstance(raw, list):
            for i, r in enumerate(raw):
                if not isinstance(r, dict) or "video" not in r:
                    raise AnnotationError(path, None, f"item {i}: expected {{'video', 'start', 'end', 'caption'}}")
                items.append((r["video"], [r.get("start"), r.get("end"), r.get("caption", r.get("text"))]))
        else:
            raise AnnotationError(path, None, "expected a JSON object or list")
        for vid, c in items:
            if not isinstance(c, (list, tuple)) or len(c) != 3 or c[2] is None:
                raise AnnotationError(path, None, f"video {vid}: caption {c!r} is not [start, end, text]")
            s, e = _interval(c[0], c[1], path, None)
            out.setdefault(str(vid), []).append(Segment(s, e, None, text=str(c[2])))
        return out
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.strip().split(maxsplit=3)
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 4:
                raise AnnotationError(path, lineno, f"expected 'video_id start end text', got {line.strip()!r}")
            s, e = _interval(parts[1], parts[2], path, lineno)
            out.setdefault(parts[0], []).append(Segment(s, e, None, text=parts[3]))
    return out


def activitynet_class_names(path: str) -> list[str]:
    """Sorted ActivityNet class names of a 1.3 JSON (for a 200 + background vocabulary)."""
    labels = {s.label for segs in parse_activitynet(path).values() for s in segs}
    return sorted(labels)


# ----------------------------------------------------------------------------- snippet units (FS-CAL)

def labelled_segments(segments: dict[str, list[Segment]]) -> dict[str, list[Segment]]:
    """Each video's segments that name a class (no ambiguous or caption-only ones), sorted by (start, end,
    label); videos left without any are dropped."""
    out = {}
    for vid, segs in segments.items():
        kept = sorted((g for g in segs if g.label is not None and not g.ambiguous),
                      key=lambda g: (g.start, g.end, g.label))
        if kept:
            out[vid] = kept
    return out


def to_snippets(segments: Sequence[Segment], num_snippets: int, snippets_per_second: float,
                duration: Optional[float] = None, video: Optional[str] = None) -> list[Segment]:
    """One video's segments in seconds -> the same segments in snippet units of its [T, D] feature array,
    clipped to [0, T].

    With a ``duration`` (ActivityNet) the T snippets span the whole video (scale T / duration, which also
    covers features resized to a fixed T); without one (THUMOS) the scale is ``snippets_per_second``.
    Segments left empty by the clipping are dropped. ``video``, when given, is set on the returned segments
    (``Segment.video``) and named in errors."""
    scale = num_snippets / duration if duration else snippets_per_second
    if scale <= 0:
        raise ValueError(f"video {video}: non-positive snippet scale {scale}")
    out = []
    for g in segments:
        s, e = max(0.0, g.start * scale), min(float(num_snippets), g.end * scale)
        if e > s:
            out.append(dataclasses.replace(g, start=s, end=e, video=video if video is not None else g.video))
    return out
