"""Devices and sharding: multi-host initialisation, the mesh, FSDP specs, and host data <-> global arrays."""
from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


# ----------------------------------------------------------------------------- distributed

# Variables set by the launchers tcvideo auto-detects (jax.distributed.initialize() then reads the
# rest of the cluster description itself): Cloud TPU pods, Slurm (srun with > 1 task), and an
# explicit coordinator.
_CLUSTER_ENV = ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES", "CLOUD_TPU_TASK_ID",
                "MEGASCALE_COORDINATOR_ADDRESS")


def distributed_requested(config, environ=os.environ) -> bool:
    """Whether this process is one of several: config.multihost 'true', a coordinator address in the
    config, or a multi-process launcher in the environment (TPU pod, Slurm with SLURM_NTASKS > 1)."""
    mode = str(config.get("multihost", "auto")).lower()
    if mode == "false":
        return False
    env_says = any(environ.get(k) for k in _CLUSTER_ENV) or int(environ.get("SLURM_NTASKS", "1") or 1) > 1
    return mode == "true" or bool(config.get("coordinator_address")) or env_says


def maybe_initialize_distributed(config) -> None:
    """``jax.distributed.initialize`` when asked for (config) or when the environment says so."""
    if getattr(jax.distributed, "is_initialized", lambda: False)():
        return
    if not distributed_requested(config):
        return
    explicit = bool(config.get("coordinator_address"))
    kwargs = {}
    if explicit:
        kwargs = dict(coordinator_address=config.coordinator_address, num_processes=int(config.num_processes),
                      process_id=int(config.process_id))
        if kwargs["num_processes"] > 1:
            # CPU collectives across processes need gloo (harmless on GPU/TPU backends).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    logging.info("jax.distributed initialised: process %d of %d", jax.process_index(), jax.process_count())


# ----------------------------------------------------------------------------- sharding

def make_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


def fsdp_spec(shape, n: int, fsdp: bool) -> P:
    """Shard the largest axis divisible by n over 'data' (replicate when none or fsdp off)."""
    if not fsdp or n == 1 or not shape:
        return P()
    axes = [i for i, d in enumerate(shape) if d % n == 0 and d >= n]
    if not axes:
        return P()
    best = max(axes, key=lambda i: shape[i])
    spec = [None] * len(shape)
    spec[best] = "data"
    return P(*spec)


def state_shardings(abstract_state, mesh: Mesh, fsdp: bool):
    n = mesh.devices.size
    return jax.tree_util.tree_map(lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), n, fsdp)), abstract_state)


def global_array(local: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Per-process batch rows -> a global array sharded over 'data'."""
    global_shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
    return jax.make_array_from_process_local_data(sharding, local, global_shape)


def replicated_value(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Same host value on every process -> a global array with `sharding`."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def process_share(num_examples: int, batch_size: int, process_index: int, process_count: int,
                  min_batches: int = 0) -> tuple[np.ndarray, int]:
    """(example positions of this process [num_batches * batch_size], num_batches) for a sharded evaluation:
    process p takes the contiguous block p of the examples, padded with -1 to whole batches of its
    ``batch_size`` rows, and every process gets the same number of batches (at least ``min_batches``), so
    batch k of all processes together is one global batch and each example is evaluated once, by one host."""
    per_proc = -(-num_examples // process_count)
    num_batches = max(min_batches, -(-per_proc // batch_size))
    lo = min(process_index * per_proc, num_examples)
    hi = min(lo + per_proc, num_examples)
    pos = np.full(num_batches * batch_size, -1, np.int64)
    pos[:hi - lo] = np.arange(lo, hi)
    return pos, num_batches
