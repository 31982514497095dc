"""Temporal action annotations of untrimmed videos: ActivityNet 1.3 JSON and THUMOS'14 text files.

Both parsers return ``{video_id: VideoAnnotation}`` with segments in **seconds**; ``to_snippets``
converts them to snippet units of a per-video feature array (see ``data_pipelines/fs_cal/sources.py``).

ActivityNet 1.3 (``activity_net.v1-3.min.json``)::

    {"database": {"<id>": {"subset": "training"|"validation"|"testing", "duration": 82.7,
                           "annotations": [{"segment": [12.0, 30.5], "label": "Long jump"}, ...]}}}

THUMOS'14 (``TH14_Temporal_annotations_{validation,test}/annotation/``): one file per class named
``<Class>_val.txt`` / ``<Class>_test.txt`` with lines ``video_validation_0000051 67.5 75.9``;
``Ambiguous_*.txt`` (segments of unclear class) is skipped. THUMOS gives no durations (None here):
``to_snippets`` then uses the feature rate (snippets per second).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Optional, Sequence

from data_pipelines.annotations import AnnotationError


@dataclasses.dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: str


@dataclasses.dataclass
class VideoAnnotation:
    video_id: str
    duration: Optional[float]  # seconds; None when the annotation format does not give it
    subset: str
    segments: list[Segment]


def parse_activitynet(path: str, subsets: Sequence[str] | None = None) -> dict[str, VideoAnnotation]:
    """ActivityNet 1.3 JSON -> {video_id: VideoAnnotation}; ``subsets`` filters (e.g. ("training",)).

    Raises AnnotationError naming the file and the video id / field for malformed entries."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(path, e.lineno, f"not valid JSON: {e.msg}") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("database"), dict):
        raise AnnotationError(path, None, "expected a top-level object with a 'database' mapping")
    out = {}
    for vid, rec in obj["database"].items():
        where = f"database[{vid!r}]"
        if not isinstance(rec, dict):
            raise AnnotationError(path, None, f"{where}: expected an object")
        subset = str(rec.get("subset", ""))
        if subsets is not None and subset not in subsets:
            continue
        try:
            duration = float(rec["duration"])
        except (KeyError, TypeError, ValueError) as e:
            raise AnnotationError(path, None, f"{where}.duration: missing or not a number") from e
        segs = []
        for i, a in enumerate(rec.get("annotations", [])):
            try:
                s, e_ = (float(x) for x in a["segment"])
                label = str(a["label"])
            except (KeyError, TypeError, ValueError) as e:
                raise AnnotationError(path, None, f"{where}.annotations[{i}]: needs 'segment' [start, end] "
                                                  f"and 'label'") from e
            if e_ <= s:
                raise AnnotationError(path, None, f"{where}.annotations[{i}].segment: end {e_} <= start {s}")
            segs.append(Segment(s, e_, label))
        out[vid] = VideoAnnotation(vid, duration, subset, segs)
    return out


def parse_thumos14(annotation_dir: str, split: str = "val") -> dict[str, VideoAnnotation]:
    """THUMOS'14 per-class files ``<Class>_<split>.txt`` (split 'val' or 'test') -> {video_id: ...}.

    Raises AnnotationError naming the file and line for malformed lines."""
    files = sorted(glob.glob(os.path.join(annotation_dir, f"*_{split}.txt")))
    files = [f for f in files if not os.path.basename(f).startswith("Ambiguous")]
    if not files:
        raise AnnotationError(annotation_dir, None, f"no '<Class>_{split}.txt' annotation files")
    out: dict[str, VideoAnnotation] = {}
    for path in files:
        label = os.path.basename(path)[: -len(f"_{split}.txt")]
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 3:
                    raise AnnotationError(path, lineno, f"expected 'video start end', got {line.strip()!r}")
                try:
                    s, e = float(parts[1]), float(parts[2])
                except ValueError as err:
                    raise AnnotationError(path, lineno, f"start/end not numbers: {line.strip()!r}") from err
                if e <= s:
                    raise AnnotationError(path, lineno, f"end {e} <= start {s}")
                rec = out.setdefault(parts[0], VideoAnnotation(parts[0], None, split, []))
                rec.segments.append(Segment(s, e, label))
    for rec in out.values():
        rec.segments.sort(key=lambda g: (g.start, g.end, g.label))
    return out


def to_snippets(ann: VideoAnnotation, num_snippets: int, snippets_per_second: float) -> list[Segment]:
    """Segments of one video in snippet units of its [T, D] feature array, clipped to [0, T].

    With a duration (ActivityNet) the T snippets span the whole video (scale T / duration, which also
    covers features resized to a fixed T); without one (THUMOS) the scale is ``snippets_per_second``.
    Segments left empty by the clipping are dropped."""
    scale = num_snippets / ann.duration if ann.duration else snippets_per_second
    if scale <= 0:
        raise ValueError(f"video {ann.video_id}: non-positive snippet scale {scale}")
    out = []
    for g in ann.segments:
        s, e = max(0.0, g.start * scale), min(float(num_snippets), g.end * scale)
        if e > s:
            out.append(Segment(s, e, g.label))
    return out
