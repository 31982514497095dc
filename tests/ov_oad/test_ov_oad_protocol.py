"""The released evaluation protocol and recipe facts: official prompt names (table or a user's file), the
frames the released loaders score, ActivityNet train + val."""
import json
import os

import numpy as np
import pytest

import train_fixtures as tf_
from tcvideo.core.config import ConfigError, load_config_file
from tcvideo.ov_oad import task as task_lib


def _target(cfg, name):
    return cfg.ov_oad.eval.targets[name]


def test_thumos_prompts_use_the_official_lower_case_names():
    cfg = load_config_file(os.path.join(tf_.REPO, "configs", "ov_oad", "thumos14.py"))
    t = _target(cfg, "thumos14")
    names = task_lib.prompt_names("x", t, list(t.classes))
    assert len(names) == len(t.classes) == 21
    assert dict(zip(t.classes, names))["VolleyballSpiking"] == "volleyball spiking"
    assert dict(zip(t.classes, names))["CleanAndJerk"] == "clean and jerk"
    assert t.zero_shot_pool == "means" and cfg.ov_oad.eval.drop_ambiguous_windows
    tv = load_config_file(os.path.join(tf_.REPO, "configs", "ov_oad", "tvseries.py")).ov_oad.eval.targets.tvseries
    assert tv.zero_shot_pool == "single" and task_lib.prompt_names("x", tv, list(tv.classes))[0] == "Background"


def test_prompt_names_file_overrides_and_its_errors_name_the_field(tmp_path):
    import ml_collections
    path = tmp_path / "names.txt"
    path.write_text("background\nhigh jump\n\nlong jump\n")  # blank lines are skipped
    t = ml_collections.ConfigDict(dict(prompt_names=("a", "b", "c"), prompt_names_file=str(path)))
    assert task_lib.prompt_names("p", t, ["background", "HighJump", "LongJump"]) == ["background", "high jump",
                                                                                    "long jump"]
    with pytest.raises(ConfigError, match=r"p\.prompt_names_file: 3 names for 2 classes"):
        task_lib.prompt_names("p", t, ["background", "HighJump"])
    t.prompt_names_file = ""
    assert task_lib.prompt_names("p", t, ["x", "y", "z"]) == ["a", "b", "c"]
    t.prompt_names = ()
    assert task_lib.prompt_names("p", t, ["x", "y"]) == ["x", "y"]


def test_scored_frames_are_the_released_loaders_windows():
    # window 4, 12 frames, dec_steps 3: the loader's windows end at frames 3 .. 12 - 3 - 1 = 8.
    keep = task_lib.scored_frames(12, 4, True, 3)
    np.testing.assert_array_equal(np.nonzero(keep)[0], np.arange(3, 9))
    np.testing.assert_array_equal(np.nonzero(task_lib.scored_frames(12, 4, False, 0))[0], np.arange(12))
    assert not task_lib.scored_frames(3, 4, True, 0).any()  # shorter than a window: nothing scored


def test_activitynet_pretraining_reads_train_and_val(tmp_path):
    from data_pipelines.temporal import annotations as ann
    an = tmp_path / "anet.json"
    an.write_text(json.dumps({"database": {
        "a": {"subset": "training", "duration": 9.0, "annotations": [{"segment": [1.0, 4.0], "label": "Surfing"}]},
        "b": {"subset": "validation", "duration": 9.0, "annotations": [{"segment": [2.0, 3.0], "label": "Archery"}]},
        "c": {"subset": "testing", "duration": 9.0, "annotations": []}}}))
    cfg = load_config_file(os.path.join(tf_.REPO, "configs", "ov_oad", "anet.py"))
    assert sorted(ann.load_segments(str(an), "activitynet", subset=cfg.ov_oad.train.subset)) == ["a", "b"]
    assert sorted(ann.load_segments(str(an), "activitynet", subset="training")) == ["a"]
