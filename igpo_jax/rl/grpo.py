"""Group advantages and the clipped policy-gradient loss (docs/ALGORITHM.md section 4).

Plain functions selected by name in the config. The loss returns a sum and a
denominator so that micro-batches accumulate to exactly the full-batch loss.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from igpo_jax.rl.estimators import ESTIMATORS, EstimatorConfig
from igpo_jax.sections import Section, check, field


def advantages_mean(rewards: jax.Array, group_size: int) -> jax.Array:
    """A_i = r_i - mean of its group. ``rewards [N]``, groups are consecutive."""
    r = rewards.reshape(-1, group_size)
    return (r - r.mean(axis=1, keepdims=True)).reshape(-1)


def advantages_std(rewards: jax.Array, group_size: int, eps: float = 1e-4) -> jax.Array:
    """A_i = (r_i - mean) / (std + eps), std with ddof=1 as in TRL/d1."""
    r = rewards.reshape(-1, group_size)
    std = r.std(axis=1, ddof=1, keepdims=True)
    return ((r - r.mean(axis=1, keepdims=True)) / (std + eps)).reshape(-1)


ADVANTAGE_ESTIMATORS: dict[str, Callable] = {"mean": advantages_mean, "std": advantages_std}
RATIOS = ("token", "sequence")  # per-token ratio (d1) | sequence ratio (GSPO)
RATIO_POSITIONS = ("loss_mask", "completion")  # what the sequence ratio averages over
AGGREGATIONS = ("token", "sequence")
LOSS_NORMS = ("batch", "micro_batch")


def policy_loss(logp: jax.Array, old_logp: jax.Array, ref_logp: jax.Array | None,
                advantages: jax.Array, loss_mask: jax.Array, *, ratio: str = "sequence",
                eps_low: float = 0.2, eps_high: float = 0.2, beta: float = 0.0,
                aggregation: str = "token", ratio_mask: jax.Array | None = None,
                hint_mask: jax.Array | None = None, **_) -> tuple[jax.Array, jax.Array, dict]:
    """Clipped surrogate + k3 KL. Returns ``(loss_sum, denominator, stat_sums)``.

    Args:
      logp, old_logp, ref_logp: ``[B, C]`` per-token log-probs (ref None: no KL).
      advantages: ``[B]``.
      loss_mask: bool ``[B, C]`` tokens that count.
      ratio: ``token`` (rho per token) or ``sequence`` (GSPO: exp of the masked mean
        log-ratio, broadcast to tokens).
      aggregation: ``token`` (mean over all masked tokens) or ``sequence`` (mean per
        sequence, then over sequences).
      ratio_mask: bool ``[B, C]`` positions the sequence ratio averages the log-ratio
        over (default ``loss_mask``; the reference code: every completion position).
      hint_mask: bool ``[B, C]`` hint tokens: the stats are also summed over them
        (``hint_*``), so that hint and generated tokens can be reported apart.
    The loss is ``loss_sum / denominator`` summed over micro-batches.
    """
    m = loss_mask.astype(jnp.float32)
    n_tok = m.sum(axis=1)
    log_ratio = logp - old_logp
    if ratio == "token":
        rho = jnp.exp(log_ratio)
    elif ratio == "sequence":
        rm = m if ratio_mask is None else ratio_mask.astype(jnp.float32)
        seq = (log_ratio * rm).sum(axis=1) / jnp.maximum(rm.sum(axis=1), 1.0)
        rho = jnp.broadcast_to(jnp.exp(seq)[:, None], logp.shape)
    else:
        raise ValueError(f"ratio={ratio!r}; expected 'token' or 'sequence'")
    adv = advantages[:, None]
    clipped = jnp.clip(rho, 1.0 - eps_low, 1.0 + eps_high)
    per_token = -jnp.minimum(rho * adv, clipped * adv)
    is_clipped = ((rho < 1.0 - eps_low) & (adv < 0)) | ((rho > 1.0 + eps_high) & (adv > 0))
    kl = jnp.zeros_like(logp)
    if ref_logp is not None:
        d = ref_logp - logp
        kl = jnp.exp(d) - d - 1.0
        per_token = per_token + beta * kl
    if aggregation == "token":
        loss_sum, denom = (per_token * m).sum(), m.sum()
    elif aggregation == "sequence":
        has = (n_tok > 0).astype(jnp.float32)
        loss_sum = ((per_token * m).sum(axis=1) / jnp.maximum(n_tok, 1.0) * has).sum()
        denom = has.sum()
    else:
        raise ValueError(f"aggregation={aggregation!r}; expected 'token' or 'sequence'")
    hm = jnp.zeros_like(m) if hint_mask is None else hint_mask.astype(jnp.float32) * m
    stats = {"clip_count": (is_clipped * m).sum(), "kl_sum": (kl * m).sum(),
             "token_count": m.sum(), "ratio_sum": (rho * m).sum(),
             "hint_clip_count": (is_clipped * hm).sum(), "hint_ratio_sum": (rho * hm).sum(),
             "hint_token_count": hm.sum()}
    return loss_sum, denom, stats


def spg_loss(logp, old_logp, ref_logp, advantages, loss_mask, *, upper=None,
             eubo_mix: float = 0.5, hint_mask=None, **_) -> tuple[jax.Array, jax.Array, dict]:
    """SPG's sandwiched policy gradient (facebookresearch/SPG): an advantage-weighted
    likelihood, no ratio, no clipping, with the lower bound (ELBO terms, ``logp``) for
    positive advantages and ``eubo_mix * upper + (1 - eubo_mix) * lower`` for the
    others (``upper``: the EUBO terms of ``estimators.bounds``). Per sequence the bound
    is the mean over its loss tokens and sequences weigh by their token count, so the
    loss is ``-sum_i A_i sum_k m_ik b_ik / sum m``: ``(loss_sum, token count, stats)``.
    Differences from the released code: the terms are 1/t-weighted (SPG averages the
    plain log-probs of the masked tokens), and the EUBO is averaged over the loss tokens
    (SPG: over the tokens some draw masked)."""
    m = loss_mask.astype(jnp.float32)
    up = logp if upper is None else upper
    pos = (advantages > 0)[:, None]
    bound = jnp.where(pos, logp, eubo_mix * up + (1.0 - eubo_mix) * logp)
    loss_sum = -(advantages[:, None] * bound * m).sum()
    return loss_sum, m.sum(), plain_stats(m, hint_mask)


def wd1_loss(logp, old_logp, ref_logp, advantages, loss_mask, *, hint_mask=None, **_
             ) -> tuple[jax.Array, jax.Array, dict]:
    """wd1's weighted likelihood (xiaohangt/wd1): ``advantages`` here are the group
    weights ``softmax_group(A) - softmax_group(-A)`` (:func:`wd1_weights`), and the loss
    is ``-sum_i w_i sum_k m_ik logp_ik`` over sequences (no ratio, no clipping): the
    returned denominator is the number of sequences. wd1 sums over one group; this mean
    over sequences is 1/G of it (a learning-rate factor)."""
    m = loss_mask.astype(jnp.float32)
    loss_sum = -(advantages * (logp * m).sum(axis=1)).sum()
    return loss_sum, (m.sum(axis=1) > 0).sum().astype(jnp.float32), plain_stats(m, hint_mask)


def wd1_weights(advantages: jax.Array, group_size: int) -> jax.Array:
    """``softmax(A) - softmax(-A)`` within each group of ``group_size`` consecutive rows."""
    a = advantages.reshape(-1, group_size)
    return (jax.nn.softmax(a, axis=1) - jax.nn.softmax(-a, axis=1)).reshape(-1)


def plain_stats(m, hint_mask) -> dict:
    """The stats of a ratio-free loss (no clipping; ratio 1; no KL): the sums every policy
    loss returns (``m``: the float loss mask, ``hint_mask``: bool or None)."""
    hm = jnp.zeros_like(m) if hint_mask is None else hint_mask.astype(jnp.float32) * m
    zero = jnp.zeros((), jnp.float32)
    return {"clip_count": zero, "kl_sum": zero, "token_count": m.sum(), "ratio_sum": m.sum(),
            "hint_clip_count": zero, "hint_ratio_sum": hm.sum(), "hint_token_count": hm.sum()}


def loss_denominator(loss_mask: jax.Array, aggregation: str, loss: str = "clipped_surrogate"
                     ) -> jax.Array:
    """The denominator of the whole batch, known before the micro-batches run (the one
    each policy loss returns, summed over micro-batches)."""
    if loss == "wd1" or (loss != "spg" and aggregation == "sequence"):
        return (loss_mask.sum(axis=1) > 0).sum().astype(jnp.float32)
    return loss_mask.sum().astype(jnp.float32)


def normalise(loss_sum: jax.Array, denom: jax.Array, batch_denom: jax.Array, n_micro: int,
              mode: str = "batch") -> jax.Array:
    """One micro-batch's share of the step's loss.

    ``batch``: ``loss_sum / batch_denom`` (summed over micro-batches this is the mean
    over the whole batch: every token counts the same). ``micro_batch`` (reference
    code): ``loss_sum / denom / n_micro``, the mean over micro-batches of each one's own
    mean, so a token of a short micro-batch weighs more.
    """
    if mode == "micro_batch":
        return loss_sum / (jnp.maximum(denom, 1.0) * n_micro)
    if mode == "batch":
        return loss_sum / batch_denom
    raise ValueError(f"loss_norm={mode!r}; expected 'batch' or 'micro_batch'")


# every policy loss takes (logp, old_logp, ref_logp, advantages, loss_mask, **settings) and
# returns (loss_sum, denominator, stats); the ones without a ratio ignore old_logp
POLICY_LOSSES: dict[str, Callable] = {"clipped_surrogate": policy_loss, "spg": spg_loss,
                                      "wd1": wd1_loss}
RATIO_FREE = ("spg", "wd1")


@dataclasses.dataclass(frozen=True)
class RLConfig(Section):
    """The config's ``rl`` section (names from the registries above and
    ``rl.augment.AUGMENTATIONS``)."""

    algo: str = field(
        "igpo", "grpo | igpo | resample (IGPO's extra samples without hints: control)")
    num_steps: int = field(10, "rollout batches (each followed by num_iterations updates)")
    prompts_per_step: int = field(4, "prompts per rollout batch")
    group_size: int = field(8, "completions per prompt (G)")
    num_iterations: int = field(1, "mu: optimiser steps per batch of rollouts")
    beta: float = field(0.0, "KL weight to the reference (start) policy (0 = no reference model)")
    eps_low: float = field(0.2, "ratio clip below 1 - eps_low")
    eps_high: float = field(0.2, "ratio clip above 1 + eps_high")
    ratio: str = field("sequence", "token | sequence (GSPO)")
    ratio_positions: str = field(
        "loss_mask",
        "sequence ratio averages the log-ratio over: loss_mask (the tokens trained on) | "
        "completion (every generated position, filtered hints and EOS padding included: the "
        "reference code)")
    loss_norm: str = field(
        "batch",
        "loss normalisation: batch (every token of the optimiser step's batch counts the same) |"
        " micro_batch (reference code: each micro-batch by its own token count)")
    aggregation: str = field("token", "token | sequence")
    advantage: str = field("mean", "mean | std")
    loss: str = field(
        "clipped_surrogate",
        "clipped_surrogate (GRPO) | spg (SPG's sandwiched bound; estimator block or elbo) | wd1 "
        "(weighted likelihood); spg and wd1 have no ratio, clipping or KL")
    eubo_beta: float = field(1.5, "loss=spg: the upper bound's beta")
    eubo_mix: float = field(
        0.5, "loss=spg: negative advantages use mix * upper + (1 - mix) * lower")
    estimator: str = field(
        "one_step",
        "how the loss reads log pi(token) (rl/estimators.py): one_step (d1: completion masked, "
        "one pass) | trajectory (the sampler's own contexts, Sample.order) | block (SPG: earlier"
        " blocks clean, the block at a random ratio) | elbo (LLaDA)")
    trajectory_passes: int = field(0, "trajectory: forward passes per block (0 = one per step)")
    mc_samples: int = field(1, "block / elbo: mask draws averaged")
    coupled: bool = field(False, "block / elbo: complementary mask pairs (every token scored)")
    p_mask_prompt: float = field(0.0, "0.15 = d1 estimator")
    train_on_padding: bool = field(False, "reference code: every generated position counts")
    micro_batch_size: int = field(16, "rows per forward/backward (gradients accumulate)")

    def estimator_config(self, sampler) -> EstimatorConfig:
        """The estimator's static settings with the sampler's geometry (``sampler``: a
        :class:`igpo_jax.sampling.SamplerConfig`)."""
        return EstimatorConfig(self.estimator, sampler.gen_length, sampler.block_length,
                               sampler.steps, self.trajectory_passes, self.mc_samples,
                               self.coupled)

    @property
    def rows(self) -> int:
        """Completions per rollout step: prompts_per_step x group_size."""
        return self.prompts_per_step * self.group_size

    def __post_init__(self):
        from igpo_jax.rl.augment import algorithms
        check(self.algo in algorithms(), "rl.algo", self.algo,
              f"expected one of {algorithms()}")
        check(self.group_size >= 2, "rl.group_size", self.group_size,
              "group methods need at least 2 completions per prompt")
        check(self.num_steps >= 0, "rl.num_steps", self.num_steps, "must be >= 0")
        check(self.prompts_per_step >= 1, "rl.prompts_per_step", self.prompts_per_step,
              "must be >= 1")
        check(self.num_iterations >= 1, "rl.num_iterations", self.num_iterations,
              "must be >= 1")
        n = self.rows
        check(self.micro_batch_size > 0 and n % self.micro_batch_size == 0,
              "rl.micro_batch_size", self.micro_batch_size,
              f"must divide prompts_per_step x group_size = {n}")
        for key, names in (("ratio", RATIOS), ("aggregation", AGGREGATIONS),
                           ("ratio_positions", RATIO_POSITIONS), ("loss_norm", LOSS_NORMS),
                           ("advantage", tuple(ADVANTAGE_ESTIMATORS)),
                           ("loss", tuple(POLICY_LOSSES)), ("estimator", tuple(ESTIMATORS))):
            check(getattr(self, key) in names, f"rl.{key}", getattr(self, key),
                  f"expected one of {names}")
        check(self.trajectory_passes >= 0, "rl.trajectory_passes", self.trajectory_passes,
              "must be >= 0 (0 = one forward pass per sampler step)")
        check(self.mc_samples >= 1, "rl.mc_samples", self.mc_samples, "must be >= 1")
        check(not self.coupled or self.estimator in ("block", "elbo"), "rl.coupled",
              self.coupled, f"complementary masks need rl.estimator=block or elbo, not "
              f"{self.estimator!r}")
        check(self.loss != "spg" or self.estimator in ("block", "elbo"), "rl.loss",
              self.loss, f"SPG's bounds need rl.estimator=block or elbo, not "
              f"{self.estimator!r}")
        check(self.loss not in RATIO_FREE or self.beta == 0, "rl.beta", self.beta,
              f"rl.loss={self.loss!r} has no KL term: set rl.beta=0")
        check(self.eubo_beta > 0 and 0 <= self.eubo_mix <= 1, "rl.eubo_beta/eubo_mix",
              (self.eubo_beta, self.eubo_mix), "need eubo_beta > 0 and eubo_mix in [0, 1]")
        check(0 <= self.p_mask_prompt < 1, "rl.p_mask_prompt", self.p_mask_prompt,
              "must be in [0, 1)")
        check(self.beta >= 0, "rl.beta", self.beta, "must be >= 0")
        check(0 <= self.eps_low < 1 and self.eps_high >= 0, "rl.eps_low/eps_high",
              (self.eps_low, self.eps_high), "need 0 <= eps_low < 1 and eps_high >= 0")
