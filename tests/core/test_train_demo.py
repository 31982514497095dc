"""The main job on its default (configs/demo.py), run once as a person runs it (a subprocess, stdout not a
terminal): TC-CLIP and the frame-mean baseline ViFi-CLIP on 'steady colour' / 'colour change', side by side.
Every test below reads the same run (plus one `-v` evaluation of its TC-CLIP). Slow: the demo's full schedule
for both models, ~135 CPU-seconds (measured; wall time depends on what else runs).
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest

import train_fixtures as tf_

# absl's line format (orbax, clu and the trainer log through it): 'I1202 00:11:08.123456 140 file.py:12] ...'
ABSL_INFO = re.compile(r"^I\d{4} \d\d:\d\d:\d\d")


def _run(cmd, timeout=900):
    return subprocess.run(cmd, cwd=tf_.REPO, env=tf_.env(devices=1), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("demo"))
    t = time.time()
    p = _run([sys.executable, "-m", "tcvideo.main", f"--workdir={wd}"])
    with open(os.path.join(os.path.dirname(wd), "demo_stdout.txt"), "w") as f:  # kept for reading, outside wd
        f.write(p.stdout + f"\n[wall time {time.time() - t:.0f} s]\n--- stderr\n" + p.stderr)
    with open(os.path.join(wd, "eval_results.json")) as f:
        results = json.load(f)
    return {"wd": wd, "proc": p, "out": p.stdout.splitlines(), "results": results}


def test_demo_exits_cleanly(demo):
    assert demo["proc"].returncode == 0, demo["proc"].stderr[-3000:]


def test_demo_output_is_short_and_free_of_library_info(demo):
    out = demo["out"]
    assert len(out) <= 40, "\n".join(out)
    assert not [l for l in out if ABSL_INFO.match(l)], "\n".join(out)
    err = demo["proc"].stderr.splitlines()
    assert not [l for l in err if ABSL_INFO.match(l)], "\n".join(err[:50])
    assert not [l for l in out + err if "CheckpointManagerOptions" in l or "_NonBlockingMetadataStore" in l]


def test_demo_prints_the_side_by_side_table_and_where_things_are(demo):
    out, wd = demo["out"], demo["wd"]
    header = next(i for i, l in enumerate(out) if l.startswith("run ") and "top1" in l)
    assert out[header + 1].startswith("tc_clip ")
    assert out[header + 2].startswith("vifi_clip ")
    assert f"workdir:      {wd}" in out
    assert f"TensorBoard:  tensorboard --logdir {wd}" in out
    assert f"curves:       {os.path.join(wd, 'curves.png')}" in out


def test_tc_clip_learns_the_classes_and_the_frame_mean_baseline_cannot(demo):
    tc = demo["results"]["tc_clip"]["fine_tuned"]["results"]["synthetic"]
    vifi = demo["results"]["vifi_clip"]["fine_tuned"]["results"]["synthetic"]
    assert tc["count"] == 64
    assert vifi["count"] == 64
    # 2 classes, chance 50% (binomial std over 64 videos ~6%). Measured: TC-CLIP 100.0 (twice).
    assert tc["top1"] >= 90.0, tc
    # A sum of per-frame scores gets at least one of steady-a / steady-b / change-(a, b) wrong: <= ~75% over
    # the population; 85 = that bound plus ~2 binomial std over 64 videos. Measured 50.0 and 68.75.
    assert vifi["top1"] <= 85.0, vifi


def test_demo_compiles_each_step_once_and_measures_input_wait(demo):
    for label in ("tc_clip", "vifi_clip"):
        r = demo["results"][label]
        assert r["train_step_compilations"] == 1, label  # evaluations between steps: compiled once
        assert r["eval_step_compilations"] == 1, label
    log = [json.loads(line) for line in open(os.path.join(demo["wd"], "tc_clip", "train_log.jsonl"))]
    rates = [r for r in log if "input_bound_fraction" in r]
    assert len(rates) == 16  # one per log line (every 20 of 320 steps)
    # Device-idle time while waiting for input is a part of the host's input wait.
    assert all(0.0 <= r["input_bound_fraction"] <= r["input_wait_fraction"] for r in rates), rates


def test_demo_writes_curves_parameters_and_the_library_log(demo):
    from PIL import Image
    wd = demo["wd"]
    with Image.open(os.path.join(wd, "curves.png")) as im:
        assert im.size[0] > 200
    for label in ("tc_clip", "vifi_clip"):
        assert os.path.exists(os.path.join(wd, label, "curves.png")), label
        assert os.path.exists(os.path.join(wd, label, "config.json")), label
        assert "visual/" in open(os.path.join(wd, label, "parameters.txt")).read(), label
    # what the screen did not show is in the log file
    log = open(os.path.join(wd, "tc_clip", "log.txt")).read()
    assert "orbax" in log


def test_verbose_brings_the_library_logs_back(demo):
    """``-v`` on a cheap command of the same workdir (evaluation of the trained TC-CLIP)."""
    wd = demo["wd"]
    p = _run([sys.executable, "-m", "tcvideo.main", "-v", "--mode=eval", f"--checkpoint={os.path.join(wd, 'tc_clip')}",
              f"--workdir={os.path.join(wd, 'eval_v')}"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert [l for l in p.stderr.splitlines() if ABSL_INFO.match(l)], p.stderr[-3000:]
