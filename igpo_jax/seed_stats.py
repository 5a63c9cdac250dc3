"""Confidence intervals for multi-seed sweeps (``results.json`` -> seed statistics).

A seed sweep names its members ``GROUP@SEED`` (e.g. ``igpo@101``): every group is
run once per seed from the same starting checkpoint, and the same seed gives every
group the same prompts and the same randomness at the start, so groups can be
compared *paired by seed*. On a fixed held-out set they are also paired by problem.

- :func:`t_interval`: mean and 95% Student-t interval over seeds.
- :func:`paired`: the per-seed difference of two groups, mean and t interval.
- :func:`hierarchical_bootstrap`: the difference of two groups' mean accuracy,
  resampling seeds and, within each seed, held-out problems (both paired).

Everything is numpy; nothing here needs a model.
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping, Sequence

import numpy as np

from igpo_jax import storage

# two-sided 95% Student-t quantiles t_{0.975, df}
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
         16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042,
         40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (table; the
    nearest tabulated df at or below, 1.96 for df > 120)."""
    if df < 1:
        return math.nan
    if df > 120:
        return 1.96
    return _T975[max(k for k in _T975 if k <= df)]


def t_interval(values: Sequence[float]) -> dict:
    """Mean, sample std and 95% t interval of ``values`` (one per seed)."""
    x = np.asarray(values, float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return dict(n=n, mean=mean, std=None, lo=None, hi=None)
    sd = float(x.std(ddof=1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return dict(n=n, mean=mean, std=sd, lo=mean - half, hi=mean + half)


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> dict:
    """``a - b`` over the seeds both have: mean, 95% t interval, and the seeds."""
    seeds = sorted(set(a) & set(b))
    out = t_interval([a[s] - b[s] for s in seeds])
    out["seeds"] = seeds
    out["wins"] = int(sum(a[s] > b[s] for s in seeds))
    return out


def hierarchical_bootstrap(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray],
                           reps: int = 10000, seed: int = 0) -> dict:
    """95% percentile interval of mean(a) - mean(b): seeds resampled with replacement,
    then held-out problems within each drawn seed (the same draws for a and b).

    ``a[seed]``, ``b[seed]``: per-problem correctness ``[P]`` (same problem order).
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return dict(lo=None, hi=None, reps=0)
    A = np.stack([np.asarray(a[s], float) for s in seeds])
    B = np.stack([np.asarray(b[s], float) for s in seeds])
    if A.shape != B.shape:
        raise ValueError(f"per-problem results differ in shape: {A.shape} vs {B.shape}")
    rng = np.random.default_rng(seed)
    n, p = A.shape
    diffs = np.empty(reps)
    d = A - B
    for r in range(reps):
        si = rng.integers(0, n, n)
        pi = rng.integers(0, p, (n, p))
        diffs[r] = d[si[:, None], pi].mean()
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return dict(mean=float(d.mean()), lo=float(lo), hi=float(hi), reps=reps)


def split_member(name: str) -> tuple[str, int] | None:
    """``"igpo@101"`` -> ``("igpo", 101)``; None for members that are not seeded."""
    group, sep, seed = name.rpartition("@")
    if not sep or not seed.lstrip("-").isdigit():
        return None
    return group, int(seed)


def per_problem(stage_dir: str) -> np.ndarray | None:
    """Correctness per held-out problem (mean over samples) from ``eval/generations.jsonl``."""
    path = os.path.join(stage_dir, "eval", "generations.jsonl")
    if not storage.exists(path):
        return None
    by: dict[int, list[float]] = {}
    for line in storage.read_text(path).splitlines():
        if line.strip():
            r = json.loads(line)
            by.setdefault(int(r["index"]), []).append(float(r["correct"]))
    return np.asarray([np.mean(by[i]) for i in sorted(by)])


METRICS = ("heldout_accuracy", "frac_all_wrong_groups", "frac_all_wrong_after",
           "hinted_accuracy", "all_wrong_rescued_share", "samples_used")


def seed_report(results: Mapping[str, dict], workdir: str,
                comparisons: Sequence[tuple[str, str]] = (), reps: int = 10000) -> dict:
    """Per group: each metric's mean and 95% interval over seeds; per comparison
    ``(a, b)``: the paired held-out accuracy difference a - b (t interval over seeds
    and the seeds x problems bootstrap). A comparison whose two sides were evaluated on
    different held-out sets (a start member that only has its own smaller evaluation,
    e.g. when ``pipeline.only`` ran one member) is not paired: it is listed under
    ``skipped`` with the reason."""
    groups: dict[str, dict[int, dict]] = {}
    for name, r in results.items():
        sm = split_member(name)
        if sm:
            groups.setdefault(sm[0], {})[sm[1]] = dict(r, _dir=os.path.join(workdir, name))
    out: dict = {"groups": {}, "comparisons": {}}
    for g, by_seed in groups.items():
        row = {"seeds": sorted(by_seed)}
        for m in METRICS:
            vals = [by_seed[s][m] for s in sorted(by_seed) if by_seed[s].get(m) is not None]
            if vals:
                row[m] = t_interval(vals)
        out["groups"][g] = row
    for a, b in comparisons:
        label = f"{a} - {b}"
        b = _baseline(b, results, groups, workdir)
        if a not in groups or b not in groups:
            continue
        pa = {s: per_problem(r["_dir"]) for s, r in groups[a].items()}
        pb = {s: per_problem(r["_dir"]) for s, r in groups[b].items()}
        pa = {s: v for s, v in pa.items() if v is not None}
        pb = {s: v for s, v in pb.items() if v is not None}
        sizes = {len(pa[s]) for s in pa if s in pb}, {len(pb[s]) for s in pb if s in pa}
        if sizes[0] != sizes[1]:
            out.setdefault("skipped", {})[label] = (
                f"held-out sets differ: {sorted(sizes[0])} vs {sorted(sizes[1])} problems "
                f"(is {b}'s evaluation on the sweep's held-out problems missing?)")
            continue
        acc = lambda g: {s: r["heldout_accuracy"] for s, r in groups[g].items()  # noqa: E731
                         if r.get("heldout_accuracy") is not None}
        cmp = paired(acc(a), acc(b))
        cmp["bootstrap"] = hierarchical_bootstrap(pa, pb, reps=reps)
        out["comparisons"][label] = cmp
    return out


def _baseline(name: str, results: Mapping[str, dict], groups: dict, workdir: str) -> str:
    """A comparison's second member: a seeded group, or an unseeded member (``sft``,
    evaluated as ``sft_eval`` on the same held-out problems), which then stands for
    every seed (the start checkpoint every seed's run began from)."""
    if name in groups:
        return name
    for member in (f"{name}_eval", name):
        r = results.get(member)
        if r and r.get("heldout_accuracy") is not None and any(groups.values()):
            seeds = sorted({s for g in groups.values() for s in g})
            groups[name] = {s: dict(r, _dir=os.path.join(workdir, member)) for s in seeds}
            return name
    return name


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def format_seed_report(rep: dict) -> str:
    """Markdown tables of :func:`seed_report`."""
    lines = ["| member | seeds | held-out accuracy, mean [95% CI] | all-wrong groups (rollouts) |"
             " all-wrong groups (trained on) | hinted success | all-wrong groups rescued |"
             " samples used |", "|" + "---|" * 8]
    for g, row in rep["groups"].items():
        def cell(m, pct=True):
            v = row.get(m)
            if v is None:
                return "-"
            if not pct:
                return f"{v['mean']:.0f}"
            ci = f" [{_pct(v['lo'])}, {_pct(v['hi'])}]" if v.get("lo") is not None else ""
            return f"{_pct(v['mean'])}%{ci}"
        lines.append(f"| {g} | {len(row['seeds'])} | {cell('heldout_accuracy')} | "
                     f"{cell('frac_all_wrong_groups')} | {cell('frac_all_wrong_after')} | "
                     f"{cell('hinted_accuracy')} | {cell('all_wrong_rescued_share')} | "
                     f"{cell('samples_used', False)} |")
    if rep["comparisons"]:
        lines += ["", "| paired difference (held-out accuracy) | seeds | mean | 95% CI (t, over "
                  "seeds) | 95% CI (bootstrap, seeds x problems) | seeds won |",
                  "|" + "---|" * 6]
        for name, c in rep["comparisons"].items():
            bs = c["bootstrap"]
            t_ci = f"[{_pct(c['lo'])}, {_pct(c['hi'])}]" if c.get("lo") is not None else "-"
            b_ci = f"[{_pct(bs['lo'])}, {_pct(bs['hi'])}]" if bs.get("lo") is not None else "-"
            lines.append(f"| {name} | {c['n']} | {_pct(c['mean'])} pts | {t_ci} | {b_ci} | "
                         f"{c['wins']}/{c['n']} |")
    for name, why in rep.get("skipped", {}).items():
        lines.append(f"\nnot compared: {name}: {why}")
    return "\n".join(lines)
