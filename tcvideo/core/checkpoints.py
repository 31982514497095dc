"""Train-state checkpoints (orbax): the latest-N and best managers, save / restore, and host params of a
workdir on any device count.

Faults end in one line (``RunError``) and lose nothing:

* Restart (``choose_resume_step``): every process reads each checkpoint, newest first, into its own CPU
  memory (process-local: no orbax barrier a failing process would skip); the processes agree on the newest
  step all of them read. Newer unreadable checkpoints are then moved to ``workdir/unreadable_checkpoints``
  (renamed, never deleted) and reported with step, path and the library's reason; when none is readable
  the run stops and nothing is moved.
* Save (``_save`` / ``finish_saves``): a failed save (disk full, permission denied) stops the run naming
  step and path. Orbax writes a checkpoint into ``<step>.orbax-checkpoint-tmp*`` and renames it to
  ``<step>`` only once complete, so a crashed save leaves a tmp folder that is never taken as the latest,
  and the previous checkpoints are not touched.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import jax
import numpy as np
from absl import logging

from tcvideo.core.config import RunError, library_reason

UNREADABLE_DIR = "unreadable_checkpoints"  # beside checkpoints/: where unreadable checkpoints are moved


def _managers(workdir: str, config, create: bool = True):
    import orbax.checkpoint as ocp
    opts = ocp.CheckpointManagerOptions(max_to_keep=int(config.keep_checkpoints), create=create,
                                        enable_async_checkpointing=bool(config.async_checkpointing))
    latest = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=opts)
    best_opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=create, best_fn=lambda m: m["primary"],
                                             best_mode="max", enable_async_checkpointing=False)
    best = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "best"), options=best_opts)
    return latest, best


# ----------------------------------------------------------------------------- steps

def finalized_steps(ckdir: str) -> list[int]:
    """Steps of the complete checkpoints in ``ckdir`` (orbax names one ``<step>`` once it is finalized)."""
    return sorted(int(d) for d in os.listdir(ckdir) if d.isdigit()) if os.path.isdir(ckdir) else []


# ----------------------------------------------------------------------------- save

# id(manager) -> step of its save still in flight: an asynchronous save fails in a background thread and
# orbax reports it only at the next save or wait, by then without the step.
_PENDING: dict[int, int] = {}


def _save_error(mgr, step: Optional[int], e: BaseException) -> RunError:
    ckdir = str(mgr.directory)
    kept = [s for s in finalized_steps(ckdir) if s != step]
    keep = (f"the previous checkpoint (step {kept[-1]}) is intact and a restart resumes from it" if kept
            else "no earlier checkpoint exists; a restart begins at step 0")
    where = os.path.join(ckdir, str(step)) if step is not None else ckdir
    return RunError(f"checkpoint save failed at step {step} ({where}): {library_reason(e)}; training stopped; {keep}")


def _save(mgr, state, step: int, force: bool = False):
    """Save ``state`` as ``step`` (asynchronously when the manager is); RunError naming step and path when
    this or the previous save of ``mgr`` failed."""
    import orbax.checkpoint as ocp
    finish_saves(mgr)  # orbax would wait for the previous save here anyway; this names its step on failure
    try:
        mgr.save(step, args=ocp.args.StandardSave(state), force=force)
    except Exception as e:  # noqa: BLE001 - any failed save ends the run in one line
        raise _save_error(mgr, step, e) from e
    _PENDING[id(mgr)] = step


def finish_saves(mgr) -> None:
    """Wait for ``mgr``'s save in flight; RunError naming its step and path when it failed. While another
    exception is propagating (called from a ``finally``) a failed save is logged instead, in one line, so
    that it does not hide the fault that stopped the run."""
    step = _PENDING.pop(id(mgr), None)
    propagating = sys.exc_info()[1]
    try:
        mgr.wait_until_finished()
    except Exception as e:  # noqa: BLE001
        err = _save_error(mgr, step, e)
        if propagating is not None:
            logging.error("%s", err)
            return
        raise err from e


# ----------------------------------------------------------------------------- restore

def _local_manager(ckdir: str):
    """A manager of this process alone, used only to restore: its restores have no cross-process barrier,
    so one process failing to read does not leave the others waiting in orbax."""
    import orbax.checkpoint as ocp
    me = jax.process_index()
    opts = ocp.CheckpointManagerOptions(
        create=False,
        multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me}))
    return ocp.CheckpointManager(ckdir, item_handlers=ocp.StandardCheckpointHandler(), options=opts)


def _probe(ckdir: str, step: int, abstract_state) -> Optional[str]:
    """None when this process reads checkpoint ``step`` whole (onto its CPU), else the library's reason."""
    import orbax.checkpoint as ocp
    cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    target = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=cpu), abstract_state)
    try:
        with _local_manager(ckdir) as mgr:
            restored = mgr.restore(step, args=ocp.args.StandardRestore(target))
        jax.block_until_ready(restored)
        del restored
        return None
    except Exception as e:  # noqa: BLE001 - whatever the library raises, the checkpoint is unreadable
        return library_reason(e)


