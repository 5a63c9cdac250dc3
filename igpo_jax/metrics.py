"""Metrics: ``metrics.jsonl`` (one object per optimiser step), TensorBoard when
``tensorboardX`` is installed, an optional Weights & Biases run (offline by default:
no network, ``wandb sync`` uploads it later), and progress lines with rates on the
terminal. Only process 0 writes."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import secrets
import sys
import time
from typing import Any

import jax

from igpo_jax import storage
from igpo_jax.sections import Section, check, field

log = logging.getLogger(__name__)


def _clean(v: Any):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else (1e308 if v > 0 else -1e308)
    return v


def strict(obj: Any):
    """``obj`` with non-finite floats as null and numpy scalars as Python numbers: what
    ``json.dump(..., allow_nan=False)`` accepts (strict JSON, readable by any parser)."""
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


WANDB_MODES = ("offline", "online")


@dataclasses.dataclass(frozen=True)
class MetricsConfig(Section):
    """The config's ``metrics`` section: where the step records go besides
    ``metrics.jsonl`` (which always has every record)."""

    tensorboard: bool = field(True, "TensorBoard events in WORKDIR/tensorboard (needs tensorboardX)")
    wandb: bool = field(False, "a Weights & Biases run with the same fields as metrics.jsonl "
                               "(needs `pip install wandb`)")
    wandb_mode: str = field("offline", "offline (no network; `wandb sync WORKDIR/wandb/offline-run-*` "
                                       "uploads later) | online")
    wandb_project: str = field("igpo_jax", "the W&B project")
    wandb_group: str = field("", "the W&B group (a pipeline sets its workdir's name for its "
                                 "members when empty)")

    def __post_init__(self):
        check(self.wandb_mode in WANDB_MODES, "metrics.wandb_mode", self.wandb_mode,
              f"expected one of {WANDB_MODES}")


class WandbRun:
    """One W&B run per training start, in ``WORKDIR/wandb``: the run id is kept in
    ``WORKDIR/wandb_id.txt``, so a resumed stage continues the same run (steps after
    the restored checkpoint are logged to it again; ``metrics.jsonl`` is the record of
    truth)."""

    def __init__(self, workdir: str, mc: MetricsConfig, name: str, config: dict | None):
        try:
            import wandb
        except ImportError:
            raise ImportError("config.metrics.wandb=True needs the wandb package: "
                              "pip install wandb") from None
        if storage.is_cloud(workdir):
            raise ValueError(f"config.metrics.wandb=True writes W&B files in the workdir; "
                             f"{workdir} is in a bucket: use a local workdir")
        id_file = os.path.join(workdir, "wandb_id.txt")
        run_id = (storage.read_text(id_file).strip() if storage.exists(id_file)
                  else secrets.token_hex(4))  # W&B ids: [a-z0-9]
        storage.write_text(id_file, run_id + "\n")
        self.run = wandb.init(project=mc.wandb_project, name=name, id=run_id,
                              group=mc.wandb_group or None,
                              resume="allow", dir=workdir, mode=mc.wandb_mode,
                              config=config, settings=wandb.Settings(silent=True,
                                                                      console="off"))

    def log(self, record: dict[str, Any]) -> None:
        self.run.log({k: v for k, v in record.items() if k != "step"
                      and (v is None or isinstance(v, (int, float, str, bool, dict, list)))},
                     step=int(record["step"]))

    def close(self) -> None:
        self.run.finish()


class MetricsWriter:
    def __init__(self, workdir: str, filename: str = "metrics.jsonl", tensorboard: bool = True,
                 settings: MetricsConfig | None = None, name: str = "",
                 config: dict | None = None):
        self.enabled = jax.process_index() == 0
        self.path = os.path.join(workdir, filename)
        self.tb = self.wandb = None
        if not self.enabled:
            return
        storage.makedirs(workdir)
        if settings is not None:
            tensorboard = tensorboard and settings.tensorboard
            if settings.wandb:
                self.wandb = WandbRun(workdir, settings, name or os.path.basename(
                    os.path.abspath(workdir)), config)
        if tensorboard and storage.is_cloud(workdir):
            log.info("TensorBoard events are written for local workdirs only; %s is in a "
                     "bucket (metrics.jsonl has every record)", workdir)
        elif tensorboard:
            try:
                from tensorboardX import SummaryWriter
                self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:
                self.tb = None

    def truncate_after(self, step: int) -> None:
        """Drops records of steps after ``step`` (written after the restored checkpoint).
        ``step = 0`` (a fresh start) empties the record, with a warning when it held rows
        (a run killed before its first checkpoint, or checkpoints deleted)."""
        if not self.enabled or not storage.exists(self.path):
            return
        rows = read_metrics(self.path)
        keep = [r for r in rows if r["step"] <= step]
        if step == 0 and rows:
            log.warning("starting at step 0: dropping the %d records of an earlier start in %s "
                        "(no finished checkpoint to resume from)", len(rows), self.path)
        storage.write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: _clean(v) for k, v in record.items()}
        storage.append_text(self.path, json.dumps(strict(record), allow_nan=False) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, record["step"])
        if self.wandb is not None:
            self.wandb.log(strict(record))

    def close(self):
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.close()
            self.wandb = None


def read_metrics(path: str) -> list[dict[str, Any]]:
    """The records of a JSONL file. A last line that does not parse (a write cut short
    by a crash, power loss or a full disk) is dropped with a warning; a bad line before
    the last is an error naming ``file:line``."""
    lines = [(i, line) for i, line in enumerate(storage.read_text(path).splitlines(), 1)
             if line.strip()]
    out = []
    for k, (i, line) in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if k == len(lines) - 1:
                log.warning("%s:%d: dropping an unfinished last record (%s)", path, i, e)
                break
            raise ValueError(f"{path}:{i}: not a JSON record ({e}); the file is damaged "
                             f"before its last line: fix or remove that line") from None
    return out


def matmul_rate(dtype="float32", n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of an n^3 matmul in ``dtype`` on the default device (best of ``repeats``,
    after a compiling call)."""
    import jax.numpy as jnp
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def machine_info(n: int = 1024, repeats: int = 5) -> dict:
    """What the run's times depend on: devices, CPU cores, and this machine's measured
    float32 matmul rate (:func:`matmul_rate`), so that a wall time printed or written
    can be read against the machine that produced it."""
    dev = jax.devices()[0]
    return dict(platform=dev.platform, device=getattr(dev, "device_kind", str(dev)),
                devices=jax.device_count(), cpu_cores=os.cpu_count(),
                matmul_gflops_f32=round(matmul_rate("float32", n, repeats) / 1e9, 1))


