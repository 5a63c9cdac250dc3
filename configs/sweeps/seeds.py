"""Does IGPO help? GRPO vs IGPO vs the compute-matched resampling control, over seeds.

    python -m igpo_jax.main --config configs/sweeps/seeds.py --workdir runs/seeds
    python -m igpo_jax.main --config configs/sweeps/seeds.py:ablations --workdir runs/seeds

Every member starts from the same SFT checkpoint (the demo's shipped SFT stage) and
runs the demo's RL stage with one seed; the seed fixes the prompts drawn and all
sampling randomness, so members with the same seed are paired. Members are named
``GROUP@SEED``; at the end the pipeline reports, per group, the mean and 95%
t interval over seeds of the held-out accuracy (1,000 problems never trained on,
greedy, exact sampler) and of the training diagnostics, and the paired differences
``grpo - sft``, ``igpo - sft``, ``igpo - grpo``, ``igpo - resample`` and
``resample - grpo`` (t interval over seeds, and a bootstrap over seeds x problems; the
held-out problems are distinct, so both count problems, not copies): ``seed_report.md``, ``seed_report.json``, ``seeds.png``.

- ``main`` (default): grpo, igpo, resample on the 5 report seeds.
- ``ablations``: the paper's ablations on the first 3 report seeds: full hints
  (eta = 1), no entropy filter (tau = 1), more replacements (lambda 1). Run it in the
  same workdir as ``main`` (after it): the shared igpo members are reused; its report
  is ``ablation_report.md`` / ``.json`` / ``.png`` (``pipeline.report_name``), so the
  main report stays.
- ``tune``: the main comparison on the tuning seeds (used to choose the task and the
  hyper-parameters; never reported as evidence).

Rollouts use the fast sampler (dual cache + confidence threshold 0.9: on the demo's SFT
model its greedy pass@1 is within 3 points of the exact sampler, and the same sampler
serves every member); evaluation uses the exact sampler. The seeds were fixed before
the report runs were made and are not to be changed after looking at results.
"""

import importlib.util
import os

# the demo config beside this folder, importable whatever the working directory
_spec = importlib.util.spec_from_file_location(
    "igpo_configs.demo", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), "demo.py"))
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

TUNING_SEEDS = (0, 1)
REPORT_SEEDS = (101, 102, 103, 104, 105)
ABLATION_SEEDS = REPORT_SEEDS[:3]


def get_config(arg: str = "main"):
    if arg not in ("main", "ablations", "tune"):
        raise ValueError(f"configs/sweeps/seeds.py:{arg}: expected main, ablations or tune")
    c = demo.get_config()  # its rollouts: dual cache + threshold 0.9; its evaluations: exact
    stages = dict(c.pipeline.stages)
    # the shared SFT stage, and its accuracy on the same 1,000 held-out problems
    start = [("sft", stages["sft"]),
             ("sft_eval", {"mode": "eval", "model.init_from": "{workdir}/sft"})]
    rl = {k: v for k, v in stages["igpo"].items() if k != "rl.algo"}
    return seed_sweep(c, arg, start, rl, TUNING_SEEDS, REPORT_SEEDS, ABLATION_SEEDS)


def seed_sweep(c, arg: str, start, rl: dict, tuning_seeds, report_seeds, ablation_seeds):
    """``c`` as a ``GROUP@SEED`` sweep: the ``start`` members, then per seed (seed-major)
    each group's RL stage (``rl`` plus the group's overrides), 1,000 held-out problems,
    and the comparisons of the seed report. Shared by the sweeps of this folder."""
    c.data.synthetic.update(num_test=1000)
    c.eval.update(num_examples=1000, batch_size=250, exact_sampler=True, every=10,
                  during_examples=200)
    groups = {"grpo": {"rl.algo": "grpo"}, "igpo": {"rl.algo": "igpo"},
              "resample": {"rl.algo": "resample"}}
    seeds = tuning_seeds if arg == "tune" else report_seeds
    # "sft": the shared start checkpoint, evaluated on the same held-out problems
    compare = (("grpo", "sft"), ("igpo", "sft"), ("igpo", "grpo"), ("igpo", "resample"),
               ("resample", "grpo"))
    if arg == "ablations":
        groups = {"igpo": {"rl.algo": "igpo"},
                  "eta=1.0": {"rl.algo": "igpo", "igpo.eta_low": 1.0, "igpo.eta_high": 1.0},
                  "tau=1.0": {"rl.algo": "igpo", "igpo.tau": 1.0},
                  "lam=1.0": {"rl.algo": "igpo", "igpo.lam": 1.0}}
        seeds = ablation_seeds
        compare = (("igpo", "eta=1.0"), ("igpo", "tau=1.0"), ("igpo", "lam=1.0"))
        # its own report files: the main sweep's seed_report.* in the same workdir stay
        c.pipeline.report_name = "ablation_report"
    members = list(start)
    for seed in seeds:  # seed-major: an interrupted sweep has balanced groups
        for g, ov in groups.items():
            members.append((f"{g}@{seed}", {**rl, **ov, "seed": seed}))
    c.pipeline.stages = tuple(members)
    c.pipeline.compare = compare
    return c
