"""OV-OAD on synthetic long videos (feature level) on a laptop CPU: tiny model, 32-d features, 16-frame window.

    tcvideo train --config=configs/ov_oad/synthetic.py --workdir=/tmp/ov_oad_demo
"""
import ml_collections

from tcvideo.core.config import config_module

_ov_oad_common = config_module(__file__, "ov_oad_common.py")
ov_oad_base_config = _ov_oad_common.ov_oad_base_config


def get_config():
    c = ov_oad_base_config()
    c.name = "ov_oad_synthetic"
    o = c.ov_oad
    o.model = ml_collections.ConfigDict(dict(
        feature_dim=32, window=16, num_neighbour=4, num_heads=4, dntr_layers=2, cluster_layers=1,
        num_group_tokens=4, group_mlp_hidden=32, out_layers=1, proj_dim=32, proj_hidden=64, dropout=0.0,
        drop_path=0.0, zero_shot_clip=False, score_fusion="released", text_adapter_dim=8))
    o.require_clip = False  # the demo trains its tiny text tower from random weights
    o.eval.full_windows_only = False  # the demo scores every frame (the released loaders skip the first W - 1
    o.eval.drop_last_frames = 0  # and the last 8 frames of each video)
    o.text = "tiny"
    o.text_overrides = ml_collections.ConfigDict(dict(text_width=32, text_layers=1, text_heads=2, embed_dim=32))
    o.context_length = 12
    o.exclude_last = 4
    o.synthetic.classes = ("jumping", "running", "swimming", "cooking")
    o.synthetic.train_videos = 8
    o.synthetic.test_videos = 4
    o.synthetic.num_frames = 120
    o.eval.batch_size = 64
    c.batch_size = 32
    c.per_device_batch_size = 8
    c.grad_accum_steps = 1
    c.compute_dtype = "float32"
    c.epochs = 6
    c.total_steps = 150
    c.warmup_epochs = 1
    c.lr = 2e-3
    c.min_lr = 1e-4
    c.weight_decay = 0.05
    c.log_every = 25
    c.checkpoint_every = 150
    c.eval_every = 100000
    return c
