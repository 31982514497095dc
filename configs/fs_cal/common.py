"""Shared settings of the FS-CAL common-action protocols (ActivityNet 1.3, THUMOS'14).

Benchmark (the ECCV 2020 common-action protocol): disjoint train / val / test classes; episodes of one
query and S = 1 or 5 supports of one class (``--config.fs_cal.shots=1``); 1000 fixed test episodes
(written next to the features on first use, see ``test_episodes_file``); mAP at tIoU 0.5 and averaged
over 0.5:0.05:0.95 after NMS 0.4 with the top 300 proposals. Features: CLIP ViT-B/16 frame features, one
snippet per 1/fps s, written by ``tcvideo extract-features --format=npy --fps=FPS`` (one
<video_id>.npy [T, 768] per video in ``fs_cal.feature_dir``); set ``fs_cal.snippets_per_second`` to
the same FPS.
"""
import ml_collections

from tcvideo.fs_cal.task import fs_cal_base_config


def protocol_config(dataset: str) -> ml_collections.ConfigDict:
    c = fs_cal_base_config()
    c.name = f"fs_cal_{dataset}"
    f = c.fs_cal
    f.dataset = dataset
    f.annotations = ""  # set on the command line: --config.fs_cal.annotations=...
    f.feature_dir = ""  # --config.fs_cal.feature_dir=...
    f.shots = 5
    f.test_episodes = 1000
    f.val_episodes = 200
    f.test_episodes_file = "auto"  # <feature_dir>/fs_cal_test_episodes_<dataset>_<S>shot_s<seed>.json
    f.nms_threshold = 0.4
    f.top_k = 300
    f.model.update(dict(hidden_dim=256, context_ratio=0.25, dynamics_kernels=(1, 2, 4), softmax_over="rows",
                        num_pseudo_classes=16))
    c.batch_size = 32
    c.per_device_batch_size = 32
    c.grad_accum_steps = 1
    c.total_steps = 20000
    c.warmup_epochs = 1
    c.lr = 1e-4
    c.min_lr = 1e-6
    c.weight_decay = 1e-4
    c.grad_clip = 1.0
    c.log_every = 100
    c.checkpoint_every = 2000
    c.eval_every = 2000
    c.eval.batch_size = 32
    return c
