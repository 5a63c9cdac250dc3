"""Fast rollouts: cached (prefix / dual) and threshold decoding vs the exact sampler.

    python benchmarks/fast_sampler_bench.py speed --gen 256            # random small model
    python benchmarks/fast_sampler_bench.py speed --gen 1024 --batch 4 --steps 512
    python benchmarks/fast_sampler_bench.py speed --preset llada_8b --dtype bfloat16 --no-torch
    python benchmarks/fast_sampler_bench.py accuracy                   # shipped demo SFT model

``speed``: tokens generated per second of every decoding mode on one random-weight
model, with the speed-up over the exact sampler, the model calls per sampler
call, and the token agreement with the exact sampler at temperature 0, plus the
PyTorch eager LLaDA loop (exact algorithm) on the same machine. A random model
is never confident, so threshold unmasking barely fires there: the ``accuracy``
command measures it on a trained model.

``accuracy``: the demo task's 200 held-out problems, greedy, with the shipped
demo SFT checkpoint (``igpo_jax/assets/demo_sft``): pass@1, token agreement with
the exact sampler, model calls and tokens per second per mode.

Writes the table to stdout and, with ``--json FILE``, the rows as JSON. Never
asserts anything about timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.sampler_bench import add_shape_args, hardware  # noqa: E402
from igpo_jax import sampling  # noqa: E402
from igpo_jax.models import transformer  # noqa: E402
from igpo_jax.configlib import typed

# (name, cache, unmask): the exact sampler first; every other mode is compared to it
MODES = [("exact", "none", "fixed"), ("prefix", "prefix", "fixed"), ("dual", "dual", "fixed"),
         ("threshold", "none", "threshold"), ("prefix+threshold", "prefix", "threshold"),
         ("dual+threshold", "dual", "threshold")]


def run_modes(params, cfg, prompt, attn, gen, block, steps, threshold, repeats, modes):
    """Times each mode (after a compile call); returns rows and each mode's output."""
    rows, outs = [], {}
    for name, cache, unmask in modes:
        sc = sampling.SamplerConfig(gen_length=gen, block_length=block, steps=steps,
                                    temperature=0.0, cache=cache, unmask=unmask,
                                    threshold=threshold)

        def call():
            res = sampling.generate_params(params, cfg, prompt, sc, jax.random.key(0),
                                           attention_mask=attn)
            out, stats = res.tokens, {"forward_passes": res.forward_passes, "mode": res.mode}
            return np.asarray(out), stats
        t0 = time.perf_counter()
        call()
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out, stats = call()
            times.append(time.perf_counter() - t0)
        t = float(np.median(times))
        outs[name] = out
        rows.append(dict(mode=name, sampler_mode=sc.mode, seconds=t, compile_s=compile_s,
                         tokens_per_s=prompt.shape[0] * gen / t,
                         forward_passes=stats["forward_passes"]))
        print(f"  {name}: {t:.2f} s/call, {stats['forward_passes']} model calls", flush=True)
    exact = outs[modes[0][0]][:, prompt.shape[1]:]
    for r in rows:
        r["speedup"] = rows[0]["seconds"] / r["seconds"]
        r["agreement"] = float((outs[r["mode"]][:, prompt.shape[1]:] == exact).mean())
    return rows, outs


