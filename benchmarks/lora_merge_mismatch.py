"""How far apart are the policy that samples (LoRA merged into bf16 weights) and the
policy whose log-probs are trained (base + unmerged adapters)?

Rollouts fold the adapters into their base weights once per batch and cast the sum
to the weights' dtype; log-probs run the base and the adapters separately. With
bfloat16 weights the cast rounds away adapter updates smaller than about 2^-9 of a
weight. This script sets adapters to a delta of a given size relative to the base
weights (||scale A B|| / ||W|| per matrix, as trained adapters have after some
steps) and reports, at every masked position of random inputs:

- the mean per-token KL(unmerged || merged-and-cast),
- the share of positions whose argmax (the temperature-0 token) differs,

for float32 and bfloat16 weights. ``--config`` / ``--preset`` pick the shape.

    python benchmarks/lora_merge_mismatch.py                   # d_model 256, 4 layers
    python benchmarks/lora_merge_mismatch.py --out benchmarks/results/lora_merge_mismatch.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from igpo_jax.models import lora, transformer  # noqa: E402


def run(preset: str, dtype: str, rel: float, batch: int, length: int, seed: int) -> dict:
    lc = lora.LoraConfig(rank=16, alpha=32.0)
    cfg = getattr(transformer.TransformerConfig, preset)(param_dtype=dtype, dtype=dtype, lora=lc)
    params = transformer.init_params(cfg, seed)
    key = jax.random.key(seed + 1)
    # adapters with ||scale A B|| = rel ||W|| for each adapted matrix
    for t in lc.targets:
        name = "blocks/" + t
        key, k = jax.random.split(key)
        b = jax.random.normal(k, params[name + lora.SUFFIX_B].shape, jnp.float32)
        a = params[name + lora.SUFFIX_A].astype(jnp.float32)
        d = jnp.einsum("nir,nro->nio", a, b) * lc.scale
        w = params[name].astype(jnp.float32)
        ratio = jnp.linalg.norm(w.reshape(w.shape[0], -1), axis=1) / jnp.linalg.norm(
            d.reshape(d.shape[0], -1), axis=1)
        params[name + lora.SUFFIX_B] = (b * rel * ratio[:, None, None]).astype(
            params[name + lora.SUFFIX_B].dtype)
    merged = lora.merge(params, lc)
    base_cfg = cfg.replace(lora=None)
    key, k1, k2 = jax.random.split(key, 3)
    ids = jax.random.randint(k1, (batch, length), 0, cfg.vocab_size - 3)
    masked = jax.random.bernoulli(k2, 0.5, ids.shape)
    ids = jnp.where(masked, cfg.mask_token_id, ids)
    lp_train = jax.nn.log_softmax(transformer.forward(params, cfg, ids).astype(jnp.float32), -1)
    lp_sample = jax.nn.log_softmax(transformer.forward(merged, base_cfg, ids).astype(jnp.float32), -1)
    lp_base = jax.nn.log_softmax(transformer.forward(lora.base(params), base_cfg, ids)
                                 .astype(jnp.float32), -1)
    m = np.asarray(masked)

    def kl(p, q):
        return float((np.exp(np.asarray(p)) * (np.asarray(p) - np.asarray(q))).sum(-1)[m].mean())

    def disagree(p, q):
        return float((np.asarray(p).argmax(-1) != np.asarray(q).argmax(-1))[m].mean())
    return dict(preset=preset, dtype=dtype, rel_delta=rel,
                kl_train_vs_sample=kl(lp_train, lp_sample),
                argmax_disagree_train_vs_sample=disagree(lp_train, lp_sample),
                kl_train_vs_base=kl(lp_train, lp_base),
                argmax_disagree_train_vs_base=disagree(lp_train, lp_base))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    rows = [run(a.preset, dt, rel, a.batch, a.length, a.seed)
            for dt in ("float32", "bfloat16") for rel in (1e-4, 1e-3, 1e-2, 1e-1)]
    print("| weights | ||delta|| / ||W|| | KL(train ‖ sample) | argmax differs | "
          "KL(train ‖ base) | argmax differs from base |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['rel_delta']:g} | {r['kl_train_vs_sample']:.2e} | "
              f"{100 * r['argmax_disagree_train_vs_sample']:.2f}% | {r['kl_train_vs_base']:.2e} | "
              f"{100 * r['argmax_disagree_train_vs_base']:.2f}% |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(dict(rows=rows, device=str(jax.devices()[0]), jax=jax.__version__), f,
                      indent=1)


if __name__ == "__main__":
    main()
