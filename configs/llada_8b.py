"""LLaDA-8B-Instruct reference runs (docs/ALGORITHM.md section 7). Pick the run with the arg:

    python -m igpo_jax.main --config configs/llada_8b.py:igpo --workdir runs/igpo \\
        --config.model.hf_dir=/data/LLaDA-8B-Instruct --config.tokenizer.path=/data/LLaDA-8B-Instruct \\
        --config.data.train_path=/data/MetaMathQA-395K.json

  igpo  IGPO reference run: G 8, mu 4, lr 5e-7 (50 warm-up, linear), beta 0.01,
        eps 0.2/0.2, temperature 1.2, sequence-level ratio, 64 prompts x 8 per step,
        MetaMathQA (GSM_AnsAug + MATH_AnsAug), prompt never masked.
  grpo  The IGPO paper's GRPO baseline: the same run with algo = grpo.
  d1    diffu-GRPO (d1): G 6, mu 12, lr 3e-6 constant, beta 0.04, eps 0.5,
        temperature 0.9, token ratio, p_mask_prompt 0.15, GSM8K train.

Append a target for the mesh and batch layout: ``igpo-v5p32`` / ``igpo-v4_32`` (16 chips,
fsdp 16), ``igpo-8xgpu`` (one node of 8 x 80 GB GPUs, fsdp 8); plain ``igpo`` uses
fsdp over all devices. Plan memory without weights:
``python -m igpo_jax.main --config configs/llada_8b.py:igpo-v5p32 --dry_run``.

All three train LoRA adapters as the reference runs do (r 128, alpha 64, dropout
0.05 on q, k, v and up projections; float32 adapters and AdamW moments; the base
model bfloat16 and frozen, and with adapters off it is the reference policy, so
there is no second copy). ``--config.model.lora.rank=0`` trains every parameter
instead (bfloat16 parameters, float32 moments, a bfloat16 reference copy).
"""

from igpo_jax import configlib


# Where to run (the part after "-" in the arg, e.g. igpo-v5p32): mesh and batch layout.
# bf16 params and compute, remat, LoRA adapters. Per-device memory as printed by
# `--dry_run` is in the README ("Running at scale").
TARGETS = {
    "": dict(mesh=dict(data=1, fsdp=-1, tensor=1), micro_batch_size=8),
    "v5p32": dict(mesh=dict(data=1, fsdp=16, tensor=1), micro_batch_size=16),  # 16 chips
    "v4_32": dict(mesh=dict(data=1, fsdp=16, tensor=1), micro_batch_size=16),  # 16 chips
    "8xgpu": dict(mesh=dict(data=1, fsdp=8, tensor=1), micro_batch_size=8),  # 8 x 80 GB
}


def get_config(arg: str = "igpo"):
    run, _, target = arg.partition("-")
    if run not in ("igpo", "grpo", "d1") or target not in TARGETS:
        raise ValueError(f"configs/llada_8b.py:{arg}: expected RUN or RUN-TARGET with RUN in "
                         f"igpo|grpo|d1 and TARGET in {sorted(t for t in TARGETS if t)}")
    arg = run
    c = configlib.base_config()
    c.mode = "rl"
    c.model.update(preset="llada_8b", param_dtype="bfloat16", dtype="bfloat16", remat=True)
    c.model.lora.update(rank=128, alpha=64.0, dropout=0.05, targets="q_proj,k_proj,v_proj,up_proj",
                        param_dtype="float32")
    c.tokenizer.update(kind="hf")
    c.data.update(source="metamath", system_prompt=configlib.MATH_SYSTEM_PROMPT)
    c.sampler.update(prompt_len=384, gen_length=256, block_length=32, steps=128,
                     temperature=1.2, rollout_batch_size=64)
    c.rl.update(algo="igpo" if arg == "igpo" else "grpo", num_steps=500, prompts_per_step=64,
                group_size=8, num_iterations=4, beta=0.01, eps_low=0.2, eps_high=0.2,
                ratio="sequence", aggregation="token", advantage="mean", p_mask_prompt=0.0,
                micro_batch_size=8)
    c.igpo.update(min_chunk=5, max_chunk=10, eta_low=0.2, eta_high=0.6, reserve=30,
                  position="as_is", lam=0.5, tau=0.2)
    c.reward.update(correct_weight=3.0, format_weight=1.0)
    c.optim.update(lr=5e-7, warmup_steps=50, schedule="linear", b1=0.9, b2=0.99,
                   weight_decay=0.1, grad_clip=0.2, moments_dtype="float32")
    c.checkpoint.update(every=10, keep=3)
    c.mesh.update(**TARGETS[target]["mesh"])
    c.rl.micro_batch_size = TARGETS[target]["micro_batch_size"]
    if arg == "d1":
        c.data.update(source="gsm8k")
        c.sampler.update(temperature=0.9)
        c.rl.update(group_size=6, prompts_per_step=16, num_iterations=12, beta=0.04,
                    eps_low=0.5, eps_high=0.5, ratio="token", p_mask_prompt=0.15)
        if not target:
            c.rl.micro_batch_size = 6
        c.optim.update(lr=3e-6, warmup_steps=50, schedule="constant")
    return c
