"""Shared helpers of the trainer tests: a tiny config and subprocess launching."""
import json
import os
import subprocess
import sys

import ml_collections

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def tiny_config(variant: str = "tc_clip", **overrides) -> ml_collections.ConfigDict:
    from tcvideo.classification.config import base_config
    c = base_config()
    c.name = "tiny"
    c.model.variant = variant
    c.model.clip = "tiny"
    if variant in ("tc_clip", "tc_only", "vp_only", "tc_clip_light"):
        c.model.overrides = ml_collections.ConfigDict(dict(context_tokens=4, tome_r=2, prompt_context_length=12))
    else:
        c.model.overrides = ml_collections.ConfigDict(dict(prompt_context_length=12))
    c.data.num_frames = 4
    c.data.input_size = 32
    c.data.flip = False
    c.data.mixup_prob = 0.0  # mixup is drawn per process: it would make 2x2 and 1x4 batches differ
    c.data.synthetic.classes = ("moving left", "moving right", "growing", "shrinking")
    c.data.synthetic.videos_per_class = 8
    c.data.synthetic.test_videos_per_class = 2
    c.data.synthetic.num_frames = 8
    c.data.synthetic.resolution = (32, 32)
    c.batch_size = 8
    c.grad_accum_steps = 1
    c.total_steps = 8
    c.warmup_epochs = 1
    c.lr = 1e-3
    c.min_lr = 1e-5
    c.log_every = 1
    c.checkpoint_every = 2
    c.eval_every = 1000
    c.eval.final = False
    c.eval.batch_size = 8
    c.eval.num_clips = 1
    for k, v in overrides.items():
        node = c
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    return c


def main_cmd(workdir: str, *flags: str) -> list:
    return [sys.executable, "-m", "tcvideo.main", f"--config={os.path.join(REPO, 'tests', 'tiny_train_config.py')}",
            f"--workdir={workdir}", *flags]


def env(devices: int = 4) -> dict:
    e = dict(os.environ)
    e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    e["PYTHONPATH"] = REPO + os.pathsep + os.path.join(REPO, "tests") + os.pathsep + e.get("PYTHONPATH", "")
    e["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return e


def popen(cmd, devices: int = 4, log: str = None):
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, cwd=REPO, env=env(devices), stdout=out, stderr=subprocess.STDOUT)


def losses(workdir: str) -> dict:
    with open(os.path.join(workdir, "train_log.jsonl")) as f:
        recs = [json.loads(l) for l in f]
    return {r["step"]: r["train/loss"] for r in recs}
