"""``--dry_run``: compile the RL programs for the configured model and mesh, allocate nothing.

    python -m igpo_jax.main --config configs/llada_8b.py:igpo_v5p32 --dry_run

Lowers and compiles the rollout sampler (one chunk of ``sampler.rollout_batch_size``
rows), the log-prob program (the whole rollout batch in micro-batches) and the
update step (gradient accumulation + optimiser) with abstract inputs
(``jax.ShapeDtypeStruct`` carrying the mesh shardings; no weights are read or
allocated), then prints, per program, the per-device memory from XLA's memory
analysis of the compiled program (arguments, outputs, temporaries, and their sum
less donated aliases: the peak a device must hold) and the FLOPs of one step.

Run it on the machine you will train on (a TPU VM, a GPU node), or on a CPU with
simulated devices: ``--dry_run_devices=32`` makes 32 CPU devices so that a laptop
plans a v5p-32 mesh (CPU memory analysis reflects the CPU compiler's
buffer assignment, close to but not the same as the TPU/GPU one).
"""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from igpo_jax import experiment, optim, sampling
from igpo_jax import sharding as shd
from igpo_jax.models import family, lora
from igpo_jax.sections import require

from igpo_jax.configlib import RunConfig

GiB = 1024 ** 3


def _abstract(shape, dtype, sharding):
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def _memory(compiled) -> dict[str, float]:
    m = compiled.memory_analysis()
    if m is None:
        return {}
    out = {k: getattr(m, f"{k}_size_in_bytes", 0) / GiB
           for k in ("argument", "output", "temp", "alias", "generated_code")}
    out["peak"] = out["argument"] + out["output"] + out["temp"] - out["alias"]
    return out


def _flops(compiled) -> float | None:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return float(cost["flops"]) if cost and "flops" in cost else None


def plan(c: RunConfig | ml_collections.ConfigDict) -> dict[str, Any]:
    """Compiles the three RL programs abstractly; returns the report (also printed by main)."""
    c = require(c, "dry_run.plan")
    from igpo_jax.rl import trainer  # the trainer's own program builders

    parts = experiment.ModelParts(c, with_tokenizer=False)  # no text is read here
    cfg, mesh = parts.cfg, parts.mesh
    rl, s = c.rl, c.sampler
    params = experiment.abstract_params(cfg, mesh)  # adapters included under LoRA
    trainable, frozen = lora.split(params)
    n = rl.rows
    chunk = min(s.rollout_batch_size, n)
    n_micro = n // rl.micro_batch_size
    p, g = s.prompt_len, s.gen_length

    def batch(rows, length, dtype):
        return _abstract((rows, length), dtype, shd.batch_sharding(mesh, 2, rows))

    report: dict[str, Any] = dict(
        model=dict(family=cfg.family, params=cfg.num_params(), d_model=cfg.d_model,
                   n_layers=cfg.n_layers,
                   param_dtype=cfg.param_dtype, dtype=cfg.dtype, remat=cfg.remat,
                   trainable=sum(x.size for x in trainable.values()),
                   lora=cfg.lora.to_dict() if cfg.lora else None,
                   moments_dtype=c.optim.moments_dtype),
        mesh=dict(mesh.shape), devices=jax.device_count(),
        platform=jax.devices()[0].platform, programs={})

    # 1. rollout: one sampler chunk (under LoRA the sampler runs on merged weights, which
    # have the base's shapes and shardings: generate_params merges once per call)
    sc = sampling.SamplerConfig.from_config(s)
    base_cfg = cfg.replace(lora=None)
    rng = jax.eval_shape(lambda: jax.random.key(0))
    rollout = sampling.lower(
        lora.base(params), base_cfg, sc, batch(chunk, p, jnp.int32), batch(chunk, p, jnp.bool_),
        batch(chunk, g, jnp.int32), batch(chunk, g, jnp.bool_), rng).compile()
    calls = -(-n // chunk) * (2 if rl.algo in ("igpo", "resample") else 1)  # hinted rows at most double it
    report["programs"]["rollout"] = dict(rows=chunk, calls_per_step_max=calls,
                                         memory_gib=_memory(rollout), flops=_flops(rollout))

    # 2. old / reference log-probs of the whole batch
    est = rl.estimator_config(s)
    keys = _abstract((n,), jax.eval_shape(lambda: jax.random.key(0)).dtype,
                     shd.batch_sharding(mesh, 1, n))
    logprob = trainer.make_logprob_fn(cfg, n_micro, est).lower(
        params, batch(n, p, jnp.int32), batch(n, p, jnp.bool_), batch(n, p, jnp.bool_),
        batch(n, g, jnp.int32), batch(n, g, jnp.int32), batch(n, g, jnp.bool_), keys).compile()
    report["programs"]["logprobs"] = dict(rows=n, micro_batches=n_micro, estimator=est.name,
                                          forward_passes=est.forward_passes,
                                          memory_gib=_memory(logprob), flops=_flops(logprob))

    # 3. the update step (optimiser state sharded as the trainer's tx.init gives it)
    tx, _ = optim.make_optimizer(c.optim, max(rl.num_steps * rl.num_iterations, 1))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    # moments sharded like their parameters (the trainer's eager tx.init keeps the
    # params' shardings), counters replicated (shd.replicate_unplaced)
    opt_state = optax.tree_map_params(
        tx, lambda leaf, sh: _abstract(leaf.shape, leaf.dtype, sh),
        jax.eval_shape(tx.init, trainable), {k: v.sharding for k, v in trainable.items()},
        transform_non_params=lambda leaf: _abstract(leaf.shape, leaf.dtype, replicated))
    f32 = lambda rows, length: batch(rows, length, jnp.float32)  # noqa: E731
    tb = trainer.TrainBatch(batch(n, p, jnp.int32), batch(n, p, jnp.bool_),
                            batch(n, p, jnp.bool_), batch(n, g, jnp.int32),
                            batch(n, g, jnp.int32), keys,
                            batch(n, g, jnp.bool_), batch(n, g, jnp.bool_),
                            batch(n, g, jnp.bool_),
                            _abstract((n,), jnp.float32, shd.batch_sharding(mesh, 1, n)),
                            f32(n, g), f32(n, g))
    update = trainer.make_train_step(cfg, tx, rl, n_micro, trainable, opt_state, est).lower(
        trainable, opt_state, frozen, tb, rng).compile()
    report["programs"]["update"] = dict(rows=n, micro_batches=n_micro,
                                        memory_gib=_memory(update), flops=_flops(update))
    param_bytes = sum(x.size * x.dtype.itemsize for x in params.values())
    opt_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(opt_state))
    # the reference policy is the base with adapters off under LoRA: no second copy
    ref_bytes = param_bytes if rl.beta > 0 and not frozen else 0
    report["state_gib_total"] = dict(params=param_bytes / GiB, optimizer=opt_bytes / GiB,
                                     reference_copy=ref_bytes / GiB)
    # analytic FLOPs of one RL step (model matmuls + attention; whole batch, all devices)
    seq = p + g
    fwd = cfg.flops_per_token(seq) * seq
    report["flops_per_step_analytic"] = dict(
        rollout=n * sc.steps * fwd * (2 if rl.algo in ("igpo", "resample") else 1),
        logprobs=n * fwd * est.forward_passes * rl.num_iterations * (2 if rl.beta > 0 else 1),
        update=3 * n * fwd * est.forward_passes * rl.num_iterations)
    return report


