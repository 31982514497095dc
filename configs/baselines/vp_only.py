"""Baseline 'vp_only' on the zero-shot K400 recipe (same schedule as configs/tc_clip/zero_shot_k400.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tc_clip"))
import zero_shot_k400  # noqa: E402


def get_config():
    c = zero_shot_k400.get_config()
    c.name = "vp_only_zero_shot_k400"
    c.model.variant = "vp_only"
    return c
