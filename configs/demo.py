"""The earlier CPU demo, on running sums: SFT -> GRPO vs IGPO -> held-out evaluation
(the README's first command is now configs/pointer.py, built on this config).

    python -m igpo_jax.main --config configs/demo.py --workdir runs/demo

On the synthetic running-sum task (sums mod 5 of 2-8 terms, one ``a+t=c`` line
per step; offline, shipped character tokenizer), a 0.6M-parameter
LLaDA-architecture model is trained from scratch with masked-diffusion SFT
(4000 steps), then GRPO and IGPO continue from the same SFT checkpoint with the
same seed, prompts and rollout budget (40 steps x 8 prompts x 8 samples). Each
stage is evaluated on 200 held-out problems (greedy, pass@1), RL stages also
every 10 steps on 100 of them. Prints the results table and writes
``results.json`` and ``results.png`` (held-out accuracy and all-wrong-group share
against rollouts). Re-running the command skips finished stages and resumes an
interrupted one.

The SFT stage takes about 20 minutes on a 2-core CPU, so its result ships in
``igpo_jax/assets/demo_sft`` (final parameters, metrics and evaluation),
produced by this config's own SFT stage::

    python -m igpo_jax.main --config configs/demo.py --workdir runs/demo_sft \
        --config.pipeline.only=sft --config.pipeline.use_shipped=False
    python -m igpo_jax.pipeline --export-stage runs/demo_sft/sft igpo_jax/assets/demo_sft

and the demo starts from it (a few minutes: ``runs/demo/machine.json`` records the
machine and the wall time; the README gives the measured range).
``--config.pipeline.use_shipped=False`` re-creates the SFT stage live instead (about
20 more minutes on a 2-core CPU).
"""

from igpo_jax import configlib, pipeline


def get_config():
    c = configlib.base_config()
    c.mode = "pipeline"
    c.seed = 0
    c.model.preset = "tiny"
    c.model.overrides.update(d_model=128, n_layers=3, n_heads=4, n_kv_heads=4,
                             mlp_hidden_size=384)
    # prompts "3 1 4 . . . . ." (8 slots), traces of running sums, answers mod 5
    c.data.synthetic.update(modulus=5, min_terms=2, max_terms=8, width=8, style="steps",
                            weights=(3, 3, 3, 2, 2, 1, 1), num_train=50000, num_test=200,
                            test_min_terms=2, test_max_terms=8)
    # rollouts with the fast sampler (dual cache + confidence threshold: about 5x faster
    # here); every evaluation with the exact sampler
    c.sampler.update(prompt_len=18, gen_length=64, block_length=16, steps=64, temperature=1.0,
                     rollout_batch_size=64, cache="dual", unmask="threshold", threshold=0.9)
    c.sft.update(num_steps=4000, batch_size=64, micro_batch_size=64, t_sampling="stratified")
    c.rl.update(num_steps=40, prompts_per_step=8, group_size=8, num_iterations=1, beta=0.0,
                eps_low=0.2, eps_high=0.2, ratio="sequence", aggregation="token",
                micro_batch_size=64)
    # traces are ~20-30 tokens: small chunks; never reveal the last sum (it is the answer)
    c.igpo.update(min_chunk=3, max_chunk=6, eta_low=0.2, eta_high=0.6, reserve=4,
                  exclude_last_step=True, lam=0.5, tau=0.2)
    c.optim.update(lr=1e-3, warmup_steps=100, schedule="cosine", weight_decay=0.01,
                   grad_clip=1.0)
    c.eval.update(num_examples=200, batch_size=100, every=10, during_examples=100,
                  exact_sampler=True)
    c.checkpoint.update(every=10, keep=2)
    c.log_every = 100
    rl_optim = {"optim.lr": 3e-5, "optim.warmup_steps": 0, "optim.schedule": "constant",
                "log_every": 1, "data.synthetic.weights": ()}
    stages = []
    for name, ov in pipeline.recipe_stages():
        stages.append((name, {**ov, **(rl_optim if ov["mode"] == "rl" else {})}))
    c.pipeline.stages = tuple(stages)
    c.pipeline.shipped = {"sft": "demo_sft"}
    return c
