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
on the terminal and (with matplotlib) ``results.png``.
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
import numpy as np

from igpo_jax import configlib, seed_stats, storage
from igpo_jax.metrics import read_metrics, strict

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
    return sub


def _member_summary(stage_dir: str) -> dict:
    """Training and evaluation numbers of one finished member."""
    out: dict[str, Any] = {}
    eval_path = os.path.join(stage_dir, "eval", "summary.json")
    if storage.exists(eval_path):
        ev = json.loads(storage.read_text(eval_path))
        out.update(heldout_accuracy=ev["accuracy"], heldout_by_meta=ev["by_meta"],
                   heldout_examples=ev.get("num_examples"),
                   eval_mode=ev["sampler"].get("mode", "exact"))
    mpath = os.path.join(stage_dir, "metrics.jsonl")
    rows = read_metrics(mpath) if storage.exists(mpath) else []
    rollouts = {r["rollout_step"]: r for r in rows if "rollout_step" in r}
    if rollouts:
        rs = [rollouts[k] for k in sorted(rollouts)]
        groups = len(rs) * (rs[0].get("groups_per_step") or 1)
        hinted = sum(r.get("hinted_samples", 0) for r in rs)
        triggered = sum(r.get("inpaint_triggered", 0) for r in rs)
        by_meta: dict[str, list[int]] = {}
        for r in rs:
            for meta, (ok, n) in (r.get("hinted_by_meta") or {}).items():
                acc = by_meta.setdefault(meta, [0, 0])
                acc[0] += ok
                acc[1] += n
        out.update(
            rollout_steps=len(rs),
            train_accuracy=float(np.mean([r["accuracy"] for r in rs])),
            frac_all_wrong_groups=float(np.mean([r["frac_all_wrong_groups"] for r in rs])),
            frac_all_wrong_after=float(np.mean([r["frac_all_wrong_after"] for r in rs])),
            inpaint_trigger_rate=float(sum(r["inpaint_triggered"] for r in rs) / max(groups, 1)),
            num_replaced=int(sum(r["num_replaced"] for r in rs)),
            samples_used=int(sum(r["rollouts_per_step"] + r["hinted_samples"] for r in rs)),
            # extra (hinted, or for the resampling control plain) completions: how many
            # were correct, and the share of triggered groups that got at least one
            hinted_accuracy=(sum((r.get("hinted_accuracy") or 0) * r.get("hinted_samples", 0)
                                 for r in rs) / hinted) if hinted else None,
            all_wrong_rescued_share=(sum(r.get("all_wrong_rescued", 0) for r in rs)
                                     / triggered) if triggered else None,
            hinted_by_meta={m: ok / n for m, (ok, n) in sorted(by_meta.items()) if n},
            rollout_mode=rs[-1].get("rollout_mode", "exact"),
            rollout_seconds=float(sum(r["rollout_seconds"] for r in rs)),
        )
    hpath = os.path.join(stage_dir, "heldout.jsonl")
    if storage.exists(hpath):
        out["heldout_curve"] = read_metrics(hpath)
    rs = [rollouts[k] for k in sorted(rollouts)]
    samples = np.cumsum([r["rollouts_per_step"] + r.get("hinted_samples", 0) for r in rs])
    out["curve"] = [dict(rollouts=r["rollout_step"] * r["rollouts_per_step"],
                         samples=int(n), frac_all_wrong_groups=r["frac_all_wrong_groups"],
                         frac_all_wrong_after=r["frac_all_wrong_after"],
                         accuracy=r["accuracy"]) for r, n in zip(rs, samples)]
    return out


