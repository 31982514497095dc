"""FS-CAL on the ActivityNet 1.3 common-action protocol (5-shot; 1-shot: --config.fs_cal.shots=1).

    tcvideo train --config=configs/fs_cal/activitynet.py --workdir=DIR \
        --config.fs_cal.annotations=/data/anet/activity_net.v1-3.min.json \
        --config.fs_cal.feature_dir=/data/anet/clip_vitb16_snippets

Annotations: training + validation videos (classes, not videos, are split); features from
``tcvideo extract-features --format=npy --fps=1`` (durations rescale the annotations to the features). Queries are windows of 48 snippets (the protocol's queries have 32-716 frames) around one
instance; supports are resampled to 16 segments. The class split is a seeded 80/10/10 split of the 200
classes unless ``fs_cal.class_split_file`` gives the benchmark's lists.
"""
from tcvideo.core.config import config_module

protocol_config = config_module(__file__, "common.py").protocol_config


def get_config():
    c = protocol_config("activitynet")
    f = c.fs_cal
    f.class_fractions = (0.8, 0.1, 0.1)
    f.query_len = 48
    f.support_len = 16
    f.max_gt = 4
    f.model.anchor_scales = (2, 4, 8, 16, 32, 48)
    return c
