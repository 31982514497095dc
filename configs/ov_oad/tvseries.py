"""Evaluate OV-OAD on TVSeries (per-frame calibrated mAP, background excluded)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ov_oad_common import eval_target, ov_oad_base_config, tvseries_classes  # noqa: E402


def get_config():
    c = ov_oad_base_config()
    c.name = "ov_oad_tvseries"
    c.ov_oad.train.source = "synthetic"  # eval only
    c.ov_oad.eval.targets.tvseries = eval_target(
        "files", "/data/ov_oad/tvseries_features", "/data/ov_oad/tvseries/GT-test.txt", "tvseries",
        tvseries_classes(), "mcAP")
    return c