def _agree(ok: bool) -> list[bool]:
    """``ok`` of every process (one all-gather; every process calls this the same number of times)."""
    if jax.process_count() == 1:
        return [ok]
    from jax.experimental import multihost_utils
    return [bool(x) for x in np.asarray(multihost_utils.process_allgather(np.int32(ok))).reshape(-1)]


def _move_aside(workdir: str, ckdir: str, step: int) -> str:
    dest_dir = os.path.join(workdir, UNREADABLE_DIR)
    os.makedirs(dest_dir, exist_ok=True)
    dest, k = os.path.join(dest_dir, str(step)), 1
    while os.path.exists(dest):  # an earlier restart moved a checkpoint of this step aside already
        dest, k = os.path.join(dest_dir, f"{step}.{k}"), k + 1
    os.replace(os.path.join(ckdir, str(step)), dest)
    return dest


def choose_resume_step(workdir: str, abstract_state) -> Optional[int]:
    """The step a restart resumes from: the newest checkpoint in ``workdir/checkpoints`` that every process
    reads, or None when there is none. Newer checkpoints that some process cannot read are moved to
    ``workdir/unreadable_checkpoints`` (by process 0) and reported in one line each. RunError, with nothing
    moved, when none is readable. ``abstract_state``: the train state's ShapeDtypeStructs."""
    workdir = os.path.abspath(workdir)
    ckdir = os.path.join(workdir, "checkpoints")
    steps = finalized_steps(ckdir)
    if not steps:
        return None
    bad: list[tuple[int, str]] = []
    chosen = None
    for step in reversed(steps):
        reason = _probe(ckdir, step, abstract_state)
        oks = _agree(reason is None)
        if all(oks):
            chosen = step
            break
        if reason is None:
            reason = f"not readable on process(es) {[i for i, ok in enumerate(oks) if not ok]}"
        bad.append((step, reason))
    if chosen is None:
        raise RunError(f"no readable checkpoint in {ckdir}: " + "; ".join(f"step {s}: {r}" for s, r in bad)
                       + "; nothing was changed (restore a checkpoint from a backup, or start in a new --workdir)")
    moved = {}
    if jax.process_index() == 0:
        for s, _ in bad:
            moved[s] = _move_aside(workdir, ckdir, s)
    if jax.process_count() > 1:  # every process sees the moves before it builds its managers
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("tcvideo:unreadable_checkpoints_moved")
    for s, r in bad:
        logging.warning("checkpoint step %d (%s) cannot be restored: %s; moved to %s", s, os.path.join(ckdir, str(s)),
                        r, moved.get(s, os.path.join(workdir, UNREADABLE_DIR)))
    if bad:
        logging.warning("resuming from step %d, the newest readable checkpoint", chosen)
    return chosen


def restore_state(mgr, abstract_with_sharding, step: Optional[int] = None):
    import orbax.checkpoint as ocp
    step = mgr.latest_step() if step is None else step
    try:
        return mgr.restore(step, args=ocp.args.StandardRestore(abstract_with_sharding))
    except Exception as e:  # noqa: BLE001 - choose_resume_step read it; this is a fault of the moment
        raise RunError(f"checkpoint step {step} ({os.path.join(str(mgr.directory), str(step))}) could not be "
                       f"restored: {library_reason(e)}; nothing was changed") from e


def load_checkpoint_params(workdir: str, step: Optional[int] = None, which: str = "checkpoints") -> dict:
    """Numpy params of the latest (or given) checkpoint in workdir/checkpoints (or workdir/best)."""
    import orbax.checkpoint as ocp
    path = os.path.join(os.path.abspath(workdir), which)
    with ocp.CheckpointManager(path, item_handlers=ocp.StandardCheckpointHandler(),
                               options=ocp.CheckpointManagerOptions(create=False)) as mgr:
        step = mgr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {path}")
        # Restore onto this host's first CPU device, whatever the saving run's device count (a pod's
        # checkpoint loads on a laptop): orbax needs a target tree for a different topology.
        try:
            meta = mgr.item_metadata(step)
            cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
            target = jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu),
                                            getattr(meta, "tree", meta))
            restored = mgr.restore(step, args=ocp.args.StandardRestore(target))
        except Exception as e:  # noqa: BLE001 - one line, not TensorStore's pages
            raise RunError(f"checkpoint step {step} ({os.path.join(path, str(step))}) cannot be restored: "
                           f"{library_reason(e)}") from e
    tree = restored["params"] if which == "checkpoints" else restored
    return jax.tree_util.tree_map(np.asarray, tree)