def table(rows, extra=()):
    head = ["mode", "tokens/s", "s / call", "speed-up vs exact", "model calls",
            "token agreement"] + [e for e, _ in extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["mode"], f"{r['tokens_per_s']:.1f}", f"{r['seconds']:.2f}",
                 f"{r['speedup']:.2f}x" if r.get("speedup") else "-",
                 str(r.get("forward_passes", "-")),
                 f"{100 * r['agreement']:.1f}%" if r.get("agreement") is not None else "-"]
        cells += [fmt(r) for _, fmt in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed(args):
    seq = args.prompt + args.gen
    cfg = getattr(transformer.TransformerConfig, args.preset)(param_dtype=args.dtype, dtype=args.dtype)
    if args.layers:
        cfg = cfg.replace(n_layers=args.layers)
    cfg = cfg.replace(max_sequence_length=max(cfg.max_sequence_length, seq))
    params = transformer.init_params(cfg, seed=0)
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, cfg.vocab_size - 8, (args.batch, args.prompt)).astype(np.int32)
    attn = np.ones_like(prompt, bool)
    wanted = args.modes.split(",")
    modes = [m for m in MODES if m[0] == "exact" or m[0] in wanted]
    print(f"Fast sampler speed on {hardware()}; jax {jax.__version__}; {args.preset} "
          f"(d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.num_params() / 1e6:.1f}M params, "
          f"{args.dtype}); batch {args.batch}, prompt {args.prompt}, gen {args.gen}, block "
          f"{args.block}, steps {args.steps}, threshold {args.threshold}", flush=True)
    rows, outs = run_modes(params, cfg, prompt, attn, args.gen, args.block, args.steps,
                           args.threshold, args.repeats, modes)
    if not args.no_torch:
        import torch

        from benchmarks import torch_baseline as tb
        on_gpu = jax.devices()[0].platform == "gpu"
        dev = "cuda" if on_gpu else "cpu"
        tdtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
        tm = tb.TorchLLaDA(params if on_gpu else {k: np.asarray(v, np.float32)
                                                  for k, v in params.items()},
                           cfg, device=dev, dtype=tdtype)
        tprompt = torch.from_numpy(prompt.astype(np.int64)).to(dev)
        times = []
        for _ in range(max(1, args.torch_repeats)):
            t0 = time.perf_counter()
            out_t = tb.generate(tm, tprompt, args.steps, args.gen, args.block,
                                cfg.mask_token_id).cpu().numpy()
            times.append(time.perf_counter() - t0)
        t = float(np.median(times[1:] or times))  # the first call warms up (cuBLAS, allocator)
        rows.append(dict(mode="PyTorch eager (exact, LLaDA generate.py loop)", seconds=t,
                         tokens_per_s=args.batch * args.gen / t, forward_passes=args.steps,
                         speedup=rows[0]["seconds"] / t,
                         agreement=float((out_t[:, args.prompt:] ==
                                          outs["exact"][:, args.prompt:]).mean())))
        print(f"  PyTorch: {t:.2f} s/call", flush=True)
    print(table(rows))
    return rows


def accuracy(args):
    from configs import demo
    from igpo_jax import experiment, rewards
    from igpo_jax.data.sources import load_examples
    from igpo_jax.data.batches import encode_prompts
    from igpo_jax.pipeline import ASSETS

    c = demo.get_config()
    c.model.init_from = os.path.join(ASSETS, "demo_sft")
    tok = experiment.build_tokenizer(typed(c))
    cfg = experiment.model_config(typed(c), tok)
    params = experiment.initial_params(typed(c), cfg, experiment.build_mesh(typed(c)))
    examples = load_examples(c.data.to_dict(), "test")[: c.eval.num_examples]
    prompt, attn = encode_prompts(tok, examples, c.sampler.prompt_len, None)
    s = c.sampler
    print(f"Fast sampler accuracy on {hardware()}: demo SFT model ({cfg.num_params() / 1e6:.2f}M "
          f"params), {len(examples)} held-out problems, greedy, gen {s.gen_length}, block "
          f"{s.block_length}, steps {s.steps}, threshold {args.threshold}", flush=True)
    rows, outs = run_modes(params, cfg, prompt, attn, s.gen_length, s.block_length, s.steps,
                           args.threshold, args.repeats, MODES)
    reward = rewards.MathReward.from_config(c.reward)
    for r in rows:
        comps = outs[r["mode"]][:, s.prompt_len:]
        texts = [tok.decode_completion(x) for x in comps]
        r["accuracy"] = float(np.mean(reward.batch(texts, [e.answer for e in examples])[1]))
    print(table(rows, extra=[("pass@1", lambda r: f"{100 * r['accuracy']:.1f}%")]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["speed", "accuracy"])
    add_shape_args(ap)
    ap.add_argument("--layers", type=int, default=0, help="override the preset's depth")
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--modes", default="prefix,dual",
                    help="speed: modes to run besides exact, from " +
                    ",".join(m[0] for m in MODES[1:]))
    ap.add_argument("--torch-repeats", type=int, default=1)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", default="", help="also write the rows here")
    args = ap.parse_args()
    rows = speed(args) if args.what == "speed" else accuracy(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(hardware=hardware(), args=vars(args), rows=rows), f, indent=2)


if __name__ == "__main__":
    main()
