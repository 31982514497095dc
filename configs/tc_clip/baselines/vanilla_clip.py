"""Vanilla CLIP zero-shot: run `tcvideo eval` with this config (no training). Baseline 'vanilla_clip' on the
zero-shot K400 recipe (same schedule and files as configs/tc_clip/zero_shot_k400.py), prompts the bare class
name as the official zs_eval ("{}" template, no "a photo of a")."""
from tcvideo.core.config import config_module

zero_shot_k400 = config_module(__file__, "../zero_shot_k400.py")


def get_config():
    c = zero_shot_k400.get_config()
    c.name = "vanilla_clip_zero_shot_k400"
    c.model.variant = "vanilla_clip"
    c.prompt_template = "{name}"
    return c
