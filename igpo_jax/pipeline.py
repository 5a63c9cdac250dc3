"""Multi-stage recipes and config sweeps (``mode = "pipeline"``).

A pipeline is a config whose ``pipeline.stages`` lists ``(name, overrides)``
members; ``overrides`` maps dotted config keys to values, and ``{workdir}`` in
a string value is the pipeline's workdir (so a stage can start from another's
checkpoint: ``"model.init_from": "{workdir}/sft"``). Each member runs in
``WORKDIR/name`` and leaves ``DONE.json`` when finished; a re-run skips finished
members and resumes an interrupted one from its checkpoint. A sweep is the same
thing with members built by :func:`product`. ``pipeline.only`` runs one member
(for a cluster scheduler); ``pipeline.print_commands`` prints one command per
member instead of running them.

At the end the members' results are aggregated into ``results.json``, a table
on the terminal and (with matplotlib) ``results.png``; a sweep of ``GROUP@SEED``
members also gets the seed report (``igpo_jax/reporting.py``).
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import shlex
import sys
import time
from typing import Any, Iterable, Mapping

import jax
import ml_collections

from igpo_jax import configlib, reporting, seed_stats, storage
from igpo_jax.metrics import strict

log = logging.getLogger(__name__)


def product(base: Mapping[str, Any] | None = None, **axes: Iterable[Any]
            ) -> list[tuple[str, dict[str, Any]]]:
    """Members for every combination of ``axes`` (dotted key -> values), named
    ``key=value,...``; ``base`` overrides are added to each."""
    keys = list(axes)
    out = []
    for values in itertools.product(*(list(axes[k]) for k in keys)):
        name = ",".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, values))
        out.append((name.replace("/", "_"), {**(base or {}), **dict(zip(keys, values))}))
    return out


def apply_overrides(c: ml_collections.ConfigDict, overrides: Mapping[str, Any],
                    workdir: str, stage: str = "",
                    command_line_keys: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """The config of one stage: ``c`` with the stage's ``overrides`` (``{workdir}`` in a
    string value becomes ``workdir``). Keys in ``command_line_keys`` (set by
    ``--config.KEY=VALUE``) win over the stage's own value, in every stage, and a line
    says so."""
    sub = copy.deepcopy(c)
    with sub.unlocked():
        sub.pipeline.stages = ()
    for key, value in overrides.items():
        if key in command_line_keys:
            print(f"[pipeline] {stage or 'stage'}: --config.{key} from the command line replaces "
                  f"the stage's own {key}={value!r}", flush=True)
            continue
        if isinstance(value, str):
            value = value.replace("{workdir}", workdir)
        node = sub
        parts = key.split(".")
        for p in parts[:-1]:
            if p not in node:
                raise configlib.ConfigError(f"pipeline override {key!r}: no config section {p!r}")
            node = node[p]
        if parts[-1] not in node:
            raise configlib.ConfigError(f"pipeline override {key!r}: unknown key")
        node[parts[-1]] = value
    if sub.metrics.wandb and not sub.metrics.wandb_group:  # a sweep's runs, one W&B group
        sub.metrics.wandb_group = os.path.basename(os.path.abspath(workdir))
    return sub


def command_for(member: str, workdir: str) -> str:
    args, skip = [sys.executable, "-m", "igpo_jax.main"], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--workdir":
            skip = True  # "--workdir DIR": drop both
        elif not a.startswith("--config.pipeline.") and not a.startswith("--workdir="):
            args.append(a)
    return " ".join(shlex.quote(a) for a in args) + \
        f" --workdir {shlex.quote(workdir)} --config.pipeline.only={shlex.quote(member)}"


ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


def export_stage(stage_dir: str, out_dir: str) -> None:
    """Copies a finished stage as a small shippable folder: its final parameters
    (no optimiser state), metrics, evaluation and DONE record."""
    from igpo_jax.checkpoint import Checkpointer
    if not storage.exists(os.path.join(stage_dir, "DONE.json")):
        raise FileNotFoundError(f"{stage_dir} has no DONE.json: the stage is not finished")
    src = Checkpointer(os.path.join(stage_dir, "checkpoints"))
    step = src.latest_step()
    restored = src.manager.restore(step)  # untyped restore of the saved items
    src.close()
    if dict(restored["meta"]).get("lora"):
        raise ValueError(f"{stage_dir} holds LoRA adapters only (its base is not in the "
                         f"checkpoint); export merged weights with --export_hf instead")
    storage.rmtree(out_dir)
    dst = Checkpointer(os.path.join(out_dir, "checkpoints"), keep=1, async_save=False)
    dst.save(step, dict(restored["params"]), None, dict(restored["meta"]), force=True)
    dst.wait()
    dst.close()
    for name in ("DONE.json", "config.json", "metrics.jsonl", "sft_data.json",
                 os.path.join("eval", "summary.json"), os.path.join("eval", "generations.jsonl")):
        if storage.exists(os.path.join(stage_dir, name)):
            storage.makedirs(os.path.dirname(os.path.join(out_dir, name)))
            storage.copy_file(os.path.join(stage_dir, name), os.path.join(out_dir, name))


def install_shipped(c: ml_collections.ConfigDict, workdir: str) -> list[str]:
    """Puts shipped stage outputs (``pipeline.shipped``: stage -> asset folder) in place
    of stages not yet run, when ``pipeline.use_shipped`` is on."""
    installed: list[str] = []
    if not c.pipeline.use_shipped:
        return installed
    for name, asset in dict(c.pipeline.shipped).items():
        src = asset if os.path.isabs(asset) else os.path.join(ASSETS, asset)
        dst = os.path.join(workdir, name)
        if storage.exists(os.path.join(dst, "DONE.json")):
            continue
        if not storage.exists(os.path.join(src, "DONE.json")):
            print(f"[pipeline] {name}: no shipped result at {src}; running the stage", flush=True)
            continue
        storage.rmtree(dst)
        for rel in list(storage.files_under(src)):
            storage.makedirs(os.path.dirname(os.path.join(dst, rel)))
            storage.copy_file(os.path.join(src, rel), os.path.join(dst, rel))
        storage.write_text(os.path.join(dst, SHIPPED_MARKER), json.dumps({"source": src}))
        installed.append(name)
        print(f"[pipeline] {name}: installed from the shipped result {src} (produced by this "
              f"stage's own command; --config.pipeline.use_shipped=False re-creates it)",
              flush=True)
    return installed


SHIPPED_MARKER = "SHIPPED.json"  # in a stage folder installed from igpo_jax/assets


def run_pipeline(c: ml_collections.ConfigDict, workdir: str, run_stage,
                 command_line_keys: Iterable[str] = ()) -> dict:
    """Runs the stages in order with ``run_stage(config, stage_dir, position=...) ->
    summary`` (the caller's stage runner: ``igpo_jax.run.run``; passed in so that imports
    go one way, run -> pipeline). ``command_line_keys``: keys set by ``--config.key=value``,
    which win over the stages' own overrides."""
    command_line_keys = frozenset(command_line_keys)
    stages = list(c.pipeline.stages)
    if not stages:
        raise configlib.ConfigError("config.pipeline.stages is empty: nothing to run")
    names = [name for name, _ in stages]
    if len(set(names)) != len(names):
        raise configlib.ConfigError(f"config.pipeline.stages has duplicate names: {names}")
    if c.pipeline.only and c.pipeline.only not in names:
        raise configlib.ConfigError(f"config.pipeline.only={c.pipeline.only!r}; members: {names}")
    subs = {name: apply_overrides(c, ov, workdir, name, command_line_keys)
            for name, ov in stages}
    for sub in subs.values():
        configlib.validate(sub, check_paths=False)
    if c.pipeline.print_commands:
        for name in names:
            print(command_for(name, workdir))
        return {}
    installed = install_shipped(c, workdir) if jax.process_index() == 0 else []
    from igpo_jax import metrics
    machine = metrics.machine_info()
    t_start = time.time()
    durations: list[float] = []  # of the stages this call ran
    print(f"[pipeline] machine: {metrics.describe_machine(machine)}", flush=True)
    for name in names:
        if c.pipeline.only and name != c.pipeline.only:
            continue
        stage_dir = os.path.join(workdir, name)
        done = os.path.join(stage_dir, "DONE.json")
        if storage.exists(done):
            if name in installed:
                continue  # its line was printed when it was installed
            if storage.exists(os.path.join(stage_dir, SHIPPED_MARKER)):
                print(f"[pipeline] {name}: installed from the shipped result earlier, not "
                      f"re-run", flush=True)
            else:
                print(f"[pipeline] {name}: finished earlier, skipping ({done})", flush=True)
            continue
        if c.pipeline.report_only:
            print(f"[pipeline] {name}: not finished; not run (pipeline.report_only)", flush=True)
            continue
        todo = [n for n in names if (not c.pipeline.only or n == c.pipeline.only)
                and not storage.exists(os.path.join(workdir, n, "DONE.json"))]
        position = metrics.PipelinePosition(len(durations) + 1, len(durations) + len(todo),
                                            tuple(durations))
        print(f"[pipeline] {name}: running in {stage_dir} (stage {position.index} "
              f"of the {position.total} this call runs)", flush=True)
        t_stage = time.time()
        summary = run_stage(subs[name], stage_dir, position=position)
        durations.append(time.time() - t_stage)
        if jax.process_index() == 0:
            storage.write_text(done, json.dumps(
                strict(json.loads(json.dumps(summary, default=str))), indent=2, allow_nan=False))
    results = {name: reporting.member_summary(os.path.join(workdir, name)) for name in names
               if storage.exists(os.path.join(workdir, name, "DONE.json"))}
    if jax.process_index() == 0:
        storage.write_text(os.path.join(workdir, "results.json"),
                           json.dumps(strict(results), indent=2, allow_nan=False))
        storage.write_text(os.path.join(workdir, "machine.json"), json.dumps(
            dict(machine, wall_seconds_this_call=round(time.time() - t_start, 1)), indent=2))
        plotted = reporting.plot_results(results, os.path.join(workdir, "results.png"))
        print(reporting.format_results(results))
        print(f"[pipeline] {time.time() - t_start:.0f} s in this call on "
              f"{metrics.describe_machine(machine)}")
        print(f"results: {os.path.join(workdir, 'results.json')}"
              + (f", plot: {os.path.join(workdir, 'results.png')}" if plotted else ""))
        if any(seed_stats.split_member(n) for n in results):
            reporting.report_seeds(results, workdir, [tuple(p) for p in c.pipeline.compare],
                                   c.pipeline.report_name)
    return results


def recipe_stages(rl_algos: Iterable[str] = ("grpo", "igpo")) -> tuple:
    """The paper's recipe as stages: SFT, then each RL algorithm from the SFT
    checkpoint (same seed, same rollout budget), each evaluated on the held-out
    split when it ends."""
    stages = [("sft", {"mode": "sft", "eval.after_train": True, "eval.every": 0})]
    for algo in rl_algos:
        stages.append((algo, {"mode": "rl", "rl.algo": algo, "model.init_from": "{workdir}/sft",
                              "eval.after_train": True}))
    return tuple(stages)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--export-stage":
        raise SystemExit("usage: python -m igpo_jax.pipeline --export-stage STAGE_DIR OUT_DIR")
    export_stage(sys.argv[2], sys.argv[3])
    print(f"exported {sys.argv[2]} to {sys.argv[3]}")
