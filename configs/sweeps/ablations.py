"""The IGPO paper's ablations at demo scale, as a sweep over the demo config.

    python -m igpo_jax.main --config configs/sweeps/ablations.py --workdir runs/ablations
    python -m igpo_jax.main --config configs/sweeps/ablations.py --workdir runs/ablations \\
        --config.pipeline.print_commands=True      # one command per member, for a scheduler

Members (all from the same SFT checkpoint, same seed and rollout budget):
  sft                         the shared SFT stage
  grpo                        no hints (the baseline)
  eta=0.2-0.6                 partial hints (the paper's setting)
  eta=1.0                     full hints (every revealable chunk)
  tau=1.0                     no entropy filter (all hint tokens trained on)
  lam=0.25 / lam=1.0          fewer / more replacements per group
"""

import importlib.util
import os

# the demo config beside this folder, importable whatever the working directory
_spec = importlib.util.spec_from_file_location(
    "igpo_configs.demo", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), "demo.py"))
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


def get_config():
    c = demo.get_config()
    base = dict(c.pipeline.stages)
    rl = base["igpo"]
    members = [("sft", base["sft"]), ("grpo", base["grpo"]),
               ("eta=0.2-0.6", rl),
               ("eta=1.0", {**rl, "igpo.eta_low": 1.0, "igpo.eta_high": 1.0}),
               ("tau=1.0", {**rl, "igpo.tau": 1.0}),
               ("lam=0.25", {**rl, "igpo.lam": 0.25}),
               ("lam=1.0", {**rl, "igpo.lam": 1.0})]
    c.pipeline.stages = tuple(members)
    return c
