"""Device mesh and sharding rules.

The mesh has two axes, `data` and `fsdp`. Batches are split over both (every device sees different
examples); parameters are replicated unless they are large, in which case their largest dimension
divisible by the `fsdp` axis size is sharded over it (FSDP). With `fsdp` of size 1 this is plain
data parallelism.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")


def make_mesh(shape: tuple[int, ...] | list[int], devices: list | None = None) -> Mesh:
    """A ('data', 'fsdp') mesh. One entry of `shape` may be -1 (fill with the remaining devices)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = list(shape)
    if len(shape) != 2:
        raise ValueError(f"mesh.shape must have 2 entries (data, fsdp), got {shape}")
    if shape.count(-1) > 1:
        raise ValueError(f"mesh.shape may hold at most one -1, got {shape}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if len(devices) % known:
            raise ValueError(f"mesh.shape {shape} does not divide {len(devices)} devices")
        shape[shape.index(-1)] = len(devices) // known
    if math.prod(shape) != len(devices):
        raise ValueError(f"mesh.shape {shape} needs {math.prod(shape)} devices, have {len(devices)}")
    return Mesh(_device_grid(tuple(shape), devices), AXES)


def _device_grid(shape: tuple[int, int], devices: list) -> np.ndarray:
    """Devices laid out as `shape`: by the physical topology on TPU (jax's mesh_utils; a plain reshape on
    CPU); on several TPU slices the `data` axis spans the slices (DCN) and `fsdp` stays inside one."""
    slices = sorted({getattr(d, "slice_index", 0) for d in devices})
    if len(slices) > 1:
        if shape[0] % len(slices):
            raise ValueError(f"mesh.shape {list(shape)}: the data axis must be a multiple of the "
                             f"{len(slices)} TPU slices")
        return mesh_utils.create_hybrid_device_mesh((shape[0] // len(slices), shape[1]), (len(slices), 1),
                                                    devices)
    return mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over every device."""
    return NamedSharding(mesh, P(BATCH_AXES))


def param_spec(shape: tuple[int, ...], fsdp_size: int, min_size: int) -> P:
    """FSDP rule: shard the largest dim divisible by the fsdp axis, for params of >= min_size elements."""
    if fsdp_size <= 1 or math.prod(shape) < min_size:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % fsdp_size == 0:
            spec = [None] * len(shape)
            spec[dim] = "fsdp"
            return P(*spec)
    return P()


def tree_shardings(abstract_tree: Any, mesh: Mesh, fsdp_min_size: int = 2**18) -> Any:
    """NamedShardings for a tree of arrays / ShapeDtypeStructs by the FSDP rule (scalars replicated)."""
    fsdp_size = mesh.shape["fsdp"]
    return jax.tree.map(
        lambda x: NamedSharding(mesh, param_spec(tuple(x.shape), fsdp_size, fsdp_min_size)),
        abstract_tree)


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble per-process numpy batches into global jax.Arrays sharded over the batch axes."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local_batch.items()}


def wait_for_processes(name: str, timeout_s: float = 3600.0) -> None:
    """Block until every process reaches the barrier `name` (the coordination service's, not a device
    collective); no-op in one process. On CPU hosts a computation's first run across processes sets up
    its Gloo communicators with a fixed 30 s deadline, so processes that finish compiling it minutes
    apart (several processes sharing cores) meet here before running it."""
    if jax.process_count() == 1:
        return
    from jax._src import distributed  # the coordination-service client that jax.distributed set up

    distributed.global_state.client.wait_at_barrier(name, int(timeout_s * 1000))

