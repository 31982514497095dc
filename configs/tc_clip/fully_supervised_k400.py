"""Fully supervised K400: 30 epochs, warmup 5, lr 2.2e-5, batch 512, test 4 clips x 3 crops (top-1/top-5)."""
from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")
recipe = _common.recipe


def get_config():
    c = recipe("tc_clip_fully_supervised_k400", "supervised", epochs=30, warmup=5, lr=2.2e-5, min_lr=2.2e-7,
               batch=512, clips=4, crops=3)
    c.data.test_split = "val"
    return c