def format_results(results: Mapping[str, dict]) -> str:
    head = ("| stage | held-out accuracy | all-wrong groups (rollouts) | all-wrong groups "
            "(trained on) | inpainting trigger rate | replaced | samples used | rollout mode | "
            "rollout time |")
    lines = [head, "|" + "---|" * 9]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for name, r in results.items():
        lines.append(f"| {name} | {pct(r.get('heldout_accuracy'))} | "
                     f"{pct(r.get('frac_all_wrong_groups'))} | "
                     f"{pct(r.get('frac_all_wrong_after'))} | "
                     f"{pct(r.get('inpaint_trigger_rate'))} | {r.get('num_replaced', '-')} | "
                     f"{r.get('samples_used', '-')} | {r.get('rollout_mode', '-')} | "
                     + (f"{r['rollout_seconds']:.0f} s |" if "rollout_seconds" in r else "- |"))
    return "\n".join(lines)


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a binomial proportion ``p`` over ``n`` trials."""
    if n <= 0:
        return (float("nan"), float("nan"))
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (mid - half, mid + half)


def _save_figure(fig, path: str) -> None:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    storage.path(path).write_bytes(buf.getvalue())


def plot_results(results: Mapping[str, dict], path: str) -> bool:
    """Left: held-out accuracy against completions sampled (hinted ones included):
    the periodic evaluations (their own, smaller problem set) as lines, the final
    evaluation (the table's number) as a marker, each with a 95% binomial interval.
    Right: the share of all-wrong groups, as running means, in the rollouts (dotted)
    and in the batch trained on (solid), with each method's average in the legend."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install igpo_jax[plot]); no %s", path)
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    n_periodic = n_final = None
    for i, (name, r) in enumerate(results.items()):
        if not r.get("curve"):
            continue
        color = f"C{i}"
        cv = r["curve"]
        samples = {k + 1: p["samples"] for k, p in enumerate(cv)}
        hc = r.get("heldout_curve") or []
        if hc:
            x = [samples.get(h["step"], 0) for h in hc]
            y = [h["accuracy"] for h in hc]
            n_periodic = hc[0].get("num_examples") or n_periodic
            lo_hi = [wilson(h["accuracy"], h.get("num_examples") or 0) for h in hc]
            ax1.plot(x, y, marker="o", ms=3, color=color, label=f"{name}, periodic")
            if all(np.isfinite(v) for lh in lo_hi for v in lh):
                ax1.fill_between(x, [lh[0] for lh in lo_hi], [lh[1] for lh in lo_hi],
                                 color=color, alpha=0.12)
        if r.get("heldout_accuracy") is not None:
            n_final = r.get("heldout_examples") or n_final
            acc = r["heldout_accuracy"]
            lo, hi = wilson(acc, n_final or 0)
            ax1.errorbar([cv[-1]["samples"]], [acc], yerr=[[acc - lo], [hi - acc]]
                         if np.isfinite(lo) else None, fmt="s", ms=7, capsize=4, color=color,
                         label=f"{name}, final {100 * acc:.1f}%")
        x = [p["samples"] for p in cv]
        run = lambda v: np.cumsum(v) / np.arange(1, len(v) + 1)  # noqa: E731
        after = [p["frac_all_wrong_after"] for p in cv]
        before = [p["frac_all_wrong_groups"] for p in cv]
        ax2.plot(x, run(after), color=color,
                 label=f"{name}: trained on (avg {100 * np.mean(after):.1f}%)")
        ax2.plot(x, run(before), color=color, ls=(0, (1, 2)), lw=2.6, zorder=3,
                 label=f"{name}: in rollouts (avg {100 * np.mean(before):.1f}%)")
    ax1.set(xlabel="completions sampled (hinted included)", ylabel="held-out accuracy",
            title=f"Held-out accuracy, 95% binomial intervals\n(periodic: {n_periodic or '?'} "
                  f"problems; final: {n_final or '?'} problems)")
    ax1.set_ylim(0, 1)
    ax2.set(xlabel="completions sampled (hinted included)", ylabel="share of groups",
            title="All-wrong groups (running mean)")
    ax2.set_ylim(0, None)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best", framealpha=0.8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return True


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
    results = {name: _member_summary(os.path.join(workdir, name)) for name in names
               if storage.exists(os.path.join(workdir, name, "DONE.json"))}
    if jax.process_index() == 0:
        storage.write_text(os.path.join(workdir, "results.json"),
                           json.dumps(strict(results), indent=2, allow_nan=False))
        storage.write_text(os.path.join(workdir, "machine.json"), json.dumps(
            dict(machine, wall_seconds_this_call=round(time.time() - t_start, 1)), indent=2))
        plotted = plot_results(results, os.path.join(workdir, "results.png"))
        print(format_results(results))
        print(f"[pipeline] {time.time() - t_start:.0f} s in this call on "
              f"{metrics.describe_machine(machine)}")
        print(f"results: {os.path.join(workdir, 'results.json')}"
              + (f", plot: {os.path.join(workdir, 'results.png')}" if plotted else ""))
        if any(seed_stats.split_member(n) for n in results):
            report_seeds(results, workdir, [tuple(p) for p in c.pipeline.compare])
    return results


def report_seeds(results: Mapping[str, dict], workdir: str,
                 compare: Iterable[tuple[str, str]]) -> dict:
    """Seed statistics of a ``GROUP@SEED`` sweep: ``seed_report.json``, tables on the
    terminal and ``seed_report.md``, and ``seeds.png`` (means with 95% bands)."""
    rep = seed_stats.seed_report(results, workdir, list(compare))
    storage.write_text(os.path.join(workdir, "seed_report.json"),
                       json.dumps(strict(rep), indent=2, allow_nan=False))
    text = seed_stats.format_seed_report(rep)
    storage.write_text(os.path.join(workdir, "seed_report.md"), text + "\n")
    print(text)
    plot_seeds(results, rep, os.path.join(workdir, "seeds.png"))
    print(f"seed report: {os.path.join(workdir, 'seed_report.md')}")
    return rep


def plot_seeds(results: Mapping[str, dict], rep: dict, path: str) -> bool:
    """Held-out accuracy (periodic evaluations, mean and 95% t band over seeds) against
    completions sampled (hinted / extra ones included); the running share of all-wrong
    groups trained on; the final held-out accuracy per member with its interval."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install igpo_jax[plot]); no %s", path)
        return False
    groups: dict[str, list[dict]] = {}
    for name, r in results.items():
        sm = seed_stats.split_member(name)
        if sm and r.get("curve"):
            groups.setdefault(sm[0], []).append(r)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
    band = lambda m: [seed_stats.t_interval(v) for v in m]  # noqa: E731
    n_eval = None
    for gi, (g, runs) in enumerate(groups.items()):
        color = f"C{gi}"
        curves = [r.get("heldout_curve") or [] for r in runs]
        steps = (sorted(set.intersection(*[{h["step"] for h in hc} for hc in curves]))
                 if all(curves) else [])
        if steps:
            acc = [[next(h["accuracy"] for h in hc if h["step"] == st) for hc in curves]
                   for st in steps]
            x = [np.mean([_samples_at(r, st) for r in runs]) for st in steps]
            ci = band(acc)
            ax1.plot(x, [c["mean"] for c in ci], marker="o", color=color,
                     label=f"{g} (n={len(runs)})")
            if len(runs) > 1:
                ax1.fill_between(x, [c["lo"] for c in ci], [c["hi"] for c in ci], color=color,
                                 alpha=0.15)
            n_eval = n_eval or runs[0]["heldout_curve"][0].get("num_examples")
        length = min(len(r["curve"]) for r in runs)
        run_means = [np.cumsum([p["frac_all_wrong_after"] for p in r["curve"][:length]])
                     / np.arange(1, length + 1) for r in runs]
        ci = band(np.asarray(run_means).T)
        x = np.mean([[p["samples"] for p in r["curve"][:length]] for r in runs], axis=0)
        avg = rep["groups"].get(g, {}).get("frac_all_wrong_after", {}).get("mean")
        ax2.plot(x, [c["mean"] for c in ci], color=color,
                 label=f"{g} (average {100 * avg:.1f}%)" if avg is not None else g)
        if len(runs) > 1:
            ax2.fill_between(x, [c["lo"] for c in ci], [c["hi"] for c in ci], color=color,
                             alpha=0.15)
        final = rep["groups"].get(g, {}).get("heldout_accuracy")
        if final:
            vals = [r["heldout_accuracy"] for r in runs if r.get("heldout_accuracy") is not None]
            ax3.scatter([gi] * len(vals), vals, color=color, alpha=0.5, s=14)
            if final.get("lo") is not None:
                ax3.errorbar([gi + 0.15], [final["mean"]], yerr=[[final["mean"] - final["lo"]],
                             [final["hi"] - final["mean"]]], fmt="s", color=color, capsize=4)
    ax1.set(xlabel="completions sampled (hinted / extra included), mean over seeds",
            ylabel="held-out accuracy",
            title=f"Periodic held-out evaluation ({n_eval or '?'} problems), 95% band")
    ax2.set(xlabel="completions sampled", ylabel="share of groups",
            title="All-wrong groups trained on (running mean, 95% band)")
    ax3.set_xticks(range(len(groups)), list(groups))
    ax3.set(ylabel="held-out accuracy", title="Final evaluation: seeds and mean [95% CI]")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return True


def _samples_at(r: dict, step: int) -> float:
    """Completions sampled (hinted / extra included) by the end of rollout step ``step``."""
    cv = r.get("curve") or []
    return cv[step - 1]["samples"] if 0 < step <= len(cv) else 0.0


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
