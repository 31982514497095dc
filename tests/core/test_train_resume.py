"""Subprocess runs of `python -m tcvideo.main`: kill -9 + resume is bit-identical to an uninterrupted
run, and 2 processes x 2 CPU devices (jax.distributed + gloo) match 1 process x 4 devices, also when
one of the two processes gets SIGTERM mid-run (both save and exit cleanly) and both are restarted."""
import json
import os
import re
import signal
import socket
import time

import numpy as np
import pytest

import train_fixtures as tf_

TOTAL = 8  # steps; checkpoints every 2


def _wait(p, timeout, log):
    try:
        rc = p.wait(timeout=timeout)
    except Exception:
        p.kill()
        raise
    assert rc == 0, f"run failed (rc={rc}); log:\n" + open(log).read()[-4000:]


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _make_runs(root: str) -> dict:
    """Start all runs concurrently (compilation dominates; overlapping saves wall time)."""
    ref, victim, mh = (os.path.join(root, d) for d in ("ref", "victim", "mh"))
    # -v: the trainer's per-step log lines on screen (in the logs read below), not only in workdir/log.txt
    flags = [f"--config.total_steps={TOTAL}", "-v"]
    p_ref = tf_.popen(tf_.main_cmd(ref, *flags), log=ref + ".log")
    p_vic = tf_.popen(tf_.main_cmd(victim, *flags), log=victim + ".log")
    port = _free_port()
    p_mh = [tf_.popen(tf_.main_cmd(mh, *flags, f"--config.coordinator_address=127.0.0.1:{port}",
                                   "--config.num_processes=2", f"--config.process_id={i}"),
                      devices=2, log=f"{mh}.{i}.log") for i in range(2)]
    # Watched together, so that neither signal waits for the other run: SIGKILL to the victim as soon as
    # its first checkpoint is finalised (so that the restart has one to resume from), and SIGTERM to
    # process 1 of the 2-process run only (both processes must stop at the same step, save and exit 0)
    # as soon as that process logs its first training step: its SIGTERM handler is installed by then,
    # and nearly the whole run is left. (Waiting for the first finalised checkpoint instead let a loaded
    # machine finish all TOTAL steps before the asynchronous save of step 2 was finalised.)
    killed_after, terminated_after = _signal_when(
        [(p_vic, lambda: _checkpoint_steps(victim), signal.SIGKILL),
         (p_mh[1], lambda: _logged_steps(f"{mh}.1.log"), signal.SIGTERM)])
    _wait(p_ref, 2400, ref + ".log")
    p_res = tf_.popen(tf_.main_cmd(victim, *flags), log=victim + ".resume.log")
    for i, p in enumerate(p_mh):
        _wait(p, 2400, f"{mh}.{i}.log")
    port = _free_port()
    p_mh2 = [tf_.popen(tf_.main_cmd(mh, *flags, f"--config.coordinator_address=127.0.0.1:{port}",
                                    "--config.num_processes=2", f"--config.process_id={i}"),
                       devices=2, log=f"{mh}.{i}.resume.log") for i in range(2)]
    for i, p in enumerate(p_mh2):
        _wait(p, 2400, f"{mh}.{i}.resume.log")
    _wait(p_res, 2400, victim + ".resume.log")
    return dict(ref=ref, victim=victim, mh=mh, killed_after=killed_after, terminated_after=terminated_after)


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict:
    """The runs of _make_runs, made once per test session.

    Under pytest-xdist the tests of this file may land on different workers: the first worker to get
    here makes the runs in a folder all workers share, under a file lock, and the others wait for them
    and read the result (the pytest-xdist recipe "Making session-scoped fixtures execute only once").
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # one process: pytest's session cache suffices
        return _make_runs(str(tmp_path_factory.mktemp("resume")))
    from filelock import FileLock
    shared = tmp_path_factory.getbasetemp().parent / "resume_runs"  # the session's folder above gw0, gw1, ...
    done, failed = shared / "runs.json", shared / "failed.txt"
    with FileLock(str(shared) + ".lock"):
        if done.is_file():
            return json.loads(done.read_text())
        if failed.is_file():  # do not spend another 5 CPU minutes failing the same way
            pytest.fail("the resume runs failed on another xdist worker:\n" + failed.read_text())
        shared.mkdir(exist_ok=True)
        try:
            out = _make_runs(str(shared))
        except BaseException as e:
            failed.write_text(f"{type(e).__name__}: {e}")
            raise
        done.write_text(json.dumps(out))
        return out


def _checkpoint_steps(workdir: str) -> list:
    """Steps of the finalised checkpoints in workdir (orbax renames a checkpoint's folder to its step
    when the save is complete)."""
    ckdir = os.path.join(workdir, "checkpoints")
    return [int(d) for d in os.listdir(ckdir) if d.isdigit()] if os.path.isdir(ckdir) else []


def _logged_steps(log: str) -> list:
    """Training steps the trainer has logged ("step N/TOTAL loss ...") in its log file so far."""
    with open(log) as f:
        return [int(s) for s in re.findall(r"\bstep (\d+)/\d+ loss", f.read())]


def _signal_when(targets: list, timeout: float = 3600) -> list:
    """For each (proc, steps_fn, sig): send sig to proc once steps_fn() (the steps it has reached so
    far) is not empty.

    -> the largest step each signal followed (None: that proc ended first, or the timeout passed).
    The timeout is only a guard against a hung run: on a loaded 2-core machine compiling the 4 runs
    has taken over 15 minutes, and a signal that gave up then made the test fail for the wrong reason.
    """
    out = [None] * len(targets)
    pending = set(range(len(targets)))
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        for i in sorted(pending):
            proc, steps_fn, sig = targets[i]
            if proc.poll() is not None:
                pending.discard(i)
                continue
            steps = steps_fn()
            if steps:
                os.kill(proc.pid, sig)
                if sig == signal.SIGKILL:
                    proc.wait()
                out[i] = max(steps)
                pending.discard(i)
        time.sleep(0.05)
    return out


def test_kill9_and_resume_is_bit_identical(runs):
    from tcvideo.core.checkpoints import load_checkpoint_params
    assert runs["killed_after"] is not None and runs["killed_after"] < TOTAL, "victim was not killed mid-run"
    resume_log = open(runs["victim"] + ".resume.log").read()
    assert "resumed from step" in resume_log
    a = load_checkpoint_params(runs["ref"], TOTAL)
    b = load_checkpoint_params(runs["victim"], TOTAL)
    import jax
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y), f"params differ at {jax.tree_util.keystr(path)}"
    # and training really moved the params away from the step-0 values (the run was not a no-op)
    la0 = tf_.losses(runs["ref"])
    assert sorted(la0) == list(range(1, TOTAL + 1))
    # losses after the restart point match the reference exactly
    lv = tf_.losses(runs["victim"])
    for s in range(runs["killed_after"] + 1, TOTAL + 1):
        assert lv[s] == la0[s], (s, lv[s], la0[s])


def test_two_processes_match_one_process(runs):
    ref, mh = tf_.losses(runs["ref"]), tf_.losses(runs["mh"])
    assert sorted(mh) == sorted(ref) == list(range(1, TOTAL + 1))
    np.testing.assert_allclose([mh[s] for s in sorted(mh)], [ref[s] for s in sorted(ref)], rtol=2e-5, atol=1e-6)
    log0 = open(runs["mh"] + ".0.log").read()
    assert "process 0 of 2" in log0
    # the SIGTERM run: stopped mid-run, both processes saved at the same step, and the restart resumed
    assert runs["terminated_after"] is not None and runs["terminated_after"] < TOTAL, "SIGTERM came too late"
    saved = [open(f"{runs['mh']}.{i}.log").read().split("SIGTERM: checkpoint saved at step ")[1].split(";")[0]
             for i in range(2)]
    assert saved[0] == saved[1] and int(saved[0]) < TOTAL, saved
    assert f"resumed from step {saved[0]}" in open(runs["mh"] + ".0.resume.log").read()


def test_checkpoint_loads_on_another_device_count(runs, tmp_path):
    """Params of a 4-device run load in a 1-device process (a pod's checkpoint on a laptop)."""
    import subprocess
    import sys

    import jax
    from tcvideo.core.checkpoints import load_checkpoint_params
    out = str(tmp_path / "params.npz")
    code = ("import sys, jax, numpy as np; from tcvideo.core.checkpoints import load_checkpoint_params; "
            "assert jax.device_count() == 1; p = load_checkpoint_params(sys.argv[1], int(sys.argv[2])); "
            "np.savez(sys.argv[3], *jax.tree_util.tree_leaves(p))")
    r = subprocess.run([sys.executable, "-c", code, runs["ref"], str(TOTAL), out], cwd=tf_.REPO, env=tf_.env(1),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    want = jax.tree_util.tree_leaves(load_checkpoint_params(runs["ref"], TOTAL))
    with np.load(out) as z:
        got = [z[f"arr_{i}"] for i in range(len(want))]
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
