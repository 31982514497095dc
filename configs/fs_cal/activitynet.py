"""FS-CAL on the ActivityNet 1.3 common-action benchmark (5-shot; 1-shot: --config.fs_cal.shots=1).

    tcvideo train --config=configs/fs_cal/activitynet.py --workdir=DIR \
        --config.fs_cal.annotations=/data/anet/activity_net.v1-3.min.json \
        --config.fs_cal.feature_dir=/data/anet/clip_vitb16_snippets \
        --config.fs_cal.benchmark.test_file=/data/commonLocalization/preprocess/activitynet/test_data.pkl \
        --config.fs_cal.benchmark.gt_file=/data/commonLocalization/preprocess/activitynet/test_gt.json
    tcvideo eval --config=configs/fs_cal/activitynet.py --workdir=DIR (same flags)

Test episodes: with ``benchmark.test_file`` / ``gt_file`` (the ECCV 2020 benchmark's files, from github
PengWan-Yang/commonLocalization), exactly its 1000 episodes, scored by its metric (one AP pooled over
all episodes, ``AP@0.5`` / ``AP@avg``); without them, seeded episodes of the held-out classes saved
to ``test_episodes_file``. Its classes (matched through the annotations) are never training classes.
Annotations: training + validation videos (classes, not videos, are split); features from
``tcvideo extract-features --format=npy --fps=1`` (durations rescale the annotations to the features).
Queries are untrimmed videos of up to 256 snippets (the benchmark's run 32-716 frames at 3 fps, up to
239 s), padded to buckets of 64 / 128 / 256 snippets; training queries come from videos with one
instance of their class, as the benchmark's do. Supports are resampled to 16 segments. The class split
is a seeded 80/10/10 split of the 200 classes unless ``fs_cal.class_split_file`` gives lists.
"""
from tcvideo.core.config import config_module

protocol_config = config_module(__file__, "common.py").protocol_config


def get_config():
    c = protocol_config("activitynet")
    f = c.fs_cal
    f.class_fractions = (0.8, 0.1, 0.1)
    f.query_len = 256
    f.query_buckets = (64, 128, 256)
    f.single_instance = True
    f.support_len = 16
    f.max_gt = 4
    f.model.anchor_scales = (2, 4, 8, 16, 32, 64, 128, 256)
    f.benchmark.test_file = ""  # --config.fs_cal.benchmark.test_file=.../test_data.pkl
    f.benchmark.gt_file = ""  # --config.fs_cal.benchmark.gt_file=.../test_gt.json
    return c
