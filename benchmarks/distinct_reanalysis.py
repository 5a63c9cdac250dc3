"""The running-sum seed sweep (docs/running_sum/seed_results.json) re-read over distinct problems.

That sweep's 1,000 held-out rows held 679 distinct problems (2 terms: 117 rows of 4
problems; 3 terms: 144 rows of 24), so its accuracies weighted a handful of short
problems a hundred times over. This script re-draws the sweep's held-out rows exactly
as they were drawn then (data seed 0, the sampling order of the generator, without
the rule that now keeps held-out problems distinct), counts distinct problems per
length, and re-weights each member's per-length accuracy by distinct problems instead
of rows. (Per-row results were not kept; within a length, copies of a problem get the
same greedy answer, so a length's row accuracy weighs its problems by their copies:
the re-weighting across lengths is exact, within a length it is not.) Prints the
per-member means with 95% t intervals over the 5 seeds and the paired differences.

    python benchmarks/distinct_reanalysis.py
"""

import collections
import json
import os

import numpy as np

from igpo_jax import seed_stats
from igpo_jax.data import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def old_heldout_rows(num=1000, seed=0, modulus=5, lo=2, hi=8, share=0.2):
    rng = np.random.default_rng([seed, 1])
    rows = []
    while len(rows) < num:
        n = int(rng.choice(np.arange(lo, hi + 1)))
        terms = tuple(rng.integers(0, modulus, n).tolist())
        if synthetic.is_heldout(list(terms), share):
            rows.append(terms)
    return rows


def main():
    rows = old_heldout_rows()
    by = collections.defaultdict(list)
    for r in rows:
        by[len(r)].append(r)
    n_rows = {k: len(v) for k, v in by.items()}
    n_distinct = {k: len(set(v)) for k, v in by.items()}
    print(f"{len(rows)} rows, {len(set(rows))} distinct problems; by terms "
          f"(rows, distinct): {dict((k, (n_rows[k], n_distinct[k])) for k in sorted(by))}")
    d = json.load(open(os.path.join(ROOT, "docs", "seed_results.json")))

    def acc(member, weights):
        bm = d[member]["heldout_by_meta"]
        return sum(bm[f"n_terms={k}"] * w for k, w in weights.items()) / sum(weights.values())
    sft = {w: acc("sft_eval", ws) for w, ws in (("rows", n_rows), ("distinct", n_distinct))}
    print(f"sft: {100 * sft['rows']:.1f}% over rows, {100 * sft['distinct']:.1f}% over "
          f"distinct problems")
    seeds = sorted({int(m.split("@")[1]) for m in d if "@" in m})
    per = {}
    for g in ("grpo", "igpo", "resample"):
        per[g] = [acc(f"{g}@{s}", n_distinct) for s in seeds]
        rows_mean = np.mean([acc(f"{g}@{s}", n_rows) for s in seeds])
        t = seed_stats.t_interval(per[g])
        print(f"{g}: {100 * rows_mean:.1f}% over rows, {100 * t['mean']:.1f}% "
              f"[{100 * t['lo']:.1f}, {100 * t['hi']:.1f}] over distinct problems")
    per["sft"] = [sft["distinct"]] * len(seeds)
    for a, b in (("grpo", "sft"), ("igpo", "sft"), ("igpo", "grpo"), ("igpo", "resample"),
                 ("resample", "grpo")):
        t = seed_stats.t_interval([x - y for x, y in zip(per[a], per[b])])
        print(f"{a} - {b}: {100 * t['mean']:+.1f} pts [{100 * t['lo']:.1f}, "
              f"{100 * t['hi']:.1f}]")


if __name__ == "__main__":
    main()
