"""Demo: a small TC-CLIP trained from random init on synthetic videos on a laptop CPU, then evaluated.

    python -m tcvideo.main --config=configs/demo.py --workdir=/tmp/tcvideo_demo

Four temporal classes in two time-reversed pairs (moving left/right, growing/shrinking): a model
that ignores frame order cannot beat 50%; chance is 25%. Horizontal flips are off (they would
turn 'moving left' into 'moving right').
"""
import ml_collections

from tcvideo.classification.config import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.name = "demo"
    c.protocol = "supervised"
    c.model.variant = "tc_clip"
    c.model.clip = "tiny"  # width 64, 2+2 layers, 32 px, patch 8
    c.model.overrides = ml_collections.ConfigDict(dict(context_tokens=8, tome_r=2, prompt_context_length=16))
    c.data.name = "synthetic"
    c.data.num_frames = 8
    c.data.input_size = 32
    c.data.flip = False
    c.data.color_jitter_p = 0.0
    c.data.grayscale_p = 0.0
    c.data.mixup_prob = 0.0
    c.data.label_smoothing = 0.0
    c.data.synthetic.classes = ("moving left", "moving right", "growing", "shrinking")
    c.data.synthetic.videos_per_class = 32
    c.data.synthetic.test_videos_per_class = 16
    c.data.synthetic.num_frames = 16
    c.data.synthetic.resolution = (36, 36)
    c.batch_size = 16
    c.per_device_batch_size = 4
    c.grad_accum_steps = 1
    c.epochs = 40
    c.warmup_epochs = 2
    c.lr = 1e-3
    c.min_lr = 1e-5
    c.lr_mults.prompt = 1.0
    c.weight_decay = 0.001
    c.grad_clip = 1.0
    c.log_every = 20
    c.checkpoint_every = 100
    c.eval_every = 80
    c.eval.batch_size = 16
    c.eval.num_clips = 1
    c.eval.num_crops = 1
    return c
