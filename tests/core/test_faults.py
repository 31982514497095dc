"""Faults a long run meets end in one line and lose nothing (issue 23): an unreadable checkpoint on restart
(moved aside, the newest readable one resumed; all processes agree), a restart with another model, a failed
save, an input file that goes away mid-run. Each rerun from the reported step reaches the parameters of a
clean run bit for bit.

The runs are in-process (a subprocess only for the exit status and for 2 processes) and share one tiny
4-step reference run; a persistent compilation cache for this module makes every run after the first
skip compiling the train step.
"""
import errno
import json
import logging
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import train_fixtures as tf_
from tcvideo.core import checkpoints, train
from tcvideo.core.checkpoints import finalized_steps, load_checkpoint_params
from tcvideo.core.config import ConfigError, InputError, RunError, check_restart_config

TOTAL = 4  # steps; checkpoints at 2 and 4


def _cfg(**kw):
    return tf_.tiny_config("vifi_clip", **{"total_steps": TOTAL, "checkpoint_every": 2, **kw})


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """A clean 4-step run: its workdir and the params of its checkpoints 2 and 4."""
    from jax.experimental.compilation_cache import compilation_cache as cc
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    old = {k: getattr(jax.config, k) for k in keys}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    cc.reset_cache()
    wd = str(tmp_path_factory.mktemp("faults") / "ref")
    train.train_and_evaluate(_cfg(), wd)
    yield {"workdir": wd, 2: load_checkpoint_params(wd, 2), 4: load_checkpoint_params(wd, 4)}
    for k, v in old.items():
        jax.config.update(k, v)
    cc.reset_cache()


def _copy(ref, tmp_path, name="wd") -> str:
    wd = str(tmp_path / name)
    shutil.copytree(ref["workdir"], wd)
    return wd


def _assert_same(a, b):
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb):
        assert np.array_equal(x, y), f"params differ at {jax.tree_util.keystr(path)}"


def _corrupt(wd: str, step: int) -> str:
    """Flip bytes of the largest data file of checkpoint ``step`` (what a bad disk sector does)."""
    d = os.path.join(wd, "checkpoints", str(step))
    files = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
    big = max(files, key=os.path.getsize)
    data = bytearray(open(big, "rb").read())
    for i in range(64, len(data) - 64, 997):
        data[i] ^= 0xFF
    open(big, "wb").write(bytes(data))
    return big


def _tree_listing(root: str) -> dict:
    return {os.path.relpath(os.path.join(r, f), root): os.path.getsize(os.path.join(r, f))
            for r, _, fs in os.walk(root) for f in fs}


def _warnings(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ----------------------------------------------------------------------------- 1. unreadable checkpoint

def test_unreadable_checkpoint_moved_aside_and_the_newest_readable_resumed(ref, tmp_path, caplog):
    wd = _copy(ref, tmp_path)
    _corrupt(wd, 4)
    with caplog.at_level(logging.WARNING):
        train.train_and_evaluate(_cfg(), wd)
    report = [m for m in _warnings(caplog) if m.startswith("checkpoint step 4 ")]
    assert len(report) == 1, _warnings(caplog)
    assert "\n" not in report[0]
    assert os.path.join(wd, "checkpoints", "4") in report[0]
    assert "Data corruption detected" in report[0]  # the library's reason
    assert "resuming from step 2, the newest readable checkpoint" in _warnings(caplog)
    # moved aside whole, not deleted
    moved = os.path.join(wd, "unreadable_checkpoints", "4")
    assert _tree_listing(moved) == _tree_listing(os.path.join(ref["workdir"], "checkpoints", "4"))
    # the earlier checkpoint is untouched, and training on from it reaches the clean run's step 4
    _assert_same(load_checkpoint_params(wd, 2), ref[2])
    _assert_same(load_checkpoint_params(wd, 4), ref[4])


def test_no_readable_checkpoint_stops_and_changes_nothing(ref, tmp_path):
    wd = _copy(ref, tmp_path)
    _corrupt(wd, 4)
    _corrupt(wd, 2)
    before = _tree_listing(wd)
    with pytest.raises(RunError) as e:
        train.train_and_evaluate(_cfg(), wd)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"no readable checkpoint in {os.path.join(wd, 'checkpoints')}: step 4: "), msg
    assert "; step 2: " in msg
    assert msg.endswith("nothing was changed (restore a checkpoint from a backup, or start in a new --workdir)")
    assert _tree_listing(wd) == before
    assert not os.path.exists(os.path.join(wd, "unreadable_checkpoints"))


