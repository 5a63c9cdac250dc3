"""Which log-probability estimator acts like the policy, and what each costs.

On a trained model (default: the shipped demo SFT stage) the rollout sampler writes
completions for training problems; for those completions every estimator of
``rl/estimators.py`` gives per-token log-probs. Reported per estimator:

- ``corr``: Pearson correlation over completions of the sequence log-prob (summed over
  the completion mask) with the exact trajectory log-prob (one forward pass per
  sampler step: the likelihood of what the sampler did, in the contexts it did it);
  ``spearman`` the rank correlation;
- ``grad_cos``: cosine between the policy-gradient direction of the estimator,
  ``grad sum_i A_i logp_i`` (A: the rollouts' group advantages), and the exact
  trajectory's;
- cost: forward passes per row, seconds for the log-probs of the batch (no gradient)
  and for one gradient of the batch, beside the rollout's own seconds.

    python benchmarks/estimators_compare.py --config configs/demo.py --problems 16

Writes a JSON summary (``--out``) and prints a markdown table. Timings are of this
machine (named in the output); compare them only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.igpo_diagnose import load_model  # noqa: E402
from igpo_jax.configlib import typed  # noqa: E402

# (label, estimator settings)
ESTIMATORS = (
    ("trajectory (exact)", dict(name="trajectory", trajectory_passes=0)),
    ("trajectory, 2 passes/block", dict(name="trajectory", trajectory_passes=2)),
    ("trajectory, 1 pass/block", dict(name="trajectory", trajectory_passes=1)),
    ("one_step (d1)", dict(name="one_step")),
    ("block, 1 draw", dict(name="block", mc_samples=1)),
    ("block, 2 draws", dict(name="block", mc_samples=2)),
    ("block, 1 coupled pair", dict(name="block", mc_samples=1, coupled=True)),
    ("elbo, 4 draws", dict(name="elbo", mc_samples=4)),
    ("elbo, 2 coupled pairs", dict(name="elbo", mc_samples=2, coupled=True)),
)


def _timed(fn, repeats=2):
    out = jax.block_until_ready(fn())  # compile
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = jax.block_until_ready(fn())
    return out, (time.perf_counter() - t0) / repeats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--init_from", default="", help="run folder (default: shipped demo SFT)")
    ap.add_argument("--problems", type=int, default=16, help="training problems (x group)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--micro_batch", type=int, default=16, help="rows per gradient call")
    ap.add_argument("--out", default="benchmarks/results/estimators_compare.json")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    a = ap.parse_args()

    from igpo_jax import metrics, rewards, sampling
    from igpo_jax.data.batches import encode_prompts
    from igpo_jax.data.sources import load_examples
    from igpo_jax.rl import estimators, grpo, logprobs

    c, init, tok, cfg, params = load_model(a.config, a.init_from, a.overrides)
    tc = typed(c)
    G = c.rl.group_size
    exs = load_examples(c.data.to_dict(), "train")
    rng = np.random.default_rng(a.seed)
    probs = [exs[i] for i in rng.choice(len(exs), a.problems, replace=False)]
    rows = [e for e in probs for _ in range(G)]
    prompt, attn = encode_prompts(tok, rows, c.sampler.prompt_len, c.data.system_prompt or None)
    sc = sampling.SamplerConfig.from_config(c.sampler)
    key = jax.random.key(a.seed)
    def rollout():
        return sampling.generate_params(params, cfg, prompt, sc, key, attention_mask=attn)
    out = rollout()
    _, rollout_sec = _timed(lambda: rollout().tokens, a.repeats)
    comp, order = np.asarray(out.completions()), np.asarray(out.order)
    texts = [tok.decode_completion(x) for x in comp]
    reward = rewards.from_config(tc.reward)
    r, ok, _ = reward.batch(texts, [e.answer for e in rows])
    adv = np.asarray(grpo.advantages_mean(jnp.asarray(r, jnp.float32), G))
    mask = np.asarray(logprobs.completion_mask(jnp.asarray(comp), cfg.eos_token_id))
    hint = np.zeros(comp.shape, bool)
    keys = jax.random.split(jax.random.key(a.seed + 1), len(rows))
    inputs = tuple(jnp.asarray(x) for x in (prompt, attn)) + (None,) + tuple(
        jnp.asarray(x) for x in (comp, order, hint)) + (keys,)
    m = jnp.asarray(mask, jnp.float32)
    A = jnp.asarray(adv)

    results, ref_seq, ref_grad = [], None, None
    for label, kw in ESTIMATORS:
        est = estimators.EstimatorConfig(gen_length=sc.gen_length, block_length=sc.block_length,
                                         steps=sc.steps, **kw)
        lp_fn = jax.jit(lambda p, est=est: estimators.estimate(p, cfg, est, *inputs,
                                                               with_entropy=False)[0])
        chunk = min(a.micro_batch, len(rows))

        def mb_grad(p, sl, est=est):
            xs = [x if x is None else x[sl] for x in inputs]
            return jax.grad(lambda p: jnp.sum(A[sl] * (estimators.estimate(
                p, cfg, est, *xs, with_entropy=False)[0] * m[sl]).sum(1)))(p)
        grad_fns = [jax.jit(lambda p, sl=slice(i, i + chunk): mb_grad(p, sl))
                    for i in range(0, len(rows), chunk)]

        def grad_all():  # summed over micro-batches of rows, as the trainer does
            return jax.tree.map(lambda *g: sum(g), *[f(params) for f in grad_fns])
        logp, lp_sec = _timed(lambda: lp_fn(params), a.repeats)
        grad, grad_sec = _timed(grad_all, a.repeats)
        seq = np.asarray((logp * m).sum(1), np.float64)
        flat = np.concatenate([np.asarray(v, np.float64).ravel() for v in
                               jax.tree.leaves(grad)])
        if ref_seq is None:
            ref_seq, ref_grad = seq, flat
        rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
        results.append(dict(
            estimator=label, **kw, forward_passes=est.forward_passes,
            corr=float(np.corrcoef(seq, ref_seq)[0, 1]),
            spearman=float(np.corrcoef(rank(seq), rank(ref_seq))[0, 1]),
            grad_cos=float(flat @ ref_grad / (np.linalg.norm(flat) * np.linalg.norm(ref_grad))),
            mean_seq_logp=float(seq.mean()), logprob_seconds=lp_sec, grad_seconds=grad_sec))
        print(json.dumps(results[-1]), flush=True)

    machine = metrics.machine_info()
    summary = dict(config=a.config, init_from=init, rows=len(rows), problems=a.problems,
                   group_size=G, sampler=sc.mode, accuracy=float(np.mean(ok)),
                   rollout_seconds=rollout_sec, rollout_forward_passes=int(out.nfe),
                   host=platform.node(), machine=machine, results=results)
    print(f"\n{len(rows)} rollouts ({sc.mode} sampler, {int(out.nfe)} model calls, "
          f"{rollout_sec:.2f} s); accuracy {np.mean(ok):.1%}; {metrics.describe_machine(machine)}")
    print("| estimator | passes | corr with exact trajectory | rank corr | gradient cosine "
          "| log-probs s | gradient s |\n|---|---|---|---|---|---|---|")
    for x in results:
        print(f"| {x['estimator']} | {x['forward_passes']} | {x['corr']:.3f} | "
              f"{x['spearman']:.3f} | {x['grad_cos']:.3f} | {x['logprob_seconds']:.2f} | "
              f"{x['grad_seconds']:.2f} |")
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(summary, f, indent=1, default=str)
        print("wrote", a.out)


if __name__ == "__main__":
    main()