def describe_machine(m: dict) -> str:
    return (f"{m['devices']} x {m['device']} ({m['platform']}), {m['cpu_cores']} CPU cores, "
            f"float32 matmul {m['matmul_gflops_f32']:.0f} GFLOP/s")


@dataclasses.dataclass(frozen=True)
class PipelinePosition:
    """Where a stage stands in a pipeline (handed to the stage by igpo_jax.pipeline):
    its progress lines then carry the stage's place and an ETA for the whole pipeline
    (the mean time of the stages run so far, times the stages left, plus the current
    stage's own ETA)."""

    index: int  # this stage, from 1
    total: int  # stages this call runs
    durations: tuple[float, ...] = ()  # seconds of the stages run before it

    def suffix(self, stage_eta: float) -> str:
        left = self.total - self.index  # stages after the current one
        if self.durations:
            eta = stage_eta + left * (sum(self.durations) / len(self.durations))
            return f" | pipeline {self.index}/{self.total} ETA {eta:.0f}s"
        return f" | pipeline {self.index}/{self.total}"


class Progress:
    """Progress lines ``desc [k/n] 12.3% rate ETA`` plus chosen metrics."""

    def __init__(self, total: int, desc: str, start: int = 0, unit: str = "step",
                 stream=None, position: PipelinePosition | None = None):
        self.total, self.desc, self.unit, self.position = total, desc, unit, position
        self.start_count = self.count = start
        self.t0 = time.time()
        self.stream = stream or sys.stdout
        self.enabled = jax.process_index() == 0

    def update(self, count: int, **metrics) -> None:
        self.count = count
        if not self.enabled:
            return
        elapsed = time.time() - self.t0
        done = count - self.start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - count) / rate if rate > 0 else float("inf")
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in metrics.items())
        eta_s = f"{eta:.0f}s" if math.isfinite(eta) else "?"
        tail = (self.position.suffix(eta) if self.position is not None and math.isfinite(eta)
                else "")
        print(f"{self.desc} [{count}/{self.total}] {100 * count / max(self.total, 1):.0f}% "
              f"{rate:.2f} {self.unit}/s ETA {eta_s} {extra}{tail}", file=self.stream,
              flush=True)