def _training_line(m: dict[str, Any]) -> str:
    lc = m.get("lora")
    what = (f"LoRA r {lc['rank']}, alpha {lc['alpha']:g}, dropout {lc['dropout']:g} on "
            f"{','.join(lc['targets'])} ({lc['param_dtype']} adapters)" if lc else
            "all parameters")
    return (f"trains {what}: {m['trainable'] / 1e6:.1f}M parameters, AdamW moments "
            f"{m['moments_dtype']}")


def format_report(r: dict[str, Any]) -> str:
    name = family.title(r["model"].get("family", "llada"))
    lines = [f"dry run: {name} {r['model']['params'] / 1e9:.2f}B params "
             f"({r['model']['n_layers']} layers, d_model {r['model']['d_model']}, "
             f"{r['model']['param_dtype']} params, {r['model']['dtype']} compute, "
             f"remat={r['model']['remat']}) on {r['devices']} {r['platform']} devices, "
             f"mesh {r['mesh']}",
             _training_line(r["model"]),
             "| program | rows | per-device peak GiB | arguments | outputs | temporaries | "
             "compiled FLOPs / device |", "|---|---|---|---|---|---|---|"]
    for name, prog in r["programs"].items():
        m = prog["memory_gib"]
        fl = f"{prog['flops']:.3g}" if prog["flops"] else "n/a"
        lines.append(f"| {name} | {prog['rows']} | {m.get('peak', float('nan')):.2f} | "
                     f"{m.get('argument', float('nan')):.2f} | {m.get('output', float('nan')):.2f}"
                     f" | {m.get('temp', float('nan')):.2f} | {fl} |")
    st, fa = r["state_gib_total"], r["flops_per_step_analytic"]
    lines.append(f"state, all devices together: params {st['params']:.1f} GiB, optimiser "
                 f"{st['optimizer']:.1f} GiB, reference copy {st['reference_copy']:.1f} GiB")
    lines.append("FLOPs per RL step (analytic, all devices): " +
                 ", ".join(f"{k} {v:.3g}" for k, v in fa.items()) +
                 f"; total {sum(fa.values()):.3g}")
    return "\n".join(lines)


def run(c: RunConfig, json_path: str | None = None) -> dict[str, Any]:
    report = plan(c)
    if jax.process_index() == 0:
        print(format_report(report), flush=True)
        if json_path:
            from igpo_jax import storage
            from igpo_jax.metrics import strict
            storage.write_text(json_path, json.dumps(strict(report), indent=2, allow_nan=False))
    return report

