"""Fully supervised K400: 30 epochs, warmup 5, lr 2.2e-5, batch 512, test 4 clips x 3 crops (top-1/top-5)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import recipe  # noqa: E402


def get_config():
    c = recipe("tc_clip_fully_supervised_k400", "supervised", epochs=30, warmup=5, lr=2.2e-5, min_lr=2.2e-7,
               batch=512, clips=4, crops=3)
    c.data.test_split = "val"
    return c
