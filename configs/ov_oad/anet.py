"""OV-OAD pre-trained on ActivityNet v1.3 features with class tags turned into captions, evaluated zero-shot
on THUMOS'14 (mAP) and TVSeries (mcAP). Paths are placeholders: override them on the command line.

    tcvideo train --config=configs/ov_oad/anet.py --workdir=DIR \\
        --config.ov_oad.train.features=/data/anet_feats --config.ov_oad.train.annotations=/data/activity_net.v1-3.min.json
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ov_oad_common import eval_target, ov_oad_base_config, thumos14_classes, tvseries_classes  # noqa: E402


def get_config():
    c = ov_oad_base_config()
    c.name = "ov_oad_anet"
    c.ov_oad.caption_mode = "class_tags"
    c.ov_oad.train.source = "files"
    c.ov_oad.train.features = "/data/ov_oad/anet_features"
    c.ov_oad.train.annotations = "/data/ov_oad/activity_net.v1-3.min.json"
    c.ov_oad.train.annotation_format = "activitynet"
    c.ov_oad.train.subset = "training"
    c.ov_oad.eval.targets.thumos14 = eval_target(
        "files", "/data/ov_oad/thumos_features", "/data/ov_oad/thumos14/annotations_test", "thumos14",
        thumos14_classes(), "mAP")
    c.ov_oad.eval.targets.tvseries = eval_target(
        "files", "/data/ov_oad/tvseries_features", "/data/ov_oad/tvseries/GT-test.txt", "tvseries",
        tvseries_classes(), "mcAP")
    return c
