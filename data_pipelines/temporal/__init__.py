"""Online action detection (OV-OAD) data: per-video frame features at 4 fps, frame labels, video-text
training windows, synthetic long videos, annotation parsers and feature files.

* ``video.py``: ``OADVideo`` (features [T, D], fps, segments) and the spec's frame-label rule.
* ``synthetic.py``: generated long videos with action segments of known classes, background and a
  caption per segment (feature level).
* ``windows.py``: training windows (32 frames, stride 1) with captions (ActivityNet class tags or real
  captions), as a pure function of (seed, step); sliding eval windows.
* ``annotations.py``: THUMOS'14 / TVSeries / ActivityNet 1.3 / caption files.
* ``features.py``: released per-video feature files and the TFDS dataset written by
  ``tcvideo extract-features``.
"""
