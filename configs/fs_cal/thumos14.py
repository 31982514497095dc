"""FS-CAL on the THUMOS'14 common-action protocol (5-shot; 1-shot: --config.fs_cal.shots=1).

    tcvideo train --config=configs/fs_cal/thumos14.py --workdir=DIR \
        --config.fs_cal.annotations=/data/thumos14/annotations \
        --config.fs_cal.feature_dir=/data/thumos14/clip_vitb16_snippets

``annotations``: one folder holding the per-class ``<Class>_val.txt`` and ``<Class>_test.txt`` files
(both splits are pooled: the protocol splits classes). THUMOS gives no durations: features are
``tcvideo extract-features --format=npy --fps=1.875`` (one snippet per 16 frames of 30 fps video;
``snippets_per_second`` = 30 / 16). Instances are short, so
queries are 128-snippet windows with short anchors. The 20 classes are split 12/4/4 (seeded) unless
``fs_cal.class_split_file`` gives the benchmark's lists.
"""
from tcvideo.core.config import config_module

protocol_config = config_module(__file__, "common.py").protocol_config


def get_config():
    c = protocol_config("thumos14")
    f = c.fs_cal
    f.snippets_per_second = 30.0 / 16.0
    f.class_fractions = (0.6, 0.2, 0.2)
    f.query_len = 128
    f.support_len = 16
    f.max_gt = 16
    f.model.anchor_scales = (1, 2, 4, 8, 16, 32)
    return c
