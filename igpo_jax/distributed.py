"""Multi-host start-up through ``jax.distributed`` and the host <-> global-array moves.

igpo_jax runs one process per host (JAX's multi-controller model). Every process
runs the same program: device work is one SPMD computation over the global mesh;
host work (data order, rewards, IGPO hint construction, advantages) is computed
on every process from the same global batch, so the advantages and the
all-wrong-group test are exactly those of a single process, and groups are never
split. Each process reads its own slice of every global batch of example indices
(a grain map by process index) and the slices are all-gathered into the global
batch. Only process 0 writes metrics and results; all processes take part in
Orbax checkpoints.

When to initialise (``config.distributed.mode``):

* ``auto`` (default): explicit settings (config or ``IGPO_COORDINATOR_ADDRESS`` /
  ``IGPO_NUM_PROCESSES`` / ``IGPO_PROCESS_ID``) if given; else on a multi-host
  TPU slice or a SLURM job with more than one task, ``jax.distributed.initialize()``
  with JAX's cluster auto-detection; else a single process.
* ``on``: always call ``jax.distributed.initialize`` (with whatever is given).
* ``off``: never (single process).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import jax
import numpy as np

from igpo_jax.sections import Section, field

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
_ENV = {"coordinator_address": "IGPO_COORDINATOR_ADDRESS",
        "num_processes": "IGPO_NUM_PROCESSES", "process_id": "IGPO_PROCESS_ID"}


def settings(d) -> dict[str, Any]:
    """Explicit coordinator settings from the config section ``d``, then the environment."""
    out: dict[str, Any] = {}
    addr = d.coordinator_address or os.environ.get(_ENV["coordinator_address"], "")
    if addr:
        out["coordinator_address"] = addr
    n = d.num_processes or int(os.environ.get(_ENV["num_processes"], 0))
    if n:
        out["num_processes"] = int(n)
    pid = d.process_id if d.process_id >= 0 else int(os.environ.get(_ENV["process_id"], -1))
    if pid >= 0:
        out["process_id"] = int(pid)
    return out


def detected_cluster() -> str | None:
    """A multi-process environment JAX can configure itself from, or None."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return "SLURM"
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    if len([h for h in hosts.split(",") if h]) > 1:
        return "TPU pod slice"
    return None


def initialize(d) -> bool:
    """Starts the multi-controller runtime if ``d`` (``config.distributed``) asks for it.

    Must run before anything touches a JAX backend. Returns whether it initialised.
    """
    if d.mode not in MODES:
        raise ValueError(f"distributed.mode={d.mode!r}; expected one of {MODES}")
    if d.mode == "off":
        return False
    for key in ("heartbeat_timeout_s", "init_timeout_s"):
        if getattr(d, key) < 1:
            raise ValueError(f"distributed.{key}={getattr(d, key)} must be >= 1")
    kw = settings(d)
    cluster = detected_cluster()
    if d.mode == "auto" and not kw and cluster is None:
        return False
    if kw and len(kw) != 3 and cluster is None:
        missing = sorted(set(_ENV) - set(kw))
        raise ValueError(f"distributed: {missing} not set (config.distributed.* or "
                         f"{[_ENV[m] for m in missing]}); a coordinator address, the process "
                         f"count and this process's id go together")
    if d.cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", d.cpu_collectives)
    log.info("jax.distributed.initialize(%s)%s: waiting up to %d s for every process to "
             "connect (distributed.init_timeout_s)", kw, f" on {cluster}" if cluster else "",
             d.init_timeout_s)
    # a process that never connects (not started, died during start-up, a wrong address)
    # ends the others here after init_timeout_s: JAX's runtime aborts them (SIGABRT) with
    # "DEADLINE_EXCEEDED ... RegisterTask"; no Python exception reaches this code
    jax.distributed.initialize(**kw, heartbeat_timeout_seconds=int(d.heartbeat_timeout_s),
                               initialization_timeout=int(d.init_timeout_s))
    log.info("process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
    return True


EXIT_LOST_PROCESS = 76  # another process of the run was lost: rerun all of them to resume


def lost_processes() -> list[int] | None:
    """The processes of this multi-process run that the coordination service no
    longer counts as alive (stopped sending heartbeats, or disconnected), ``[0]`` when
    the coordinator itself (process 0) does not answer, ``None`` when it cannot be
    told (single process, no client). Blocks at most about the heartbeat timeout."""
    n = jax.process_count()
    if n == 1:
        return None
    from jax._src import distributed as jax_distributed  # the runtime's client
    client = getattr(jax_distributed.global_state, "client", None)
    if client is None or not hasattr(client, "get_live_nodes"):
        return None
    try:
        live = client.get_live_nodes(list(range(n)))
    except Exception:  # noqa: BLE001 - the coordinator is gone
        return [0] if jax.process_index() != 0 else None
    return sorted(set(range(n)) - set(int(k) for k in live))


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (the same answer on every process; one
    small all-gather, so every process must call it at the same point)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.int32(bool(flag)))))


def to_host(x) -> np.ndarray:
    """A (possibly multi-host) array as a full numpy array on every process."""
    if jax.process_count() == 1 or not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def gather_slices(local: np.ndarray) -> np.ndarray:
    """Concatenates every process's ``local`` rows in process order (same on all)."""
    if jax.process_count() == 1:
        return np.asarray(local)
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(np.asarray(local), tiled=True))


@dataclasses.dataclass(frozen=True)
class DistributedConfig(Section):
    """The config's ``distributed`` section (read by :func:`initialize`)."""

    mode: str = field(
        "auto", "auto | off | on: start jax.distributed (auto: when a pod/job is detected)")
    coordinator_address: str = field("", "host:port of process 0 (empty: detected)")
    num_processes: int = field(0, "processes in the job (0: detected)")
    process_id: int = field(-1, "this process's index (-1: detected)")
    cpu_collectives: str = field("gloo", "collectives between CPU processes (tests, CPU clusters)")
    heartbeat_timeout_s: int = field(
        100, "seconds without a heartbeat after which a process counts as lost (killed, "
        "preempted, partitioned): the others then stop with exit code 76 instead of hanging")
    init_timeout_s: int = field(
        300, "seconds each process waits at start-up for all of them to connect (JAX's "
        "default); then it stops (JAX aborts it: exit 134 / SIGABRT, DEADLINE_EXCEEDED)")
