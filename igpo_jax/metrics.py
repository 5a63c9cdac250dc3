"""Metrics: ``metrics.jsonl`` (one object per optimiser step), TensorBoard when
``tensorboardX`` is installed, and progress lines with rates on the terminal.
Only process 0 writes."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

import jax


def _clean(v: Any):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else (1e308 if v > 0 else -1e308)
    return v


class MetricsWriter:
    def __init__(self, workdir: str, filename: str = "metrics.jsonl", tensorboard: bool = True):
        self.enabled = jax.process_index() == 0
        self.path = os.path.join(workdir, filename)
        self.tb = None
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
                self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:
                self.tb = None

    def truncate_after(self, step: int) -> None:
        """Drops records of steps after ``step`` (written after the restored checkpoint)."""
        if not self.enabled or not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            keep = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        with open(self.path, "w", encoding="utf-8") as f:
            f.writelines(keep)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: _clean(v) for k, v in record.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, record["step"])

    def close(self):
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Progress:
    """Progress lines ``desc [k/n] 12.3% rate ETA`` plus chosen metrics."""

    def __init__(self, total: int, desc: str, start: int = 0, unit: str = "step",
                 stream=None):
        self.total, self.desc, self.unit = total, desc, unit
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
        print(f"{self.desc} [{count}/{self.total}] {100 * count / max(self.total, 1):.0f}% "
              f"{rate:.2f} {self.unit}/s ETA {eta_s} {extra}", file=self.stream, flush=True)
