"""Demo (the main job's default): a small TC-CLIP and the frame-mean baseline ViFi-CLIP, trained from
random init on the same synthetic videos under the same budget, evaluated on held-out videos side by side.

    python -m tcvideo.main --workdir=/tmp/tcvideo_demo        (same as --config=configs/demo.py)

Classes: "steady colour" (a shape keeps one colour) and "colour change" (it switches to another colour
halfway through the clip). Colour, shape, place and background are random per video, so every single
frame has the same distribution in both classes: only comparing frames of one video tells them apart.
Chance is 50%.

Why the frame-mean baseline cannot solve them: ViFi-CLIP encodes each frame alone and averages the frame
embeddings; its text features are the same for every video, and the final L2 normalisation does not change
which class scores highest. So its prediction is the argmax over classes of a sum of per-frame scores. A
"colour change" video of colours (a, b) has, up to pixel noise, half the frames of a steady-a video and half
of a steady-b one (the same shape, place, background), so its scores are the mean of theirs: if both steady
videos score higher for "steady colour", so does the change video. For every (shape, place, background) at
least one of steady-a, steady-b, change-(a, b) is wrong: the baseline cannot pass about 75% (it is an XOR of
frames). TC-CLIP's frames attend to context tokens gathered from all frames of the video (and its prompts
are conditioned on them), so a frame can compare its colour to the others' colours. Measured (1 CPU device,
two runs): TC-CLIP 100% and 100%, ViFi-CLIP 50% and 68.75% top-1 on 64 held-out videos (tcvideo's numbers).

Run twice: ``config.compare`` trains each label in ``workdir/<label>`` ("tc_clip": this config as it is,
"vifi_clip": ``model.variant='vifi_clip'``); ``train.train_and_evaluate`` (notebooks) trains this config
alone, TC-CLIP. Horizontal flips, colour jitter and grayscale are off (they would change colours).
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
    c.data.num_frames = 4
    c.data.input_size = 32
    c.data.flip = False
    c.data.color_jitter_p = 0.0
    c.data.grayscale_p = 0.0
    c.data.mixup_prob = 0.0
    c.data.label_smoothing = 0.0
    c.data.synthetic.classes = ("steady colour", "colour change")
    c.data.synthetic.videos_per_class = 256
    c.data.synthetic.test_videos_per_class = 32
    c.data.synthetic.num_frames = 16
    c.data.synthetic.resolution = (36, 36)
    c.batch_size = 16
    c.per_device_batch_size = 4
    c.grad_accum_steps = 1
    c.epochs = 10  # 512 videos, 32 steps per epoch: 320 steps
    c.warmup_epochs = 2
    c.lr = 1e-3
    c.min_lr = 1e-5
    c.lr_mults.prompt = 1.0
    c.weight_decay = 0.001
    c.grad_clip = 1.0
    c.log_every = 20
    c.checkpoint_every = 160
    c.eval_every = 80
    c.eval.batch_size = 16
    c.eval.num_clips = 1
    c.eval.num_crops = 1
    # label -> overrides of this config: each is trained and evaluated in workdir/<label>, side by side
    c.compare = ml_collections.ConfigDict()
    c.compare.tc_clip = ml_collections.ConfigDict()
    c.compare.vifi_clip = ml_collections.ConfigDict(dict(model=dict(variant="vifi_clip")))
    return c
