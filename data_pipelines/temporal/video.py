"""One untrimmed video for online action detection and the frame-label rule of OV-OAD."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

FPS = 4.0
BACKGROUND = "background"


@dataclasses.dataclass(frozen=True)
class Segment:
    """An annotated interval in seconds (in snippet units after ``annotations.to_snippets``: FS-CAL's action
    instances). ``label``: class name (None: a caption without a class); ``text``: its caption (None: made
    from the class name when needed); ``ambiguous``: THUMOS' Ambiguous; ``video``: the video it belongs to
    where segments of many videos are listed together (FS-CAL's ``FeatureSource.instances``), else None."""

    start: float
    end: float
    label: Optional[str] = None
    text: Optional[str] = None
    ambiguous: bool = False
    video: Optional[str] = None


@dataclasses.dataclass
class OADVideo:
    """features [T, D] (float32 / float16) at ``fps``; ``segments`` in seconds; ``duration`` in seconds."""

    name: str
    features: np.ndarray
    fps: float = FPS
    segments: list = dataclasses.field(default_factory=list)
    duration: Optional[float] = None

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])


def frame_range(start: float, end: float, num_frames: int, fps: float = FPS) -> range:
    """Frames of a segment by OV-OAD's rule: range(int(s * fps) - 1, ceil(e * fps)), clipped to [0, T)."""
    lo = max(int(start * fps) - 1, 0)
    hi = min(int(math.ceil(end * fps)), num_frames)
    return range(lo, max(lo, hi))


def frame_labels(video: OADVideo, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """-> (labels [T, C] float32 multi-hot, column 0 = background (frames without any class),
    ambiguous [T] bool). ``class_names[0]`` must be the background class; segments with a label not in
    ``class_names`` raise ValueError naming the video."""
    if not class_names or class_names[0] != BACKGROUND:
        raise ValueError(f"class_names[0] must be {BACKGROUND!r}, got {list(class_names)[:1]}")
    index = {c: i for i, c in enumerate(class_names)}
    t = video.num_frames
    labels = np.zeros((t, len(class_names)), np.float32)
    ambiguous = np.zeros((t,), bool)
    for s in video.segments:
        r = frame_range(s.start, s.end, t, video.fps)
        if s.ambiguous:
            ambiguous[r.start:r.stop] = True
            continue
        if s.label is None:
            continue
        if s.label not in index:
            raise ValueError(f"video {video.name}: segment label {s.label!r} not in the class list")
        labels[r.start:r.stop, index[s.label]] = 1.0
    labels[:, 0] = labels[:, 1:].sum(1) == 0
    return labels, ambiguous
