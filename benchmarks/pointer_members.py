"""Per-member table of a pointer seed sweep: held-out accuracy overall and by hop count,
the periodic evaluations, training accuracy (first and last 10 steps), all-wrong groups,
extra completions right on them, and how many 3-hop answers were the token ``>``
(the failure some RL members learned; README, "The report sweep").

    python benchmarks/pointer_members.py runs/pointer_seeds        # or the saved records:
    python benchmarks/pointer_members.py benchmarks/results/pointer_seeds
"""

import glob
import json
import os
import re
import sys

from igpo_jax import reporting
from igpo_jax.records import read_updates


def boxed_gt(path: str) -> dict[str, int]:
    """Held-out completions whose boxed answer is ``>``, by hop count."""
    out: dict[str, int] = {}
    if not os.path.exists(path):
        return out
    for line in open(path):
        r = json.loads(line)
        m = re.search(r"\\boxed\{(.*?)\}", r["completion"])
        out.setdefault(r["meta"], 0)
        out[r["meta"]] += bool(m and m.group(1) == ">")
    return out


def main(workdir: str) -> None:
    head = ("| member | held-out | 2 / 3 / 4 / 5 / 6 hops | every 10 steps (200 problems) | "
            "training accuracy, first → last 10 steps | completions sampled | all-wrong groups: "
            "rollouts / trained on | extra completions right on all-wrong groups | 3-hop "
            "answers `>` |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    members = ["sft_eval"] + sorted(d for d in os.listdir(workdir) if "@" in d)
    for m in members:
        d = os.path.join(workdir, m)
        s = reporting.member_summary(d)
        if s.get("heldout_accuracy") is None:
            continue
        bm = s["heldout_by_meta"]
        hops = " / ".join(f"{100 * bm[k]:.1f}" for k in sorted(bm))
        curve = " / ".join(f"{100 * h['accuracy']:.0f}" for h in s.get("heldout_curve", []))
        ups = {u.rollout_step: u for u in read_updates(os.path.join(d, "metrics.jsonl"))}
        acc = [ups[k].rollout.accuracy for k in sorted(ups)]
        train = f"{100 * sum(acc[:10]) / 10:.1f}% → {100 * sum(acc[-10:]) / 10:.1f}%" if acc else ""
        aw = (f"{100 * s['frac_all_wrong_groups']:.1f}% / {100 * s['frac_all_wrong_after']:.1f}%"
              if acc else "")
        kind = "plain" if m.startswith("resample") else "hinted"
        extra = (f"{kind}: {100 * s['hinted_accuracy']:.1f}%"
                 if s.get("hinted_accuracy") is not None else "")
        gt = boxed_gt(os.path.join(d, "eval", "generations.jsonl")).get("hops=3", 0)
        name = "sft_long (start)" if m == "sft_eval" else m
        print(f"| {name} | {100 * s['heldout_accuracy']:.1f}% | {hops} | {curve} | {train} | "
              f"{s.get('samples_used', '')} | {aw} | {extra} | {gt} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/pointer_seeds")
