"""FS-CAL demo on synthetic per-snippet features (CPU, about a minute):

    python -m tcvideo.main --config=configs/fs_cal/synthetic_demo.py --workdir=/tmp/fs_cal_demo
    tcvideo eval --config=configs/fs_cal/synthetic_demo.py --workdir=/tmp/fs_cal_demo

48 classes (36 train / 6 val / 6 test, novel at test time); each 64-snippet query holds one instance of
the episode's class and one distractor instance of another class, so a model must use the supports to
tell which one to localise.
"""
import ml_collections

from tcvideo.fs_cal.task import fs_cal_base_config


def get_config() -> ml_collections.ConfigDict:
    c = fs_cal_base_config()
    c.name = "fs_cal_synthetic"
    f = c.fs_cal
    f.dataset = "synthetic"
    f.synthetic.update(dict(num_classes=48, videos_per_class=6, video_len=64, feature_dim=16, min_len=6,
                            max_len=16, distractors=1, noise=0.5, seed=0))
    f.class_fractions = (0.75, 0.125, 0.125)
    f.shots = 5
    f.query_len = 64
    f.support_len = 8
    f.max_gt = 4
    f.test_episodes = 200
    f.val_episodes = 64
    f.pseudo_labels = "kmeans"
    f.model.update(dict(hidden_dim=64, anchor_scales=(4, 8, 16), context_ratio=0.25, dynamics_kernels=(1, 2),
                        num_pseudo_classes=4))
    c.batch_size = 16
    c.per_device_batch_size = 16
    c.grad_accum_steps = 1
    c.total_steps = 300
    c.warmup_epochs = 2
    c.lr = 3e-3
    c.min_lr = 3e-5
    c.weight_decay = 1e-4
    c.grad_clip = 1.0
    c.log_every = 50
    c.checkpoint_every = 300
    c.eval_every = 100
    c.eval.batch_size = 16
    return c
