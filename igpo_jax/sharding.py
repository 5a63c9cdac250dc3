"""Device mesh, logical-axis rules and placement of parameters and batches.

One table (:data:`LOGICAL_AXIS_RULES`) maps the logical axis names used by the
model (``batch``, ``embed``, ``heads``, ``mlp``, ``vocab`` ...) to the mesh axes
``data``, ``fsdp`` and ``tensor``. Everything else asks this module for a
``NamedSharding``. A dimension that a mesh axis does not divide is replicated
instead (e.g. 2 KV heads on a tensor axis of 4), so any model runs on any mesh.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from igpo_jax.sections import Section, field

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axes (a tuple shards one dimension over several mesh axes).
LOGICAL_AXIS_RULES: dict[str, tuple[str, ...] | None] = {
    "batch": ("data", "fsdp"),
    "length": None,
    "vocab": ("tensor",),
    "embed": ("fsdp",),
    "heads": ("tensor",),
    "kv_heads": ("tensor",),
    "mlp": ("tensor",),
    "norm": None,
    "layers": None,
    # LoRA adapters: A [in, r] and B [r, out] shard their in/out axis as the base linear;
    # the rank axis takes fsdp where that is still free (B under pure FSDP), so no
    # adapter is replicated over the fsdp axis
    "lora_rank": ("fsdp",),
}


def mesh_shape(data: int = 1, fsdp: int = -1, tensor: int = 1,
               num_devices: int | None = None) -> tuple[int, int, int]:
    """Resolves one ``-1`` entry to the remaining devices; checks the product."""
    n = jax.device_count() if num_devices is None else num_devices
    sizes = [data, fsdp, tensor]
    if sum(s == -1 for s in sizes) > 1:
        raise ValueError(f"mesh: at most one of data/fsdp/tensor may be -1, got {sizes}")
    for name, s in zip(MESH_AXES, sizes):
        if s == 0 or s < -1:
            raise ValueError(f"mesh.{name}={s} must be a positive size or -1 (the rest)")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if n % known:
            raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))}: {n} devices are not "
                             f"divisible by the fixed axes' product {known}")
        sizes[sizes.index(-1)] = n // known
    if math.prod(sizes) != n:
        raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices "
                         f"but {n} are available; set one axis to -1 to use the rest")
    return tuple(sizes)


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(data, fsdp, tensor)`` mesh over all devices (or the given ones)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(data, fsdp, tensor, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def mesh_from_config(mesh_cfg: Mapping[str, int] | None) -> Mesh:
    mesh_cfg = dict(mesh_cfg or {})
    unknown = set(mesh_cfg) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"mesh config has unknown axes {sorted(unknown)}; allowed: {MESH_AXES}")
    return make_mesh(**mesh_cfg)


def _axis_size(mesh: Mesh, axes: tuple[str, ...]) -> int:
    return math.prod(mesh.shape[a] for a in axes)


def logical_to_spec(logical_axes: Sequence[str | None], mesh: Mesh,
                    shape: Sequence[int] | None = None) -> P:
    """PartitionSpec for an array with the given logical axes.

    Dimensions not divisible by their mesh axes, and mesh axes already used by an
    earlier dimension, are replicated.
    """
    used: set[str] = set()
    spec = []
    for i, name in enumerate(logical_axes):
        if name is not None and name not in LOGICAL_AXIS_RULES:
            raise KeyError(f"no sharding rule for logical axis {name!r}; "
                           f"known: {sorted(LOGICAL_AXIS_RULES)}")
        axes = LOGICAL_AXIS_RULES.get(name) if name else None
        axes = tuple(a for a in (axes or ()) if a in mesh.shape and mesh.shape[a] > 1
                     and a not in used)
        if axes and shape is not None and shape[i] % _axis_size(mesh, axes):
            axes = ()
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return P(*spec)


def named_sharding(mesh: Mesh, logical_axes: Sequence[str | None],
                   shape: Sequence[int] | None = None) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(logical_axes, mesh, shape))


def tree_shardings(specs: Mapping[str, tuple[tuple[int, ...], tuple[str | None, ...]]],
                   mesh: Mesh) -> dict[str, NamedSharding]:
    """``{name: (shape, logical axes)}`` -> ``{name: NamedSharding}``."""
    return {name: named_sharding(mesh, axes, shape) for name, (shape, axes) in specs.items()}


def place(tree: Mapping[str, Any], shardings: Mapping[str, NamedSharding]) -> dict[str, Any]:
    """Places host or device arrays with the given shardings (global arrays when several
    processes run: every process passes the same full values)."""
    return {k: put(v, shardings[k]) for k, v in tree.items()}


def put(x, sharding: NamedSharding) -> jax.Array:
    """``jax.device_put``; with several processes, a global array from the full value
    that every process holds (each device takes its slice)."""
    if jax.process_count() == 1 or (isinstance(x, jax.Array) and not x.is_fully_addressable):
        return jax.device_put(x, sharding)  # one process, or already global: (re)shard
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x, x.shape)


def batch_sharding(mesh: Mesh, ndim: int = 2, batch_size: int | None = None) -> NamedSharding:
    """Leading dimension over ``data`` x ``fsdp``, the rest replicated."""
    shape = None if batch_size is None else (batch_size,) + (1,) * (ndim - 1)
    return named_sharding(mesh, ("batch",) + (None,) * (ndim - 1), shape)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Places every array of a pytree with its leading axis over the batch axes: one
    ``jax.device_put`` of the whole tree in a single process (one host-to-device
    transfer), a global array per leaf with several processes."""
    batch = jax.tree.map(lambda x: x if isinstance(x, jax.Array) else np.asarray(x), batch)
    shardings = jax.tree.map(lambda x: batch_sharding(mesh, x.ndim, x.shape[0]), batch)
    if jax.process_count() == 1:
        return jax.device_put(batch, shardings)
    return jax.tree.map(put, batch, shardings)


def replicate_unplaced(tree: Any, mesh: Mesh) -> Any:
    """Replicates over the mesh every array not already spread over all its devices
    (e.g. the step counters of a freshly initialised optimiser state)."""
    replicated = NamedSharding(mesh, P())

    def put(x):
        if isinstance(x, jax.Array) and len(x.sharding.device_set) != mesh.size:
            return jax.device_put(x, replicated)
        return x
    return jax.tree.map(put, tree)


@dataclasses.dataclass(frozen=True)
class MeshConfig(Section):
    """The config's ``mesh`` section (axis sizes; -1: the remaining devices). Whether it
    fits the devices is checked with them (``configlib.check_devices``)."""

    data: int = field(1, "data-parallel axis size")
    fsdp: int = field(-1, "parameter-sharding axis size (-1: all remaining devices)")
    tensor: int = field(1, "tensor-parallel axis size")
