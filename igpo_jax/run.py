"""Dispatches a validated config to its stage, after the checks that need no compute."""

from __future__ import annotations

import json
import logging
import os
from typing import Iterable

import jax
import ml_collections

from igpo_jax import configlib, storage

log = logging.getLogger(__name__)


def prepare_workdir(c: ml_collections.ConfigDict, workdir: str | None) -> str:
    workdir = workdir or c.get("workdir") or ""
    if not workdir:
        raise configlib.ConfigError("no workdir: pass --workdir DIR (or set config.workdir)")
    try:
        storage.makedirs(workdir)
        probe = os.path.join(workdir, ".write_test")
        storage.write_text(probe, "ok")
        storage.remove(probe)
    except (OSError, ImportError) as e:
        raise configlib.ConfigError(f"workdir {workdir} is not writable: {e}") from e
    if jax.process_index() == 0:
        from igpo_jax import workdir_lock
        try:
            workdir_lock.acquire(workdir)
        except workdir_lock.WorkdirBusy as e:
            raise configlib.ConfigError(str(e)) from None
        storage.write_text(os.path.join(workdir, "config.json"),
                           c.to_json_best_effort(indent=2))
    return workdir


def run(c: ml_collections.ConfigDict, workdir: str | None, *,
        command_line_keys: Iterable[str] = (), position=None) -> dict:
    """The entry point: checks ``c`` and converts it to typed sections once
    (:func:`configlib.validate`), then runs its mode. A pipeline splits the raw config
    into its stages first, each of which comes back here (with its ``position``, a
    ``metrics.PipelinePosition``, for the progress lines). ``command_line_keys``: the
    keys the command line set (they win over a pipeline stage's own values)."""
    from igpo_jax import workdir_lock
    run_cfg = configlib.validate(c)
    workdir = prepare_workdir(c, workdir)
    try:
        if run_cfg.mode == "pipeline":
            from igpo_jax import pipeline
            return pipeline.run_pipeline(c, workdir, run_stage=run,
                                         command_line_keys=command_line_keys)
        return _run_stage(run_cfg, workdir, position)
    finally:
        workdir_lock.release(workdir)


def _run_stage(c: "configlib.RunConfig", workdir: str, position=None) -> dict:
    if c.mode == "eval":
        from igpo_jax import evaluate
        return evaluate.run_eval(c, workdir, position=position)
    if c.mode == "rl":
        from igpo_jax.rl.trainer import train
    else:
        from igpo_jax.sft import train
    out = train(c, workdir, position=position)
    if c.eval.after_train:
        from igpo_jax import evaluate
        out["eval"] = evaluate.run_eval(c, workdir, params=out["params"])
    return {k: v for k, v in out.items() if k != "params"}


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=str)
