"""The pointer-chasing recipe (candidate for the CPU demo): SFT -> GRPO vs IGPO.

    python -m igpo_jax.main --config configs/pointer.py --workdir runs/pointer

The task (``data.synthetic.task=pointer``; ``igpo_jax/data/synthetic.py``): the
question lists the successor of each of 7 letters on one random cycle, sources in
upper case, then a start letter and a hop count (``A>e B>d ... G>b |c:3``); each
reasoning line writes one hop (``c>f``), the answer is the last letter. SFT teaches
chains of 1-4 hops (plain LLaDA masks, stratified ratios); GRPO and IGPO then run on 2-6
hops, so the two longest lengths are past SFT's (all-wrong groups that hints can
open); every evaluation covers 2-6 hops.

Status: no SFT checkpoint of this recipe ships yet, so ``pipeline.shipped`` is empty
and the SFT stage runs live (5,000 steps, about an hour on a 2-core CPU). Measured so
far (README, "A task whose step the model can learn"): with these masks the copies
are learned by step 1,000, the lookups not yet (near chance at 1,250 steps). The running-sum
demo (``configs/demo.py``) stays the one-command demo until a checkpoint of this
recipe passes the step probe.
"""

from igpo_jax import configlib, pipeline


SFT_STEPS = 5000


def get_config():
    c = configlib.base_config()
    c.mode = "pipeline"
    c.seed = 0
    c.model.preset = "tiny"
    c.model.overrides.update(d_model=128, n_layers=3, n_heads=4, n_kv_heads=4,
                             mlp_hidden_size=384)
    # pointer chasing on a 7-letter cycle ("a>e b>d ... |f:3": follow 3 hops from f);
    # SFT teaches chains of 1-4 hops, RL and evaluation run 2-6 hops
    c.data.synthetic.update(task="pointer", nodes=7, min_terms=1, max_terms=4,
                            weights=(1, 2, 3, 3), num_train=50000, num_test=200,
                            test_min_terms=2, test_max_terms=6)
    # rollouts with the fast sampler (dual cache + confidence threshold); every
    # evaluation with the exact sampler
    c.sampler.update(prompt_len=34, gen_length=40, block_length=8, steps=40, temperature=1.0,
                     rollout_batch_size=64, cache="dual", unmask="threshold", threshold=0.9)
    # plain LLaDA masks: with block-style masks (sft.mask=mixed) no variant of this task
    # learned even its copies within 500-2,000 steps (README, the pointer task)
    c.sft.update(num_steps=SFT_STEPS, batch_size=64, micro_batch_size=64,
                 t_sampling="stratified", mask="iid")
    c.rl.update(num_steps=40, prompts_per_step=8, group_size=8, num_iterations=1, beta=0.0,
                eps_low=0.2, eps_high=0.2, ratio="sequence", aggregation="token",
                micro_batch_size=64)
    # traces are 4 tokens a hop: small chunks; never reveal the last line (the answer)
    c.igpo.update(min_chunk=3, max_chunk=6, eta_low=0.2, eta_high=0.6, reserve=4,
                  exclude_last_step=True, lam=0.5, tau=0.2)
    c.optim.update(lr=1e-3, warmup_steps=100, schedule="cosine", weight_decay=0.01,
                   grad_clip=1.0)
    c.eval.update(num_examples=200, batch_size=100, every=10, during_examples=100,
                  exact_sampler=True)
    c.checkpoint.update(every=250, keep=2)
    c.log_every = 100
    rl_optim = {"optim.lr": 3e-5, "optim.warmup_steps": 0, "optim.schedule": "constant",
                "log_every": 1, "checkpoint.every": 10, "data.synthetic.weights": (),
                "data.synthetic.min_terms": 2, "data.synthetic.max_terms": 6}
    stages = []
    for name, ov in pipeline.recipe_stages():
        stages.append((name, {**ov, **(rl_optim if ov["mode"] == "rl" else {})}))
    c.pipeline.stages = tuple(stages)
    c.pipeline.shipped = {}
    return c
