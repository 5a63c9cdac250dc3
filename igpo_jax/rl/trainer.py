"""The RL loop (GRPO and IGPO share every line but the rollout augmentation).

Per step: rollout (sampler) -> rewards -> IGPO augmentation -> advantages ->
old and reference log-probs -> ``num_iterations`` optimiser steps -> metrics ->
checkpoint. All per-step randomness derives from ``fold_in(seed, step)`` and the
data order from the grain iterator state in the checkpoint, so a resumed run
repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from igpo_jax import configlib, evaluate, experiment, loop, optim, sampling
from igpo_jax import rewards as rewards_lib
from igpo_jax import sharding as shd
from igpo_jax.data.batches import check_lengths, index_iterator
from igpo_jax.data.sources import load_examples
from igpo_jax.metrics import MetricsWriter, PipelinePosition, Progress
from igpo_jax.records import UpdateRecord
from igpo_jax.models import lora, transformer
from igpo_jax.rl import augment, estimators, grpo, logprobs
from igpo_jax.rl.rollout import RolloutConfig, RolloutWorker
from igpo_jax.sections import require

from igpo_jax.configlib import RunConfig

log = logging.getLogger(__name__)


@flax.struct.dataclass
class TrainBatch:
    """What crosses from rollout to loss. Leading dimension N = prompts x G."""

    prompt_ids: jax.Array  # int32 [N, P]
    prompt_attn: jax.Array  # bool [N, P]
    masked_prompt: jax.Array  # bool [N, P] prompt tokens masked in this inner iteration
    completion_ids: jax.Array  # int32 [N, C]
    order: jax.Array  # int32 [N, C]: the sampler step that wrote each token (-1: none)
    est_keys: jax.Array  # PRNG key [N]: the estimator's random masks in this iteration
    loss_mask: jax.Array  # bool [N, C]: completion mask & IGPO entropy filter
    ratio_mask: jax.Array  # bool [N, C]: positions the sequence ratio averages over
    hint_mask: jax.Array  # bool [N, C]: hint tokens of swapped-in completions
    advantages: jax.Array  # float32 [N]
    old_logp: jax.Array  # float32 [N, C]
    ref_logp: jax.Array  # float32 [N, C] (zeros when beta == 0)


def _micro(x, n):
    return x.reshape((n, x.shape[0] // n) + x.shape[1:])


def make_logprob_fn(cfg: transformer.TransformerConfig, n_micro: int, est: estimators.EstimatorConfig):
    """jit: (params, prompt, attn, masked_prompt, completion, order, hint_mask, keys) ->
    (logp, entropy) under estimator ``est``, by micro-batch."""
    def fn(params, prompt_ids, prompt_attn, masked_prompt, completion_ids, order, hint_mask,
           keys):
        def one(xs):
            p, a, comp, m, o, h, k = xs
            return estimators.estimate(params, cfg, est, p, a, m, comp, o, h, k)
        xs = tuple(_micro(x, n_micro) for x in (prompt_ids, prompt_attn, completion_ids,
                                                masked_prompt, order, hint_mask, keys))
        logp, ent = jax.lax.map(one, xs)
        return logp.reshape(completion_ids.shape), ent.reshape(completion_ids.shape)
    return jax.jit(fn)


def make_train_step(cfg: transformer.TransformerConfig, tx: optax.GradientTransformation,
                    rl: grpo.RLConfig, n_micro: int, trainable, opt_state,
                    est: estimators.EstimatorConfig | None = None):
    """jit: (trainable, opt_state, frozen, TrainBatch, key) -> (trainable, opt_state, out),
    :func:`optim.make_update_step` with the policy loss; ``key`` drives LoRA dropout."""
    use_ref = rl.beta > 0
    est = est or estimators.EstimatorConfig()

    def make_loss(batch: TrainBatch, key):
        denom = jnp.maximum(grpo.loss_denominator(batch.loss_mask, rl.aggregation, rl.loss),
                            1.0)

        def loss_fn(params, mb: TrainBatch, dropout_key):
            inputs = (params, cfg, est, mb.prompt_ids, mb.prompt_attn, mb.masked_prompt,
                      mb.completion_ids, mb.order, mb.hint_mask, mb.est_keys)
            upper = None
            if rl.loss == "spg":
                logp, upper = estimators.bounds(*inputs, beta=rl.eubo_beta,
                                                dropout_rng=dropout_key)
            else:
                logp, _ = estimators.estimate(*inputs, with_entropy=False,
                                              dropout_rng=dropout_key)
            s, d, stats = grpo.POLICY_LOSSES[rl.loss](
                logp, mb.old_logp, mb.ref_logp if use_ref else None, mb.advantages,
                mb.loss_mask, ratio=rl.ratio, eps_low=rl.eps_low, eps_high=rl.eps_high,
                beta=rl.beta, aggregation=rl.aggregation, ratio_mask=mb.ratio_mask,
                hint_mask=mb.hint_mask, upper=upper, eubo_mix=rl.eubo_mix)
            return grpo.normalise(s, d, denom, n_micro, rl.loss_norm), stats
        return loss_fn, batch

    return optim.make_update_step(make_loss, tx, n_micro, trainable, opt_state)


def update_metrics(out: dict) -> dict:
    """Host-side metrics of one update from the step's summed stats."""
    n_tok = max(float(out["token_count"]), 1.0)
    n_hint = float(out["hint_token_count"])
    n_gen = max(float(out["token_count"]) - n_hint, 1.0)
    hint = (lambda k: float(out[k]) / n_hint if n_hint else None)  # noqa: E731
    return {"loss": float(out["loss"]), "grad_norm": float(out["grad_norm"]),
            "clip_frac": float(out["clip_count"]) / n_tok, "kl": float(out["kl_sum"]) / n_tok,
            "loss_tokens": float(out["token_count"]),
            "ratio_mean": float(out["ratio_sum"]) / n_tok,
            "clip_frac_gen": float(out["clip_count"] - out["hint_clip_count"]) / n_gen,
            "ratio_gen": float(out["ratio_sum"] - out["hint_ratio_sum"]) / n_gen,
            "clip_frac_hint": hint("hint_clip_count"), "ratio_hint": hint("hint_ratio_sum")}


