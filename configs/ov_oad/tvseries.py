"""Evaluate OV-OAD on TVSeries (per-frame calibrated mAP, background excluded)."""
from tcvideo.core.config import config_module

_ov_oad_common = config_module(__file__, "ov_oad_common.py")
eval_target, ov_oad_base_config, tvseries_classes = _ov_oad_common.eval_target, _ov_oad_common.ov_oad_base_config, _ov_oad_common.tvseries_classes


def get_config():
    c = ov_oad_base_config()
    c.name = "ov_oad_tvseries"
    c.ov_oad.train.source = "synthetic"  # eval only
    c.ov_oad.eval.targets.tvseries = _ov_oad_common.tvseries_target(
        "/data/ov_oad/tvseries_features", "/data/ov_oad/tvseries/GT-test.txt")
    return c
