"""Bad configs fail before any compute, with one line naming the field."""
import json
import os
import subprocess

import pytest

import train_fixtures as tf_
from tcvideo.core import train
from tcvideo.core.config import ConfigError


def _fails(cfg, field, tmp_path):
    wd = str(tmp_path / "wd")
    with pytest.raises(ConfigError) as e:
        train.train_and_evaluate(cfg, wd)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"config.{field}:"), msg
    assert not os.path.exists(wd), "work started before validation"
    return msg


def test_unknown_dataset(tmp_path):
    _fails(tf_.tiny_config(**{"data.name": "kinetics9000"}), "data.name", tmp_path)


def test_unknown_eval_dataset(tmp_path):
    from tcvideo.classification.config import eval_target
    cfg = tf_.tiny_config()
    cfg.eval.datasets.hmdb_s1 = eval_target("hmdb51", name="video_folder", data_dir=str(tmp_path / "nope"))
    _fails(cfg, "eval.datasets.hmdb_s1.data.data_dir", tmp_path)


def test_frames_not_matching_checkpoint(tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "model.json").write_text(json.dumps({"model": "tc_clip", "config": {"num_frames": 16}}))
    _fails(tf_.tiny_config(init_checkpoint=str(ck)), "data.num_frames", tmp_path)


def test_context_tokens_larger_than_seeds(tmp_path):
    cfg = tf_.tiny_config()
    cfg.model.overrides.context_tokens = 1000
    msg = _fails(cfg, "model.overrides.context_tokens", tmp_path)
    assert "seed" in msg


def test_few_shot_k_larger_than_available(tmp_path):
    _fails(tf_.tiny_config(**{"data.few_shot_k": 50}), "data.few_shot_k", tmp_path)


def test_missing_files(tmp_path):
    _fails(tf_.tiny_config(init_clip=str(tmp_path / "ViT-B-16.pt")), "init_clip", tmp_path)
    _fails(tf_.tiny_config(llm_descriptions=str(tmp_path / "k400.json")), "llm_descriptions", tmp_path)


def test_bad_values(tmp_path):
    _fails(tf_.tiny_config(compute_dtype="float8"), "compute_dtype", tmp_path)
    _fails(tf_.tiny_config(batch_size=6), "batch_size", tmp_path)  # 6 rows cannot spread over 4 devices
    _fails(tf_.tiny_config(**{"model.variant": "tc_clip_xl"}), "model.variant", tmp_path)


def test_command_line_one_line_error(tmp_path):
    wd = str(tmp_path / "wd")
    r = subprocess.run(tf_.main_cmd(wd, "--config.data.name=nope"), cwd=tf_.REPO, env=tf_.env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: config.data.name: unknown dataset 'nope'"), r.stderr[-2000:]
    assert not os.path.exists(wd)


def test_every_config_file_loads_in_one_process():
    """All configs/**.py get_config() in one process: folders' same-named helpers (common.py) must not
    collide (they are imported by path through core.config.config_module)."""
    import glob
    from tcvideo.core.config import load_config_file
    files = [f for f in sorted(glob.glob(os.path.join(tf_.REPO, "configs", "**", "*.py"), recursive=True))
             if not f.endswith("common.py")]
    names = {os.path.relpath(f, tf_.REPO): load_config_file(f) for f in files}
    assert len(names) >= 21
    assert names["configs/victr/few_shot.py"].model.family == "victr"
    assert names["configs/tc_clip/few_shot.py"].model.family == "tc_clip"
    assert names["configs/fs_cal/thumos14.py"].task == "fs_cal"
