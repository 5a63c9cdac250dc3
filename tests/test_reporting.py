"""Reporting (igpo_jax/reporting.py): the seed report, its tables and plot, from a sweep's
member folders."""

import json
import os

import numpy as np
import pytest

from igpo_jax import reporting, seed_stats


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
    # a second report of the same workdir under its own name leaves the first one as it was
    before = {n: (tmp_path / n).read_bytes() for n in ("seed_report.md", "seed_report.json",
                                                        "seeds.png")}
    other = reporting.report_seeds(results, str(tmp_path), [("grpo", "sft")],
                                   name="ablation_report")
    assert list(other["comparisons"]) == ["grpo - sft"]
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    saved = json.loads((tmp_path / "ablation_report.json").read_text())
    assert list(saved["comparisons"]) == ["grpo - sft"]
    assert (tmp_path / "ablation_report.png").stat().st_size > 1000
    assert "igpo - grpo" not in (tmp_path / "ablation_report.md").read_text()


def test_the_ablation_sweep_reports_under_its_own_name():
    from configs.sweeps import pointer, seeds
    from igpo_jax.configlib import PipelineConfig
    from igpo_jax.sections import ConfigError
    for sweep in (seeds, pointer):
        assert sweep.get_config("ablations").pipeline.report_name == "ablation_report"
        assert sweep.get_config("main").pipeline.report_name == "seed_report"
    with pytest.raises(ConfigError, match="pipeline.report_name"):
        PipelineConfig(report_name="docs/x")


def test_the_answer_slot_diagnosis_never_uses_a_report_seed():
    """configs/sweeps/pointer.py:answer_slot: GRPO on the diagnosis seeds, then seed 5
    with a KL term and with half the learning rate; its own report; no report or
    ablation seed among its members."""
    from configs.sweeps import pointer
    c = pointer.get_config("answer_slot")
    stages = dict(c.pipeline.stages)
    rl = {n: s for n, s in stages.items() if "@" in n}
    assert sorted(rl) == ["beta=0.04@5", "grpo@2", "grpo@3", "grpo@4", "grpo@5",
                          "lr=1.5e-5@5"]
    assert not {s["seed"] for s in rl.values()} & set(pointer.REPORT_SEEDS + pointer.TUNING_SEEDS)
    main = dict(pointer.get_config("main").pipeline.stages)["grpo@201"]
    # the diagnosis members are the report's GRPO member but for the seed and one key
    for name, key in (("grpo@5", None), ("beta=0.04@5", "rl.beta"), ("lr=1.5e-5@5", "optim.lr")):
        differ = {k for k in set(main) | set(rl[name]) if main.get(k) != rl[name].get(k)}
        assert differ == {"seed"} | ({key} if key else set()), (name, differ)
    assert c.pipeline.report_name == "answer_slot_report"


def test_a_start_member_evaluated_on_other_problems_is_not_paired(tmp_path):
    """One seeded member run alone (``pipeline.only``): the start checkpoint has only its
    own 20-problem evaluation, not the sweep's 30 problems; the comparison with it is
    listed as not compared (with the reason) instead of failing the whole report."""
    def member(name, ok):
        d = tmp_path / name / "eval"
        os.makedirs(d)
        with open(d / "generations.jsonl", "w") as f:
            for i, o in enumerate(ok):
                f.write(json.dumps({"index": i, "sample": 0, "correct": bool(o)}) + "\n")
        return dict(heldout_accuracy=float(np.mean(ok)))
    results = {"sft": member("sft", [1, 0] * 10), "grpo@5": member("grpo@5", [1, 1, 0] * 10),
               "beta@5": member("beta@5", [1, 0, 0] * 10)}
    rep = reporting.report_seeds(results, str(tmp_path), [("grpo", "sft"), ("beta", "grpo")])
    assert "grpo - sft" not in rep["comparisons"]
    assert "held-out sets differ: [30] vs [20] problems" in rep["skipped"]["grpo - sft"]
    assert rep["comparisons"]["beta - grpo"]["mean"] == pytest.approx(-1 / 3)
    assert "not compared: grpo - sft" in (tmp_path / "seed_report.md").read_text()
