"""Sampler throughput and MFU: igpo_jax (one jitted program) vs a PyTorch eager loop.

    python benchmarks/sampler_bench.py                 # small model, CPU, + PyTorch
    python benchmarks/sampler_bench.py --preset llada_8b --dtype bfloat16 --no-torch

Prints a table: tokens generated per second, time per sampler call and per layer
forward, and model FLOP utilisation against the measured peak of a large matmul
on the same machine (same framework). Never asserts anything about timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from igpo_jax import sampling  # noqa: E402
from igpo_jax.models import transformer  # noqa: E402


def timeit(fn, repeats, best=False):
    """Median (or best) wall time of ``repeats`` calls after one warm-up call."""
    fn()  # warm-up / compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) if best else statistics.median(times)


def hardware() -> str:
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    return f"{dev.device_kind} ({dev.platform})"


def jax_matmul_peak(n=2048, dtype=jnp.float32, repeats=10):
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda a, b: a @ b)
    t = timeit(lambda: f(a, a).block_until_ready(), repeats, best=True)
    return 2 * n ** 3 / t


def sampler_flops(cfg: transformer.TransformerConfig, batch, seq_len, block, steps):
    """FLOPs of one sampler call: full-sequence layers every step, head on the block."""
    d, f = cfg.d_model, cfg.mlp_hidden_size
    kv = cfg.kv_heads * cfg.head_dim
    per_token_layers = cfg.n_layers * 2 * (2 * d * d + 2 * d * kv + 3 * d * f + 2 * seq_len * d)
    head = 2 * d * cfg.vocab_rows
    return steps * batch * (seq_len * per_token_layers + block * head)


def layer_flops(cfg, batch, seq_len):
    d, f = cfg.d_model, cfg.mlp_hidden_size
    kv = cfg.kv_heads * cfg.head_dim
    return batch * seq_len * 2 * (2 * d * d + 2 * d * kv + 3 * d * f + 2 * seq_len * d)


def add_shape_args(ap: argparse.ArgumentParser) -> None:
    """Model and sampler shape flags shared by the sampler benchmarks."""
    ap.add_argument("--preset", default="small", choices=["small", "llada_8b"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=256)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shape_args(ap)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()

    seq = args.prompt + args.gen
    cfg = getattr(transformer.TransformerConfig, args.preset)(param_dtype=args.dtype, dtype=args.dtype)
    cfg = cfg.replace(max_sequence_length=max(cfg.max_sequence_length, seq))
    params = transformer.init_params(cfg, seed=0)
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, cfg.vocab_size - 8, (args.batch, args.prompt)).astype(np.int32)
    sc = sampling.SamplerConfig(gen_length=args.gen, block_length=args.block, steps=args.steps,
                                temperature=0.0)
    hw = hardware()
    rows = []

    peak = jax_matmul_peak(4096 if jax.devices()[0].platform != "cpu" else 2048,
                           jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32)
    flops = sampler_flops(cfg, args.batch, seq, args.block, args.steps)

    def run_jax():
        return sampling.generate_params(params, cfg, prompt, sc, jax.random.key(0)).tokens
    t0 = time.perf_counter()
    out_jax = np.asarray(run_jax())
    compile_s = time.perf_counter() - t0
    t_jax = timeit(lambda: run_jax().block_until_ready(), args.repeats)

    x = jnp.asarray(rng.standard_normal((args.batch, seq, cfg.d_model)), transformer._dtype(cfg.dtype))
    layer0 = {k.split("/", 1)[1]: v[0] for k, v in params.items() if k.startswith("blocks/")}
    sin, cos = transformer.rotary_tables(seq, cfg.head_dim, cfg.rope_theta)
    layer_fn = jax.jit(lambda x, p: transformer._layer(cfg, x, p, sin, cos, None))
    t_layer_jax = timeit(lambda: layer_fn(x, layer0).block_until_ready(), 10)
    lflops = layer_flops(cfg, args.batch, seq)
    rows.append(("igpo_jax (jit, lax loops)", args.batch * args.gen / t_jax, t_jax,
                 t_layer_jax * 1e3, flops / t_jax / peak, lflops / t_layer_jax / peak, peak))

    agree = None
    if not args.no_torch:
        import torch

        from benchmarks import torch_baseline as tb
        torch.manual_seed(0)
        tm = tb.TorchLLaDA({k: np.asarray(v, np.float32) for k, v in params.items()}, cfg)
        tprompt = torch.from_numpy(prompt.astype(np.int64))
        a = torch.ones(2048, 2048)
        t_mm = timeit(lambda: a @ a, 10, best=True)
        peak_t = 2 * 2048 ** 3 / t_mm
        run_t = lambda: tb.generate(tm, tprompt, args.steps, args.gen, args.block,  # noqa
                                    cfg.mask_token_id)
        out_t = run_t().numpy()
        t_torch = timeit(run_t, args.repeats)
        xt = torch.from_numpy(np.asarray(x, np.float32))
        t_layer_t = timeit(lambda: tm.layer(xt, tm.layers[0]), 10)
        rows.append(("PyTorch eager (LLaDA generate.py loop)", args.batch * args.gen / t_torch,
                     t_torch, t_layer_t * 1e3, None, None, peak_t))
        agree = float((out_t[:, args.prompt:] == out_jax[:, args.prompt:]).mean())

    print(f"\nSampler benchmark on {hw}; jax {jax.__version__}; {args.preset} "
          f"(d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads, vocab "
          f"{cfg.vocab_size}, {cfg.num_params() / 1e6:.2f}M params, {args.dtype}); batch "
          f"{args.batch}, prompt {args.prompt}, gen {args.gen}, block {args.block}, "
          f"steps {args.steps}")
    print(f"jax compile + first call: {compile_s:.1f} s")
    print("| sampler | tokens/s | s / call | ms / layer fwd | MFU sampler | MFU layer | "
          "own matmul peak GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    # MFU against the best large-matmul rate either framework reached on this machine.
    peak = max(r[-1] for r in rows)
    for name, tps, t, tl, _, _, pk in rows:
        mfu, mfu_l = flops / t / peak, layer_flops(cfg, args.batch, seq) / (tl / 1e3) / peak
        print(f"| {name} | {tps:.1f} | {t:.2f} | {tl:.2f} | {100 * mfu:.1f}% | "
              f"{100 * mfu_l:.1f}% | {pk / 1e9:.0f} |")
    if len(rows) == 2:
        print(f"\nspeed-up igpo_jax / PyTorch: {rows[0][1] / rows[1][1]:.2f}x; "
              f"token agreement at temperature 0: {100 * agree:.1f}%")


if __name__ == "__main__":
    main()
