"""tcvideo: CLIP-based video understanding in JAX/Flax (TC-CLIP, OV-OAD, VicTR, FS-CAL)."""

__version__ = "0.1.0"


def load_tc_clip(model_dir: str, **kwargs):
    """Load a converted TC-CLIP directory as a VideoClassifier (see tcvideo.classification.inference)."""
    from tcvideo.classification.inference import load_tc_clip as _load
    return _load(model_dir, **kwargs)