def make_prepare(rl: grpo.RLConfig, eos_id: int):
    """jit: (rewards, completion_ids, prompt_attn, step_key) -> (advantages, completion
    mask, the masked-prompt pattern, the dropout key and the estimator's per-row keys of
    every inner iteration): the device work between the rollout batch and the log-probs,
    in one program."""
    def prepare(rewards, completion_ids, prompt_attn, step_key):
        adv = grpo.ADVANTAGE_ESTIMATORS[rl.advantage](rewards, rl.group_size)
        if rl.loss == "wd1":  # its sequence weights in place of the advantages
            adv = grpo.wd1_weights(adv, rl.group_size)
        comp_mask = logprobs.completion_mask(completion_ids, eos_id, rl.train_on_padding)
        masks = [logprobs.prompt_mask(jax.random.fold_in(jax.random.fold_in(step_key, 7919), j),
                                      prompt_attn, rl.p_mask_prompt)
                 for j in range(rl.num_iterations)]
        keys = [jax.random.fold_in(step_key, 104729 + j) for j in range(rl.num_iterations)]
        est_keys = [jax.random.split(jax.random.fold_in(step_key, 15485863 + j),
                                     completion_ids.shape[0]) for j in range(rl.num_iterations)]
        return adv, comp_mask, masks, keys, est_keys
    return jax.jit(prepare)


@jax.jit
def _entropy_sums(ent, hint_mask, comp_mask):
    """Summed old-policy entropy and counts at hint and at generated completion tokens."""
    h = hint_mask & comp_mask
    g = comp_mask & ~hint_mask
    return dict(h=jnp.sum(ent * h), n_h=h.sum(), g=jnp.sum(ent * g), n_g=g.sum())


