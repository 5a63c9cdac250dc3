import json
import math
import os

import numpy as np
import pytest

from igpo_jax import reporting, seed_stats


def test_t_interval_hand_worked():
    # values 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), t_{0.975,4} = 2.776
    ci = seed_stats.t_interval([1, 2, 3, 4, 5])
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert ci["mean"] == 3 and ci["n"] == 5
    assert ci["lo"] == pytest.approx(3 - half, abs=1e-12)
    assert ci["hi"] == pytest.approx(3 + half, abs=1e-12)
    assert seed_stats.t_interval([0.4])["lo"] is None  # one seed: no interval


def test_paired_and_bootstrap():
    a = {1: 0.50, 2: 0.60, 3: 0.55}
    b = {1: 0.45, 2: 0.50, 3: 0.55, 9: 0.1}  # seed 9 has no partner: ignored
    p = seed_stats.paired(a, b)
    assert p["seeds"] == [1, 2, 3] and p["wins"] == 2
    assert p["mean"] == pytest.approx((0.05 + 0.10 + 0.0) / 3)
    # the same difference on every problem (k=2 samples each: 1.0 vs 0.5): every
    # bootstrap draw gives that mean
    pa = {s: np.ones(10) for s in (1, 2, 3)}
    pb = {s: np.full(10, 0.5) for s in (1, 2, 3)}
    bs = seed_stats.hierarchical_bootstrap(pa, pb, reps=200)
    assert bs["lo"] == pytest.approx(0.5) and bs["hi"] == pytest.approx(0.5)
    # noisy differences: the interval contains the observed mean and has width
    rng = np.random.default_rng(0)
    pa = {s: (rng.random(200) < 0.6).astype(float) for s in range(5)}
    pb = {s: (rng.random(200) < 0.5).astype(float) for s in range(5)}
    bs = seed_stats.hierarchical_bootstrap(pa, pb, reps=500)
    assert bs["lo"] < bs["mean"] < bs["hi"] and bs["hi"] - bs["lo"] > 0.02
    with pytest.raises(ValueError, match="differ in shape"):
        seed_stats.hierarchical_bootstrap({1: np.ones(3)}, {1: np.ones(4)})


def test_split_member():
    assert seed_stats.split_member("igpo@101") == ("igpo", 101)
    assert seed_stats.split_member("eta=1.0@3") == ("eta=1.0", 3)
    assert seed_stats.split_member("sft") is None and seed_stats.split_member("a@b") is None


def test_seed_report_from_member_folders(tmp_path):
    """A fake finished sweep: per-problem generations and member summaries -> report,
    tables and plot."""
    rng = np.random.default_rng(1)
    results = {}
    for g, p_ok in (("grpo", 0.4), ("igpo", 0.5)):
        for s in (1, 2, 3):
            d = tmp_path / f"{g}@{s}" / "eval"
            os.makedirs(d)
            ok = rng.random(50) < p_ok
            with open(d / "generations.jsonl", "w") as f:
                for i, o in enumerate(ok):
                    f.write(json.dumps({"index": i, "sample": 0, "correct": bool(o)}) + "\n")
            curve = [dict(rollouts=64 * k, samples=64 * k + (8 * k if g == "igpo" else 0),
                          frac_all_wrong_groups=0.3, frac_all_wrong_after=0.3 - 0.1 * (g == "igpo"),
                          accuracy=0.5) for k in range(1, 5)]
            results[f"{g}@{s}"] = dict(heldout_accuracy=float(ok.mean()), curve=curve,
                                       frac_all_wrong_groups=0.3, samples_used=256,
                                       heldout_curve=[dict(step=0, accuracy=0.4,
                                                           num_examples=50),
                                                      dict(step=4, accuracy=float(ok.mean()),
                                                           num_examples=50)])
    # the unseeded start checkpoint, evaluated on the same problems, as a baseline
    d = tmp_path / "sft_eval" / "eval"
    os.makedirs(d)
    sft_ok = rng.random(50) < 0.3
    with open(d / "generations.jsonl", "w") as f:
        for i, o in enumerate(sft_ok):
            f.write(json.dumps({"index": i, "sample": 0, "correct": bool(o)}) + "\n")
    results["sft_eval"] = dict(heldout_accuracy=float(sft_ok.mean()))
    rep = reporting.report_seeds(results, str(tmp_path), [("igpo", "grpo"), ("grpo", "sft")])
    g = rep["comparisons"]["grpo - sft"]
    diffs = [results[f"grpo@{s}"]["heldout_accuracy"] - sft_ok.mean() for s in (1, 2, 3)]
    assert g["n"] == 3 and g["mean"] == pytest.approx(np.mean(diffs))
    assert g["bootstrap"]["mean"] == pytest.approx(np.mean(diffs))
    assert g["lo"] == pytest.approx(seed_stats.t_interval(diffs)["lo"])
    c = rep["comparisons"]["igpo - grpo"]
    want = np.mean([results[f"igpo@{s}"]["heldout_accuracy"] - results[f"grpo@{s}"]
                    ["heldout_accuracy"] for s in (1, 2, 3)])
    assert c["mean"] == pytest.approx(want) and c["n"] == 3
    assert c["bootstrap"]["mean"] == pytest.approx(want)
    assert rep["groups"]["grpo"]["heldout_accuracy"]["n"] == 3
    assert (tmp_path / "seeds.png").stat().st_size > 1000
    assert "igpo - grpo" in (tmp_path / "seed_report.md").read_text()
