"""The CPU demo (the README's first command): SFT -> GRPO vs IGPO on pointer chasing.

    python -m igpo_jax.main --config configs/pointer.py --workdir runs/pointer

The task (``data.synthetic.task=pointer``; ``igpo_jax/data/synthetic.py``): the
question lists the successor of each of 7 letters on one random cycle, sources in
upper case, then a start letter and a hop count (``A>e B>d ... G>b |c:3``); each
reasoning line writes one hop (``c>f``), the answer is the last letter. SFT teaches
chains of 1-4 hops (plain LLaDA masks, stratified ratios); a second SFT stage
(``sft_long``: 200 constant-lr steps on 1-6 hops, the long chains rare) teaches the
step at 5-6 hops while whole long chains still fail often; GRPO and IGPO then start
from ``sft_long`` and run on 2-6 hops; every evaluation covers 2-6 hops.

Both SFT stages ship (``igpo_jax/assets/pointer_sft`` and ``pointer_sft_long``: final
parameters, metrics, evaluation; 2.6 MB each), produced by this config's own stages,
seed 0::

    python -m igpo_jax.main --config configs/pointer.py --workdir runs/pointer \
        --config.pipeline.only=sft --config.pipeline.use_shipped=False
    python -m igpo_jax.main --config configs/pointer.py --workdir runs/pointer \
        --config.pipeline.only=sft_long --config.pipeline.use_shipped=False
    python -m igpo_jax.pipeline --export-stage runs/pointer/sft igpo_jax/assets/pointer_sft
    python -m igpo_jax.pipeline --export-stage runs/pointer/sft_long \
        igpo_jax/assets/pointer_sft_long

(6,000 + 200 steps: about an hour on a 2-core CPU). A run of this config starts from
them; ``--config.pipeline.use_shipped=False`` re-creates them live.
Measured (README, "Two SFT stages"): after ``sft`` the step probe is 97-100% on every
line of 1-4 hops, but 5-6 hop chains fail completely (the hop counts 5 and 6 are
tokens SFT never saw); after ``sft_long`` the probe is 89-100% on every line of 1-6
hops, 30% / 15% of the 5 / 6 hop groups are all-wrong, and on those groups hinted
completions are right about 3x as often as plain ones. RL: the seed sweep
``configs/sweeps/pointer.py`` (its ``RL`` settings were chosen on tuning seeds; README,
"RL on the pointer task"). This config's own GRPO and IGPO stages use the sweep's
tuned settings (``RL_TUNED``) for 30 steps (``DEMO_RL_STEPS``): 10 min 42 s from a
fresh workdir on an idle 2-core CPU (README, "The CPU demo": GRPO 74.5%, IGPO 76.0%
from sft_long's 66.0% on the 200 held-out problems, seed 0). The earlier running-sum
demo is ``configs/demo.py``.
"""

import importlib.util
import os

# the demo config beside this file (its model, RL, IGPO, optimiser and evaluation
# settings), importable whatever the working directory
_spec = importlib.util.spec_from_file_location(
    "igpo_configs.demo", os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.py"))
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

SFT_STEPS = 6000
SFT_LONG_STEPS = 200
# RL settings chosen on the tuning seeds of configs/sweeps/pointer.py (README, "RL on
# the pointer task"): the exact trajectory estimator (each token scored in the context
# the sampler wrote it in) at lr 3e-5; d1's one-step estimator lost held-out accuracy
# at 3e-5 and 1e-4, and lr 1e-4 was unstable with every estimator
RL_TUNED = {"optim.lr": 3e-5, "rl.estimator": "trajectory", "rl.trajectory_passes": 0}
# the demo's RL steps (the seed sweep runs 40): on both tuning seeds the held-out
# accuracy at step 30 (74.5%, 73.5% of 200; start 66.0%) was within a point of step
# 40's, and two 30-step members keep the demo near 10 minutes on a 2-core CPU
DEMO_RL_STEPS = 30


def get_config():
    c = demo.get_config()  # what is not set here is the demo's
    # pointer chasing on a 7-letter cycle ("A>e B>d ... |f:3": follow 3 hops from f);
    # SFT teaches chains of 1-4 hops, RL and evaluation run 2-6 hops
    c.data.synthetic.update(task="pointer", nodes=7, min_terms=1, max_terms=4,
                            weights=(1, 2, 3, 3), num_train=50000, num_test=200,
                            test_min_terms=2, test_max_terms=6)
    c.sampler.update(prompt_len=34, gen_length=40, block_length=8, steps=40)
    # plain LLaDA masks: with block-style masks (sft.mask=mixed) no variant of this task
    # learned even its copies within 500-2,000 steps (README, the pointer task)
    c.sft.update(num_steps=SFT_STEPS, mask="iid")
    # traces are 4 tokens a hop: small chunks; never reveal the last line (the answer)
    c.igpo.update(min_chunk=3, max_chunk=6)
    c.checkpoint.update(every=250)
    # stage 2 of SFT ("sft_long"): from the 1-4 hop model, a short constant-lr run on
    # 1-6 hops with the long chains rare (weights 3,3,3,3,1,1): it learns the step at
    # 5-6 hops (step probe 89-100% on every line) while whole 5-6 hop chains still fail
    # often at the rollout temperature (the all-wrong groups IGPO works on)
    sft_long = {"mode": "sft", "model.init_from": "{workdir}/sft", "sft.num_steps": SFT_LONG_STEPS,
                "optim.lr": 2e-4, "optim.schedule": "constant", "optim.warmup_steps": 0,
                "data.synthetic.max_terms": 6, "data.synthetic.weights": (3, 3, 3, 3, 1, 1),
                "eval.after_train": True, "eval.every": 0, "checkpoint.every": 25}
    # RL stages: from sft_long, every length 2-6, uniformly (the demo's RL overrides
    # otherwise)
    stages = []
    for name, ov in c.pipeline.stages:
        if ov["mode"] == "rl":
            ov = {**ov, "checkpoint.every": 10, "data.synthetic.min_terms": 2,
                  "data.synthetic.max_terms": 6, "model.init_from": "{workdir}/sft_long",
                  **RL_TUNED, "rl.num_steps": DEMO_RL_STEPS}
        stages.append((name, ov))
        if name == "sft":
            stages.append(("sft_long", sft_long))
    c.pipeline.stages = tuple(stages)
    c.pipeline.shipped = {"sft": "pointer_sft", "sft_long": "pointer_sft_long"}
    return c
