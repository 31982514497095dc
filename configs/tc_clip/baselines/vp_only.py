"""Baseline 'vp_only' on the zero-shot K400 recipe (same schedule as configs/tc_clip/zero_shot_k400.py)."""
from tcvideo.core.config import config_module

zero_shot_k400 = config_module(__file__, "../zero_shot_k400.py")


def get_config():
    c = zero_shot_k400.get_config()
    c.name = "vp_only_zero_shot_k400"
    c.model.variant = "vp_only"
    return c
