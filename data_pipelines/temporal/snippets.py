"""Temporal action annotations of untrimmed videos: ActivityNet 1.3 JSON and THUMOS'14 text files.

Both parsers return ``{video_id: VideoAnnotation}`` with segments in **seconds**; ``to_snippets``
converts them to snippet units of a per-video feature array (see ``data_pipelines/temporal/sources.py``).

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
from typing import Optional, Sequence

from data_pipelines.temporal import annotations as oad_annotations


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

    Parsed by the project's one ActivityNet reader (``data_pipelines.temporal.annotations``); AnnotationError
    names the file and the video id / field of a malformed entry."""
    segments = oad_annotations.parse_activitynet(path)
    out = {}
    for vid, meta in oad_annotations.activitynet_videos(path).items():
        if subsets is not None and meta["subset"] not in subsets:
            continue
        segs = [Segment(g.start, g.end, g.label) for g in segments.get(vid, [])]
        out[vid] = VideoAnnotation(vid, meta["duration"], meta["subset"], segs)
    return out


def parse_thumos14(annotation_dir: str, split: str = "val") -> dict[str, VideoAnnotation]:
    """THUMOS'14 per-class files ``<Class>_<split>.txt`` (split 'val' or 'test') -> {video_id: ...};
    ambiguous segments are left out. Parsed by ``data_pipelines.temporal.annotations.parse_thumos14``."""
    out: dict[str, VideoAnnotation] = {}
    for vid, segs in oad_annotations.parse_thumos14(annotation_dir, split).items():
        kept = sorted((Segment(g.start, g.end, g.label) for g in segs if not g.ambiguous),
                      key=lambda g: (g.start, g.end, g.label))
        if kept:
            out[vid] = VideoAnnotation(vid, None, split, kept)
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
