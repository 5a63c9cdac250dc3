"""LLaDA-8B-shaped IGPO step on one accelerator: time, peak memory and MFU per phase.

Random bf16 base weights with the reference run's LoRA adapters (configs/llada_8b.py:igpo
on one device): rollouts with the exact sampler and with the dual cache, old and
reference log-probs, one update. Each phase is compiled first, then timed (best of
``--repeats``, synchronised). Reported next to each phase: its analytic FLOPs, MFU
against the bf16 matmul rate measured in the same run, and the ``--dry_run`` plan of
the same config (per-program peak memory from this device's compiler) beside the
measured peak of device memory.

    python benchmarks/gpu_8b_rl.py --out benchmarks/results/gpu_8b_rl.json   # ~6-9 min
    python benchmarks/gpu_8b_rl.py --tiny                                   # CPU check

Layers can be cut for a smaller card (``--layers``); every number then refers to
that depth.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _llada_config():
    spec = importlib.util.spec_from_file_location("cfg_llada_8b",
                                                  os.path.join(ROOT, "configs", "llada_8b.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config("igpo")


def build_config(a):
    c = _llada_config()
    c.mesh.update(data=1, fsdp=-1, tensor=1)
    c.rl.update(prompts_per_step=a.prompts, group_size=a.group, micro_batch_size=a.micro,
                num_iterations=1, num_steps=1, estimator=a.estimator,
                trajectory_passes=a.trajectory_passes, mc_samples=a.mc_samples)
    c.sampler.update(prompt_len=a.prompt_len, gen_length=a.gen, block_length=a.block,
                     steps=a.steps, rollout_batch_size=a.prompts * a.group)
    if a.layers:
        c.model.overrides.n_layers = a.layers
    if a.tiny:  # the script itself on a CPU: a tiny model, the shipped tokenizer
        c.model.update(preset="tiny", param_dtype="float32", dtype="float32")
        c.tokenizer.update(kind="sentencepiece", path="")
        c.model.lora.update(rank=4, alpha=8.0)
    return c


def timed(fn, repeats: int):
    """(result, best seconds) after one untimed (compiling) call."""
    out = jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return out, best


def peak_gib() -> float | None:
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2 ** 30


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--micro", type=int, default=8, help="rows per micro-batch of the update")
    ap.add_argument("--prompt_len", type=int, default=384)
    ap.add_argument("--gen", type=int, default=256)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--layers", type=int, default=0, help="0: the model's 32")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs after the compiling one")
    ap.add_argument("--tiny", action="store_true", help="a tiny model on CPU (tests)")
    ap.add_argument("--estimator", default="one_step", help="rl.estimator of the log-probs")
    ap.add_argument("--trajectory_passes", type=int, default=1,
                    help="rl.trajectory_passes (estimator=trajectory; 0 = one per step)")
    ap.add_argument("--mc_samples", type=int, default=1, help="rl.mc_samples (block, elbo)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.tiny:
        a.prompt_len, a.gen, a.block, a.steps, a.micro = 16, 16, 8, 4, 8
    sys.path.insert(0, ROOT)
    from igpo_jax import dry_run, experiment, optim, sampling
    from igpo_jax import sharding as shd
    from igpo_jax.metrics import matmul_rate
    from igpo_jax.models import lora
    from igpo_jax.rl import trainer

    c = build_config(a)
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}) x {jax.device_count()}", flush=True)
    dtype = jnp.float32 if a.tiny else jnp.bfloat16
    rate = matmul_rate(dtype, 512 if a.tiny else 8192)
    print(f"{jnp.dtype(dtype).name} matmul: {rate / 1e12:.1f} TFLOP/s", flush=True)

    t = time.perf_counter()
    from igpo_jax.configlib import typed
    c = typed(c)
    plan = dry_run.plan(c)
    print(f"plan compiled in {time.perf_counter() - t:.0f} s", flush=True)
    parts = experiment.ModelParts(c, with_tokenizer=a.tiny)
    mesh, cfg, params = parts.mesh, parts.cfg, parts.params
    trainable, frozen = lora.split(params)
    rl, s = c.rl, c.sampler
    n = rl.prompts_per_step * rl.group_size
    n_micro = n // rl.micro_batch_size
    tx, _ = optim.make_optimizer(c.optim.to_dict(), 1)
    opt_state = shd.replicate_unplaced(tx.init(trainable), mesh)
    rng = np.random.default_rng(0)
    vocab = cfg.vocab_size
    prompt = rng.integers(0, min(vocab, 30000) - 2, (n, s.prompt_len)).astype(np.int32)
    attn = np.ones((n, s.prompt_len), bool)
    seq = s.prompt_len + s.gen_length
    fpt = cfg.flops_per_token(seq)
    phases = {}

    def record(name, seconds, flops, program):
        planned = plan["programs"][program]["memory_gib"]["peak"]
        phases[name] = dict(seconds=seconds, flops=flops, tflops=flops / seconds / 1e12,
                            mfu=flops / seconds / rate, peak_gib_so_far=peak_gib(),
                            plan_program=program, plan_peak_gib=planned)
        print(f"{name:>14}: {seconds:7.2f} s  {flops / seconds / 1e12:7.1f} TFLOP/s  "
              f"MFU {100 * flops / seconds / rate:5.1f}%  device peak so far "
              f"{phases[name]['peak_gib_so_far'] or float('nan'):.2f} GiB (plan of the "
              f"{program} program: {planned:.2f} GiB)", flush=True)

    merged = lora.merge_for_sampling(params, cfg.lora)
    completions = None
    for mode in ("none", "dual"):
        sc = sampling.SamplerConfig(gen_length=s.gen_length, block_length=s.block_length,
                                    steps=s.steps, temperature=1.2, cache=mode)
        key = jax.random.key(1)
        out, sec = timed(lambda: sampling.generate_params(
            merged, cfg, prompt, sc, key, attention_mask=attn, mesh=mesh).tokens, a.repeats)
        nb, spb = s.gen_length // s.block_length, s.steps // (s.gen_length // s.block_length)
        if mode == "none":
            flops = n * s.steps * seq * fpt
        else:  # a full forward per block, then block-wide windows (attention over all)
            flops = n * nb * (seq * fpt + (spb - 1) * s.block_length * fpt)
        record("rollout exact" if mode == "none" else "rollout dual", sec, flops, "rollout")
        if completions is None:
            completions = np.asarray(out)[:, s.prompt_len:]
    est = rl.estimator_config(s)
    logprob_fn = trainer.make_logprob_fn(cfg, n_micro, est)
    # one token per step in order, as the exact sampler writes at 1 token a step or less
    order = np.broadcast_to((np.arange(s.gen_length) * s.steps // s.gen_length)
                            .astype(np.int32), completions.shape)
    arrays = shd.shard_batch(dict(p=prompt, a=attn, m=np.zeros_like(attn), c=completions,
                                  o=np.ascontiguousarray(order),
                                  h=np.zeros(completions.shape, bool)), mesh)
    est_keys = jax.random.split(jax.random.key(3), n)
    lp_inputs = (arrays["p"], arrays["a"], arrays["m"], arrays["c"], arrays["o"], arrays["h"],
                 est_keys)
    (old, _), sec = timed(lambda: logprob_fn(params, *lp_inputs), a.repeats)
    record("old log-probs", sec, n * seq * fpt * est.forward_passes, "logprobs")
    base = lora.base(params)
    (ref, _), sec = timed(lambda: logprob_fn(base, *lp_inputs), a.repeats)
    record("ref log-probs", sec, n * seq * fpt * est.forward_passes, "logprobs")
    train_step = trainer.make_train_step(cfg, tx, rl, n_micro, trainable, opt_state, est)
    ones = jnp.ones(completions.shape, bool)
    adv = shd.shard_batch(np.linspace(-1, 1, n).astype(np.float32), mesh)
    tb = trainer.TrainBatch(arrays["p"], arrays["a"], arrays["m"], arrays["c"], arrays["o"],
                            est_keys, ones, ones, arrays["h"], adv, old, ref)
    state = {"t": trainable, "o": opt_state}

    def update():
        state["t"], state["o"], out = train_step(state["t"], state["o"], frozen, tb,
                                                 jax.random.key(2))
        return out["loss"]
    _, sec = timed(update, a.repeats)
    # forward + backward (2x) of every row, plus the recomputed forward under remat
    flops = (4 if cfg.remat else 3) * n * seq * fpt * est.forward_passes
    record("update", sec, flops, "update")
    peak = peak_gib()
    planned = max(p["memory_gib"]["peak"] for p in plan["programs"].values())
    result = dict(device=dev.device_kind, platform=dev.platform, jax=jax.__version__,
                  host=platform.node(), matmul_tflops=rate / 1e12,
                  matmul_dtype=jnp.dtype(dtype).name, config=dict(
                      rows=n, prompt_len=s.prompt_len, gen_length=s.gen_length,
                      block_length=s.block_length, steps=s.steps, micro_batch=rl.micro_batch_size,
                      layers=cfg.n_layers, params=cfg.num_params(), lora_rank=c.model.lora.rank,
                      remat=cfg.remat, estimator=est.name,
                      estimator_forward_passes=est.forward_passes),
                  phases=phases, peak_gib=peak, plan_max_program_peak_gib=planned,
                  peak_vs_plan=None if peak is None else peak / planned,
                  plan=plan["programs"])
    print(f"device peak {peak if peak is not None else float('nan'):.2f} GiB vs the plan's "
          f"largest program {planned:.2f} GiB", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print("wrote", a.out)


if __name__ == "__main__":
    main()