# ----------------------------------------------------------------------------- 2. another config

def _fake_workdir(tmp_path, cfg) -> str:
    wd = tmp_path / "fake"
    (wd / "checkpoints" / "2").mkdir(parents=True)
    train.save_resolved_config(cfg, str(wd))
    return str(wd)


def test_restart_with_another_model_stops_before_compute(ref, tmp_path):
    wd = _copy(ref, tmp_path)
    before = _tree_listing(wd)
    saved = open(os.path.join(wd, "config.json")).read()
    with pytest.raises(ConfigError) as e:
        train.train_and_evaluate(_cfg(**{"model.variant": "vanilla_clip"}), wd)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"config.model.variant: differ from the run in {wd} ({wd}/config.json): "
                          "model.variant 'vanilla_clip' (saved 'vifi_clip'); "), msg
    assert msg.endswith(f"use a new --workdir, or resume with the saved values (--config={wd}/config.py)")
    assert open(os.path.join(wd, "config.json")).read() == saved
    assert _tree_listing(wd) == before


@pytest.mark.parametrize("field,value", [("seed", 1), ("data.num_frames", 8), ("batch_size", 16),
                                         ("total_steps", 8), ("data.name", "video_folder")])
def test_state_changing_fields_are_refused(tmp_path, field, value):
    wd = _fake_workdir(tmp_path, _cfg())
    with pytest.raises(ConfigError, match=rf"^config\.{field}: differ from the run"):
        check_restart_config(_cfg(**{field: value}), wd)


def test_state_neutral_fields_are_allowed_and_listed(tmp_path):
    wd = _fake_workdir(tmp_path, _cfg())
    changed = check_restart_config(_cfg(log_every=5, **{"eval.batch_size": 4, "data.prefetch": 4}), wd,
                                   extra_neutral=("data.prefetch",))
    assert changed == ["data.prefetch 2 -> 4", "eval.batch_size 8 -> 4", "log_every 1 -> 5"]
    # a task's neutral field is only neutral when the task declares it
    with pytest.raises(ConfigError, match=r"^config\.data\.prefetch: "):
        check_restart_config(_cfg(**{"data.prefetch": 4}), wd)
    # a config may declare more, at its own risk
    assert check_restart_config(_cfg(remat=True, resume_allowed_changes=("remat",)), wd) == [
        "remat False -> True", "resume_allowed_changes [] -> ['remat']"]
    with pytest.raises(ConfigError, match=r"^config\.remat: "):
        check_restart_config(_cfg(remat=True), wd)


def test_restart_with_state_neutral_changes_resumes(ref, tmp_path, caplog):
    wd = _copy(ref, tmp_path)
    with caplog.at_level(logging.WARNING):
        train.train_and_evaluate(_cfg(log_every=2, **{"eval.batch_size": 4}), wd)
    assert f"restarting {wd} with changed settings that leave the train state alone: eval.batch_size 8 -> 4; " \
           "log_every 1 -> 2" in _warnings(caplog)
    assert json.load(open(os.path.join(wd, "config.json")))["log_every"] == 2
    _assert_same(load_checkpoint_params(wd, 4), ref[4])


# ----------------------------------------------------------------------------- 3. save failures

def _enospc_at(monkeypatch, step: int):
    """The checkpoint writer of orbax fails with 'No space left on device' for checkpoint ``step``."""
    from orbax.checkpoint._src.handlers import base_pytree_checkpoint_handler as bp
    orig = bp.BasePyTreeCheckpointHandler.async_save

    async def async_save(self, directory, *a, **k):
        if os.path.basename(os.path.dirname(str(directory))).split(".")[0] == str(step):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
        return await orig(self, directory, *a, **k)

    monkeypatch.setattr(bp.BasePyTreeCheckpointHandler, "async_save", async_save)


