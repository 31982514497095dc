"""Evaluate OV-OAD on THUMOS'14 (per-frame mAP, background excluded; windows holding an Ambiguous frame dropped, as released):

    tcvideo eval --config=configs/ov_oad/thumos14.py --workdir=TRAINED_WORKDIR \\
        --config.ov_oad.eval.targets.thumos14.features=DIR --config.ov_oad.eval.targets.thumos14.annotations=DIR
"""
from tcvideo.core.config import config_module

_ov_oad_common = config_module(__file__, "ov_oad_common.py")
eval_target, ov_oad_base_config, thumos14_classes = _ov_oad_common.eval_target, _ov_oad_common.ov_oad_base_config, _ov_oad_common.thumos14_classes


def get_config():
    c = ov_oad_base_config()
    c.name = "ov_oad_thumos14"
    c.ov_oad.train.source = "synthetic"  # eval only: no training data is read
    c.ov_oad.eval.targets.thumos14 = _ov_oad_common.thumos14_target(
        "/data/ov_oad/thumos_features", "/data/ov_oad/thumos14/annotations_test")
    c.ov_oad.eval.drop_ambiguous_windows = True  # the released THUMOS loader drops windows holding 'Ambiguous'
    return c
