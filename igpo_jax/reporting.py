"""Reports of a pipeline's members: each member's summary read back from its folder,
the results table, the held-out accuracy plot, and for a ``GROUP@SEED`` sweep the seed
report (intervals over seeds, paired differences) and its plot. The stage runner
(``igpo_jax/pipeline.py``) calls these at the end of a run."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterable, Mapping

import numpy as np

from igpo_jax import seed_stats, storage
from igpo_jax.metrics import read_metrics, strict
from igpo_jax.records import read_updates

log = logging.getLogger(__name__)


def member_summary(stage_dir: str) -> dict:
    """Training and evaluation numbers of one finished member."""
    out: dict[str, Any] = {}
    eval_path = os.path.join(stage_dir, "eval", "summary.json")
    if storage.exists(eval_path):
        ev = json.loads(storage.read_text(eval_path))
        out.update(heldout_accuracy=ev["accuracy"], heldout_by_meta=ev["by_meta"],
                   heldout_examples=ev.get("num_examples"),
                   eval_mode=ev["sampler"].get("mode", "exact"))
    # one record per rollout batch: the last update's (each carries its batch)
    rollouts = {u.rollout_step: u for u in read_updates(os.path.join(stage_dir, "metrics.jsonl"))}
    rs = [rollouts[k] for k in sorted(rollouts)]
    if rs:
        ro = [u.rollout for u in rs]
        groups = len(rs) * (rs[0].groups_per_step or 1)
        hinted = sum(r.hinted_samples for r in ro)
        triggered = sum(r.inpaint_triggered for r in ro)
        by_meta: dict[str, list[int]] = {}
        for r in ro:
            for meta, (ok, n) in (r.hinted_by_meta or {}).items():
                acc = by_meta.setdefault(meta, [0, 0])
                acc[0] += ok
                acc[1] += n
        out.update(
            rollout_steps=len(rs),
            train_accuracy=float(np.mean([r.accuracy for r in ro])),
            frac_all_wrong_groups=float(np.mean([r.frac_all_wrong_groups for r in ro])),
            frac_all_wrong_after=float(np.mean([r.frac_all_wrong_after for r in ro])),
            inpaint_trigger_rate=float(triggered / max(groups, 1)),
            num_replaced=int(sum(r.num_replaced for r in ro)),
            samples_used=int(sum(u.rollouts_per_step + u.rollout.hinted_samples for u in rs)),
            # extra (hinted, or for the resampling control plain) completions: how many
            # were correct, and the share of triggered groups that got at least one
            hinted_accuracy=(sum((r.hinted_accuracy or 0) * r.hinted_samples for r in ro)
                             / hinted) if hinted else None,
            all_wrong_rescued_share=(sum(r.all_wrong_rescued for r in ro) / triggered)
            if triggered else None,
            hinted_by_meta={m: ok / n for m, (ok, n) in sorted(by_meta.items()) if n},
            rollout_mode=ro[-1].rollout_mode,
            rollout_seconds=float(sum(r.rollout_seconds for r in ro)),
        )
    hpath = os.path.join(stage_dir, "heldout.jsonl")
    if storage.exists(hpath):
        out["heldout_curve"] = read_metrics(hpath)
    samples = np.cumsum([u.rollouts_per_step + u.rollout.hinted_samples for u in rs])
    out["curve"] = [dict(rollouts=u.rollout_step * u.rollouts_per_step, samples=int(n),
                         frac_all_wrong_groups=u.rollout.frac_all_wrong_groups,
                         frac_all_wrong_after=u.rollout.frac_all_wrong_after,
                         accuracy=u.rollout.accuracy) for u, n in zip(rs, samples)]
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


def report_seeds(results: Mapping[str, dict], workdir: str,
                 compare: Iterable[tuple[str, str]], name: str = "seed_report") -> dict:
    """Seed statistics of a ``GROUP@SEED`` sweep: ``NAME.json``, tables on the terminal
    and ``NAME.md``, and the plot of means with 95% bands (``seeds.png`` for the default
    name, else ``NAME.png``)."""
    rep = seed_stats.seed_report(results, workdir, list(compare))
    storage.write_text(os.path.join(workdir, f"{name}.json"),
                       json.dumps(strict(rep), indent=2, allow_nan=False))
    text = seed_stats.format_seed_report(rep)
    storage.write_text(os.path.join(workdir, f"{name}.md"), text + "\n")
    print(text)
    plot = "seeds.png" if name == "seed_report" else f"{name}.png"
    plot_seeds(results, rep, os.path.join(workdir, plot))
    print(f"seed report: {os.path.join(workdir, name + '.md')}")
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