def test_disk_full_stops_naming_step_and_path_and_keeps_the_previous_checkpoint(ref, tmp_path, monkeypatch):
    wd = str(tmp_path / "wd")
    _enospc_at(monkeypatch, 4)
    with pytest.raises(RunError) as e:
        train.train_and_evaluate(_cfg(), wd)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"checkpoint save failed at step 4 ({wd}/checkpoints/4): OSError: [Errno 28] No space "
                          "left on device"), msg
    assert msg.endswith("training stopped; the previous checkpoint (step 2) is intact and a restart resumes from it")
    # the failed save left at most orbax's tmp folder, which is not a checkpoint
    assert finalized_steps(os.path.join(wd, "checkpoints")) == [2]
    _assert_same(load_checkpoint_params(wd, 2), ref[2])
    monkeypatch.undo()
    train.train_and_evaluate(_cfg(), wd)
    _assert_same(load_checkpoint_params(wd, 4), ref[4])


def test_failed_background_save_is_named_at_the_next_wait(tmp_path, monkeypatch):
    """An asynchronous save that fails in orbax's background thread (here its finalize step) is reported
    with its step when the trainer next waits, not as a bare OSError."""
    import jax.numpy as jnp
    from orbax.checkpoint._src.handlers import base_pytree_checkpoint_handler as bp
    latest, best = checkpoints._managers(str(tmp_path), _cfg(async_checkpointing=True))
    state = {"w": jnp.arange(8.0), "step": jnp.int32(0)}
    checkpoints._save(latest, state, 1)
    checkpoints.finish_saves(latest)

    def finalize(self, directory):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(directory))

    monkeypatch.setattr(bp.BasePyTreeCheckpointHandler, "finalize", finalize)
    checkpoints._save(latest, state, 2)  # returns: the failure is in the background
    with pytest.raises(RunError, match=rf"^checkpoint save failed at step 2 \({tmp_path}/checkpoints/2\): PermissionError: "
                                       r"\[Errno 13\] Permission denied.*previous checkpoint \(step 1\) is intact"):
        checkpoints.finish_saves(latest)
    assert finalized_steps(str(tmp_path / "checkpoints")) == [1]
    best.close()


# ----------------------------------------------------------------------------- 4. input failures

class _NpyShards:
    """Each training video of the synthetic dataset stored as one .npy 'shard'; all of them go away (an
    unmounted disk) once ``vanish_after`` examples were read."""

    def __init__(self, files, vanish_after: int):
        self.files, self.vanish_after, self.reads = files, vanish_after, 0

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        if self.reads == self.vanish_after:
            for f in self.files:
                os.replace(f, f + ".gone")
        self.reads += 1
        return {"video": np.load(self.files[i])}


def _register_shard_dataset():
    """'fault_test_shards': the synthetic dataset of config.synthetic, its train split read from .npy files
    in config.data_dir through VideoFolderSplit.get_frames (the TFDS reader's error handling)."""
    from data_pipelines.video import DATASETS, get_dataset, register_dataset
    from data_pipelines.video.video_folder import VideoFolderSplit
    if "fault_test_shards" in DATASETS:
        return

    class Split(VideoFolderSplit):
        is_jpeg = False

        def __init__(self, base, directory, vanish_after):
            os.makedirs(directory, exist_ok=True)
            files = []
            for i in range(len(base)):
                files.append(os.path.join(directory, f"train.npy-{i:05d}-of-{len(base):05d}.npy"))
                if not os.path.exists(files[-1]):
                    np.save(files[-1], base.videos[i])
            self._source, self._split, self._shards = _NpyShards(files, vanish_after), "train", files
            self._shard_ends = np.arange(1, len(files) + 1)
            self.labels, self._num_frames = base.labels, np.full(len(files), base.videos.shape[1])

    class Dataset:
        def __init__(self, config):
            self.base = get_dataset("synthetic", config=config)
            self.class_names, self.num_examples, self.config = self.base.class_names, self.base.num_examples, config

        def split(self, name):
            base = self.base.split(name)
            return Split(base, self.config.data_dir, 2 * 8) if name == "train" else base

    @register_dataset("fault_test_shards")
    def _make(config=None, **_):
        return Dataset(config)


