"""Evaluate OV-OAD on THUMOS'14 (per-frame mAP, background excluded; ambiguous-window drop off):

    tcvideo eval --config=configs/ov_oad/thumos14.py --workdir=TRAINED_WORKDIR \\
        --config.ov_oad.eval.targets.thumos14.features=DIR --config.ov_oad.eval.targets.thumos14.annotations=DIR
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ov_oad_common import eval_target, ov_oad_base_config, thumos14_classes  # noqa: E402


def get_config():
    c = ov_oad_base_config()
    c.name = "ov_oad_thumos14"
    c.ov_oad.train.source = "synthetic"  # eval only: no training data is read
    c.ov_oad.eval.targets.thumos14 = eval_target(
        "files", "/data/ov_oad/thumos_features", "/data/ov_oad/thumos14/annotations_test", "thumos14",
        thumos14_classes(), "mAP")
    return c