def _entropy_split(sums) -> dict:
    """Mean old-policy entropy at hint tokens and at generated (completion) tokens."""
    n_h, n_g = float(sums["n_h"]), float(sums["n_g"])
    return {"entropy_hint": float(sums["h"]) / n_h if n_h else None,
            "entropy_gen": float(sums["g"]) / n_g if n_g else None}


def make_iteration_masks(augmentation: augment.Augmentation, ratio_positions: str):
    """jit: (entropy, hint_mask, completion_mask) -> (loss mask, ratio mask, hint tokens
    kept): the augmentation's filter (IGPO: entropy) applied to the completion mask."""
    def masks(ent, hint_mask, comp_mask):
        keep = augmentation.loss_mask(ent, hint_mask)
        loss_mask = comp_mask & keep
        ratio_mask = jnp.ones_like(comp_mask) if ratio_positions == "completion" else loss_mask
        return loss_mask, ratio_mask, jnp.sum(keep & hint_mask & comp_mask)
    return jax.jit(masks)


@dataclasses.dataclass
class _Run:
    """What one RL step needs besides the parameters (built once by :func:`train`)."""

    c: RunConfig
    cfg: transformer.TransformerConfig
    mesh: jax.sharding.Mesh
    examples: list
    data_iter: object
    worker: RolloutWorker
    logprob_fn: object
    train_step: object
    prepare: object  # make_prepare
    iteration_masks: object  # make_iteration_masks
    frozen: dict  # parameters the optimiser never sees (the base under LoRA; else empty)
    ref_params: dict | None
    lrs: dict  # optimiser step -> learning rate, for the steps this call runs (read once)
    writer: MetricsWriter
    key: jax.Array


def _rl_step(r: _Run, trainable, opt_state, step: int):
    """One rollout batch and its ``num_iterations`` updates; returns (trainable, opt_state,
    record)."""
    params = {**r.frozen, **trainable}
    step_key = jax.random.fold_in(r.key, jax.device_put(np.uint32(step)))  # (explicit)
    idx = next(r.data_iter)
    batch = r.worker(params, [r.examples[int(i)] for i in idx], step_key)
    trainable, opt_state, out = _update(r, trainable, opt_state, batch, step_key)
    return trainable, opt_state, _write_records(r, out, batch, step)


@dataclasses.dataclass
class _UpdateOut:
    """What the device side of a step leaves on the device for the records."""

    outs: list  # per inner iteration: the train step's statistics
    counts: list  # per inner iteration: (consecutive, total) non-finite update counts
    ent_sums: object  # entropy sums of hint and generated tokens (iteration 0)
    logprob_seconds: float
    t_update: float  # when the updates started (time.time())