def test_input_file_gone_mid_run_stops_naming_it_and_the_last_checkpoint_resumes(ref, tmp_path):
    _register_shard_dataset()
    cfg = _cfg(**{"data.name": "fault_test_shards", "data.data_dir": str(tmp_path / "shards")})
    wd = str(tmp_path / "wd")
    with pytest.raises(InputError) as e:
        train.train_and_evaluate(cfg, wd)
    msg = str(e.value)
    assert "\n" not in msg
    # the 17th read (the first example of step 3) finds its shard gone
    assert msg.startswith(f"input file {tmp_path}/shards/train.npy-"), msg
    assert " of split 'train') cannot be read: FileNotFoundError: [Errno 2] No such file or directory" in msg
    assert msg.endswith(f"training stopped before step 3; the resume point is the last checkpoint (step 2 in "
                        f"{wd}/checkpoints)")
    assert finalized_steps(os.path.join(wd, "checkpoints")) == [2]
    _assert_same(load_checkpoint_params(wd, 2), ref[2])  # the file-backed stream is the synthetic one
    for f in os.listdir(tmp_path / "shards"):  # the disk is back
        os.replace(tmp_path / "shards" / f, tmp_path / "shards" / f.replace(".gone", ""))
    train.train_and_evaluate(cfg, wd)
    _assert_same(load_checkpoint_params(wd, 4), ref[4])


def test_feature_file_gone_or_corrupt_is_named(tmp_path):
    from data_pipelines.temporal.features import read_feature_file
    p = tmp_path / "v_abc.npy"
    np.save(p, np.ones((3, 4), np.float32))
    assert read_feature_file(str(p), mmap=True)["rgb"].shape == (3, 4)
    p.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=rf"^input file {p} cannot be read: ValueError: "):
        read_feature_file(str(p), mmap=True)
    p.unlink()
    with pytest.raises(InputError, match=rf"^input file {p} cannot be read: FileNotFoundError: "):
        read_feature_file(str(p), mmap=True)


# ----------------------------------------------------------------------------- command line, 2 processes

def _cli(wd, *flags):
    return [sys.executable, "-m", "tcvideo.main", f"--config={os.path.join(wd, 'config.py')}", f"--workdir={wd}",
            *flags]


def test_command_line_exit_status(ref, tmp_path):
    """A run fault is one line on stderr and exit 1 (a config fault, e.g. another model, is exit 2 like
    every ConfigError: tests/core/test_train_config.py)."""
    bad = _copy(ref, tmp_path, "bad")
    _corrupt(bad, 4)
    _corrupt(bad, 2)
    r = subprocess.run(_cli(bad), cwd=tf_.REPO, env=tf_.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=600)
    assert r.returncode == 1, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: no readable checkpoint in {bad}/checkpoints: step 4: ")


def test_two_processes_agree_on_the_fallback_step(ref, tmp_path):
    """2 processes x 2 CPU devices (jax.distributed + gloo) restart a workdir whose newest checkpoint is
    unreadable: both fall back to the same step and process 0 alone moves it aside. The unreadable one is a
    corrupted copy of step 4 named 6, on top of the finished 4-step run, so that the fallback lands on
    total_steps and nothing is compiled: this test is about the agreement."""
    wd = _copy(ref, tmp_path)
    shutil.copytree(os.path.join(wd, "checkpoints", "4"), os.path.join(wd, "checkpoints", "6"))
    _corrupt(wd, 6)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    logs = [str(tmp_path / f"p{i}.log") for i in range(2)]
    procs = [tf_.popen(_cli(wd, f"--config.coordinator_address=127.0.0.1:{port}", "--config.num_processes=2",
                            f"--config.process_id={i}"), devices=2, log=logs[i]) for i in range(2)]
    rcs = [p.wait(timeout=600) for p in procs]
    texts = [open(f).read() for f in logs]
    assert rcs == [0, 0], texts[0][-3000:] + texts[1][-3000:]
    for t in texts:
        assert "checkpoint step 6 (" in t
        assert "resuming from step 4, the newest readable checkpoint" in t
    assert "resumed from step 4" in texts[0]  # the run's own lines are printed by process 0 only
    assert os.listdir(os.path.join(wd, "unreadable_checkpoints")) == ["6"]
    assert finalized_steps(os.path.join(wd, "checkpoints")) == [2, 4]
    _assert_same(load_checkpoint_params(wd, 4), ref[4])
