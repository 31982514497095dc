"""Train-state checkpoints (orbax): the latest-N and best managers, save / restore, and host params of a
workdir on any device count."""
from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np


def _managers(workdir: str, config, create: bool = True):
    import orbax.checkpoint as ocp
    opts = ocp.CheckpointManagerOptions(max_to_keep=int(config.keep_checkpoints), create=create,
                                        enable_async_checkpointing=bool(config.async_checkpointing))
    latest = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=opts)
    best_opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=create, best_fn=lambda m: m["primary"],
                                             best_mode="max", enable_async_checkpointing=False)
    best = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "best"), options=best_opts)
    return latest, best


def _save(mgr, state, step: int, force: bool = False):
    import orbax.checkpoint as ocp
    mgr.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_state(mgr, abstract_with_sharding, step: Optional[int] = None):
    import orbax.checkpoint as ocp
    step = mgr.latest_step() if step is None else step
    return mgr.restore(step, args=ocp.args.StandardRestore(abstract_with_sharding))


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
        meta = mgr.item_metadata(step)
        cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
        target = jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu),
                                        getattr(meta, "tree", meta))
        restored = mgr.restore(step, args=ocp.args.StandardRestore(target))
    tree = restored["params"] if which == "checkpoints" else restored
    return jax.tree_util.tree_map(np.asarray, tree)