def _update(r: _Run, trainable, opt_state, batch: augment.ScoredBatch, step_key
            ) -> tuple[dict, object, _UpdateOut]:
    """The device side of a step: one host-to-device transfer of the whole scored batch,
    the advantages, old/reference log-probs and ``num_iterations`` updates on the device;
    the statistics stay there (:func:`_write_records` reads them in one transfer; the
    whole step is tested under ``jax.transfer_guard``)."""
    rl = r.c.rl
    params = {**r.frozen, **trainable}
    t_lp = time.time()
    arrays = shd.shard_batch(dict(p=batch.prompt_ids, a=batch.prompt_attn,
                                  c=batch.completion_ids, o=batch.order, h=batch.hint_mask,
                                  r=batch.rewards), r.mesh)
    adv, comp_mask, masks, keys, est_keys = r.prepare(arrays["r"], arrays["c"], arrays["a"],
                                                      step_key)
    # the same masks, parameters and inputs give the same numbers: reuse iteration 0's
    reuse = rl.p_mask_prompt == 0 and rl.estimator in ("one_step", "trajectory")
    # old (and reference) log-probs of every inner iteration, before any update
    olds = []
    for j in range(rl.num_iterations):
        if j > 0 and reuse:
            olds.append(olds[0])
            continue
        inputs = (arrays["p"], arrays["a"], masks[j], arrays["c"], arrays["o"], arrays["h"],
                  est_keys[j])
        old, ent = r.logprob_fn(params, *inputs)
        ref = (r.logprob_fn(r.ref_params, *inputs)[0] if r.ref_params is not None else None)
        if j == 0:
            ent_sums = _entropy_sums(ent, arrays["h"], comp_mask)
        olds.append((masks[j], est_keys[j], old, ref,
                     r.iteration_masks(ent, arrays["h"], comp_mask)))
    jax.block_until_ready(olds)  # (no transfer) so that the two phases are timed apart
    t_up = time.time()
    logprob_seconds = t_up - t_lp
    outs, counts = [], []
    for j, (masked, ekeys, old, ref, (loss_mask, ratio_mask, kept)) in enumerate(olds):
        tb = TrainBatch(arrays["p"], arrays["a"], masked, arrays["c"], arrays["o"], ekeys,
                        loss_mask, ratio_mask, arrays["h"], adv, old,
                        old if ref is None else ref)
        trainable, opt_state, out = r.train_step(trainable, opt_state, r.frozen, tb, keys[j])
        # copies: the next update donates this state
        counts.append((jnp.copy(opt_state.notfinite_count),
                       jnp.copy(opt_state.total_notfinite)))
        outs.append(dict(out, hint_tokens_kept=kept))
    return trainable, opt_state, _UpdateOut(outs, counts, ent_sums, logprob_seconds, t_up)


