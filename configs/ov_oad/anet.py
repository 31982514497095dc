"""OV-OAD pre-trained on ActivityNet v1.3 features with class tags turned into captions, evaluated zero-shot
on THUMOS'14 (mAP) and TVSeries (mcAP). Paths are placeholders: override them on the command line.

    tcvideo train --config=configs/ov_oad/anet.py --workdir=DIR \\
        --config.ov_oad.train.features=/data/anet_feats --config.ov_oad.train.annotations=/data/activity_net.v1-3.min.json
"""
from tcvideo.core.config import config_module

_ov_oad_common = config_module(__file__, "ov_oad_common.py")
eval_target, ov_oad_base_config, thumos14_classes, tvseries_classes = _ov_oad_common.eval_target, _ov_oad_common.ov_oad_base_config, _ov_oad_common.thumos14_classes, _ov_oad_common.tvseries_classes


def get_config():
    c = ov_oad_base_config()
    c.name = "ov_oad_anet"
    c.ov_oad.caption_mode = "class_tags"
    c.ov_oad.train.source = "files"
    c.ov_oad.train.features = "/data/ov_oad/anet_features"
    c.ov_oad.train.annotations = "/data/ov_oad/activity_net.v1-3.min.json"
    c.ov_oad.train.annotation_format = "activitynet"
    c.ov_oad.train.subset = ("training", "validation")  # the released pre-training reads train + val
    c.ov_oad.eval.targets.thumos14 = _ov_oad_common.thumos14_target(
        "/data/ov_oad/thumos_features", "/data/ov_oad/thumos14/annotations_test")
    c.ov_oad.eval.drop_ambiguous_windows = True  # the released THUMOS loader drops windows holding 'Ambiguous'
    c.ov_oad.eval.targets.tvseries = _ov_oad_common.tvseries_target(
        "/data/ov_oad/tvseries_features", "/data/ov_oad/tvseries/GT-test.txt")
    return c
