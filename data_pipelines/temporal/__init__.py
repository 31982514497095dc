"""Untrimmed-video data of OV-OAD (online action detection) and FS-CAL (few-shot common action
localisation): per-video frame features, segments, frame labels, training windows and episodes.

* ``video.py``: ``Segment`` (the one annotated-interval type), ``OADVideo`` (features [T, D], fps,
  segments) and the spec's frame-label rule.
* ``synthetic.py``: generated long videos with action segments of known classes, background and a
  caption per segment (feature level).
* ``windows.py``: training windows (32 frames, stride 1) with captions (ActivityNet class tags or real
  captions), as a pure function of (seed, step); sliding eval windows.
* ``annotations.py``: THUMOS'14 / TVSeries / ActivityNet 1.3 / caption files; ``to_snippets`` (seconds ->
  snippet units of a feature array, FS-CAL).
* ``features.py``: the one reader of per-video feature files (``.pkl`` / ``.npz`` / ``.npy``, optionally
  memory-mapped) and the TFDS dataset written by ``tcvideo extract-features``.
* ``sources.py``, ``episodes.py``: FS-CAL's feature sources (files or synthetic), class splits, episodes.
"""