def _write_records(r: _Run, u: _UpdateOut, batch: augment.ScoredBatch, step: int
                   ) -> UpdateRecord:
    """The host side of a step: one device-to-host transfer of the statistics, the
    non-finite update check, and one record per inner iteration written; returns the
    last."""
    c, rl = r.c, r.c.rl
    n = rl.rows
    t_up, logprob_seconds = u.t_update, u.logprob_seconds
    host = jax.device_get(dict(outs=u.outs, counts=u.counts, ent=u.ent_sums))
    ent_stats = _entropy_split(host["ent"])
    record = None
    for j, (out, (consecutive, total)) in enumerate(zip(host["outs"], host["counts"])):
        opt_step = step * rl.num_iterations + j + 1
        skipped = optim.check_counts(consecutive, total, c.optim.max_nonfinite, rl.algo,
                                     opt_step,
                                     (step // c.checkpoint.every) * c.checkpoint.every or None)
        record = UpdateRecord(
            step=opt_step, rollout_step=step + 1, inner_iter=j, stage=rl.algo,
            **update_metrics(out), lr=r.lrs[opt_step], skipped_updates=skipped,
            hint_tokens_kept=float(out["hint_tokens_kept"]),
            update_seconds=time.time() - t_up, logprob_seconds=logprob_seconds,
            rollouts_per_step=n, **ent_stats, groups_per_step=rl.prompts_per_step,
            rollout=batch.stats)
        r.writer.write(record.to_json())
    return record


def train(c: RunConfig | ml_collections.ConfigDict, workdir: str, stop_after: int | None = None, *,
          tokenizer=None, reward=None, examples=None, params=None,
          position: PipelinePosition | None = None) -> dict:
    """Runs (or resumes) the RL stage of config ``c`` in ``workdir``.

    Built parts can be passed instead of built from the config (the rest still is):
    ``tokenizer``, ``reward`` (see ``rewards.REWARDS`` for the interface), the
    training ``examples`` (a list of :class:`igpo_jax.data.Example`) and the initial
    ``params`` (e.g. a model loaded elsewhere).

    ``stop_after``: return after this many steps of this call, with a checkpoint
    written, as an interrupted run would (used for time-sliced jobs and tests).
    SIGTERM / SIGINT finish the current step, checkpoint and raise
    :class:`preemption.Preempted`. Returns a summary with the final parameters.
    """
    c = require(c, "trainer.train")
    rl, s = c.rl, c.sampler
    parts = experiment.ModelParts(c, tokenizer=tokenizer, params=params)
    mesh, tok, cfg = parts.mesh, parts.tok, parts.cfg
    n = rl.rows
    configlib.check_devices(c)
    examples = check_lengths(tok, examples or load_examples(c.data.to_dict(), "train"),
                             s.prompt_len,
                             s.gen_length if rl.algo == "igpo" else None,
                             c.data.system_prompt or None, c.data.skip_bad_rows, "RL data")
    data_iter = index_iterator(len(examples), rl.prompts_per_step, c.seed,
                               jax.process_index(), jax.process_count())
    params = parts.params  # read (or initialised) only now that the data has been checked
    # the frozen reference policy is the initial one (also after a resume): under LoRA
    # the base with adapters off (the same arrays, never donated); else a copy, because
    # the update step donates the trainable parameters
    ref_params = None if rl.beta <= 0 else (
        lora.base(params) if cfg.lora else jax.tree.map(jnp.copy, params))
    ts = loop.start_training(c, workdir, params, mesh, rl.num_steps * rl.num_iterations,
                                   data_iter, rl.num_iterations, rl.algo)
    tx, schedule, trainable, frozen, opt_state = (ts.tx, ts.schedule, ts.trainable, ts.frozen,
                                                  ts.opt_state)
    writer, start = ts.writer, ts.start
    if start >= rl.num_steps:
        log.info("%s: all %d steps done already (%s)", rl.algo, rl.num_steps, workdir)

    sc = sampling.SamplerConfig.from_config(s)
    augmentation = augment.make(rl.algo, group_size=rl.group_size, lam=c.igpo.lam,
                                hints=c.igpo,
                                tau=c.igpo.tau, tokenizer=tok,
                                exclude_last_step=c.igpo.exclude_last_step)
    worker = RolloutWorker(cfg, sc, RolloutConfig(
        rl.group_size, s.prompt_len, min(s.rollout_batch_size, n),
        c.data.system_prompt or None), augmentation, tok,
        reward or rewards_lib.from_config(c.reward), mesh)
    n_micro = n // rl.micro_batch_size
    est = rl.estimator_config(s)
    train_step = make_train_step(cfg, tx, rl, n_micro, trainable, opt_state, est)
    end = rl.num_steps if stop_after is None else min(rl.num_steps, start + stop_after)
    ni = rl.num_iterations  # the records' learning rates, read before the steps run
    lrs = {k + 1: float(schedule(k)) for k in range(start * ni, end * ni)}
    r = _Run(c, cfg, mesh, examples, data_iter, worker, make_logprob_fn(cfg, n_micro, est),
             train_step, make_prepare(rl, cfg.eos_token_id),
             make_iteration_masks(augmentation, rl.ratio_positions), frozen, ref_params,
             lrs, writer, jax.random.key(c.seed))
    heldout = evaluate.PeriodicEval(c, workdir, cfg, tok, mesh)
    if start == 0:
        heldout.maybe(0, {**frozen, **trainable}, rollouts=0)
    progress = Progress(rl.num_steps, rl.algo, start, position=position)

    def rl_step(trainable, opt_state, step):
        trainable, opt_state, record = _rl_step(r, trainable, opt_state, step)
        if (step + 1) % c.log_every == 0:
            progress.update(step + 1, acc=record.rollout.accuracy,
                            wrong=record.rollout.frac_all_wrong_groups,
                            repl=record.rollout.num_replaced, gnorm=record.grad_norm,
                            clip=record.clip_frac, loss=record.loss)
        return trainable, opt_state, record

    trainable, opt_state, last = loop.run(
        ts, rl_step, stage=rl.algo, end=end, checkpoint_every=c.checkpoint.every,
        data_iter=data_iter, heldout=lambda done, params: heldout.maybe(
            done, params, final=done == rl.num_steps, rollouts=done * n))
    # the summary's last record as its JSON (the typed one is records.UpdateRecord)
    return {"steps": end, "last": last.to_json() if last is not None else {},
            "params": {**frozen, **trainable}}
