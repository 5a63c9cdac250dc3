"""Log-probability estimators: what the policy loss reads as ``log pi(token)``.

A masked diffusion LM has no exact per-token likelihood of a completion; every RL
objective reads an estimate. Each estimator here maps (parameters, prompt,
completion, what the sampler recorded, per-row keys) to per-token log-probs
``[B, C]`` and predictive entropies (IGPO's entropy filter reads the old policy's
at hint tokens). The old, new and reference log-probs of one inner iteration get
the same keys, so they see exactly the same masks.

- ``one_step`` (d1): every completion token masked, one forward pass; the prompt
  optionally masked at ``rl.p_mask_prompt`` (d1: 0.15, IGPO: 0). Token k is scored
  with every other completion token hidden, although the sampler wrote it with the
  tokens of earlier steps visible.
- ``trajectory`` (TraceRL): each token scored under the context the sampler had when
  it wrote it: the prompt, the hints and every token written at an earlier sampler
  step (``Sample.order``). ``rl.trajectory_passes`` = 0 is exact (one forward pass
  per sampler step). k > 0 groups the steps of each block into at most k runs of
  consecutive steps, one forward pass each: a group's tokens are scored together,
  with the tokens of earlier groups visible and the rest of their own group hidden
  (TraceRL's shrinkage; k = 1 scores a block with earlier blocks visible). Hint
  tokens are context in every pass; they (and early-stop fill, which no step wrote)
  are scored by one extra pass with the whole completion masked, the one-step
  context, which also gives the entropies the IGPO filter ranks hints by. A group in
  which no row of the micro-batch wrote a token (the threshold sampler ends blocks
  early) is skipped at run time, so the exact estimator costs the sampler's own
  number of model calls, plus one.
- ``block`` (SPG): for each generation block b, blocks before it clean, blocks after
  it masked (hints stay visible everywhere outside block b, as the sampler saw
  them), block b masked token-wise at a ratio t ~ U[eps, 1] drawn per row, sample
  and block; a token's value is ``1[masked] log p / t`` (the masked-diffusion ELBO
  of the block given its prefix), averaged over ``rl.mc_samples`` draws. Summed over
  tokens it is a lower bound on the sequence log-likelihood under block decoding.
- ``elbo`` (LLaDA's likelihood): the whole completion masked token-wise at ratio
  t ~ U[eps, 1]; ``1[masked] log p / t`` averaged over ``rl.mc_samples`` draws.

``rl.coupled`` (coupled-GRPO, for ``block`` and ``elbo``): each draw is a pair of
complementary masks (the tokens masked at ratio t, then exactly the others at ratio
1 - t), so every token is scored once per pair; each pass is weighted by the inverse
of its own ratio. Entropies are averaged over the passes that masked the token (0 if
none did: such a token has no log-prob estimate either, value 0).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from igpo_jax.models import transformer
from igpo_jax.rl import logprobs
from igpo_jax.sampler_config import BlockGeometry

# the estimators by name (``rl.estimator``); each maps (params, model config, settings,
# prompt ids / attention, d1's prompt mask or None, completion ids, the sampler's
# order, the hint mask, per-row keys) to ``(logp [B, C], entropy [B, C] | None)``;
# filled in below, after the functions
ESTIMATORS: dict = {}


@dataclasses.dataclass(frozen=True)
class EstimatorConfig(BlockGeometry):
    """Static settings of an estimator (hashable: part of compiled programs)."""

    name: str = "one_step"
    gen_length: int = 64
    block_length: int = 16
    steps: int = 32  # sampler steps in all (the trajectory's granularity)
    trajectory_passes: int = 0  # per block; 0 = exact (one pass per sampler step)
    mc_samples: int = 1  # block / elbo: mask draws averaged
    coupled: bool = False  # block / elbo: complementary mask pairs
    eps: float = 1e-3  # block / elbo: smallest masking ratio

    def __post_init__(self):
        if self.name not in ESTIMATORS:
            raise ValueError(f"rl.estimator={self.name!r}; expected one of {tuple(ESTIMATORS)}")
        if self.gen_length % self.block_length or self.steps % self.num_blocks:
            raise ValueError(f"estimator geometry gen_length={self.gen_length}, block_length="
                             f"{self.block_length}, steps={self.steps} does not divide")
        if self.trajectory_passes < 0 or self.mc_samples < 1:
            raise ValueError(f"rl.trajectory_passes={self.trajectory_passes} must be >= 0 and "
                             f"rl.mc_samples={self.mc_samples} >= 1")

    @property
    def passes_per_block(self) -> int:
        """Trajectory groups per block."""
        spb = self.steps_per_block
        return spb if self.trajectory_passes == 0 else min(self.trajectory_passes, spb)

    @property
    def forward_passes(self) -> int:
        """Model forward passes per call (per row); a registered estimator function may
        say its own with a ``forward_passes(est)`` attribute."""
        own = getattr(ESTIMATORS[self.name], "forward_passes", None)
        if own is not None:
            return own(self)
        if self.name == "one_step":
            return 1
        if self.name == "trajectory":
            return self.num_blocks * self.passes_per_block + 1
        pair = 2 if self.coupled else 1
        return self.mc_samples * pair * (self.num_blocks if self.name == "block" else 1)


def trajectory_groups(order: jax.Array, est: EstimatorConfig) -> jax.Array:
    """int32 ``[B, C]``: the forward pass (group) that scores each position, from the
    sampler step that wrote it; -1 where no step wrote it (hints, early-stop fill)."""
    spb, k = est.steps_per_block, est.passes_per_block
    blk = order // spb
    gid = blk * k + ((order - blk * spb) * k) // spb
    return jnp.where(order >= 0, gid, -1).astype(jnp.int32)


def _fold(rng, i):
    return None if rng is None else jax.random.fold_in(rng, i)


def _trajectory(params, cfg, est, prompt_ids, prompt_attn, masked_prompt, completion_ids,
                order, hint_mask, keys, dropout_rng):
    gid = trajectory_groups(order, est)
    logp, ent = logprobs.masked_logprobs(params, cfg, prompt_ids, prompt_attn, completion_ids,
                                         None, masked_prompt, _fold(dropout_rng, 0))
    n_groups = est.num_blocks * est.passes_per_block

    def one(carry, g):
        sel = gid == g

        def score(carry):
            logp, ent = carry
            visible = hint_mask | ((gid >= 0) & (gid < g))
            lp, en = logprobs.masked_logprobs(params, cfg, prompt_ids, prompt_attn,
                                              completion_ids, ~visible, masked_prompt,
                                              _fold(dropout_rng, g + 1))
            return jnp.where(sel, lp, logp), jnp.where(sel, en, ent)
        # a step no row wrote a token at (the threshold sampler ends blocks early) costs
        # no forward pass; each pass is recomputed in the backward pass (remat), so the
        # gradient holds one pass's activations, not one per sampler step
        return jax.lax.cond(jnp.any(sel), jax.checkpoint(score), lambda carry: carry,
                            carry), None

    (logp, ent), _ = jax.lax.scan(one, (logp, ent), jnp.arange(n_groups))
    return logp, ent


def _draws(keys, est: EstimatorConfig, c: int, n_blocks: int):
    """Per row: masking ratios ``[B, S, n_blocks]`` in [eps, 1] and token uniforms
    ``[B, S, C]`` for S = mc_samples draws (the same for old, new and reference)."""
    def row(k):
        k_t, k_u = jax.random.split(k)
        t = jax.random.uniform(k_t, (est.mc_samples, n_blocks))
        return (1.0 - est.eps) * t + est.eps, jax.random.uniform(k_u, (est.mc_samples, c))
    return jax.vmap(row)(keys)


def _random_masks(params, cfg, est, prompt_ids, prompt_attn, masked_prompt, completion_ids,
                  order, hint_mask, keys, dropout_rng, upper_beta: float = 1.0):
    """``block`` (one region per generation block) and ``elbo`` (the whole completion as
    one region): token-wise masks at a random ratio in the current region, 1/t weights.
    Returns (lower, entropy, upper): the 1/t-weighted log-prob (the ELBO's terms) and
    SPG's upper-bound terms ``log(mean over draws of 1[masked] p^beta / t) / beta``."""
    b, c = completion_ids.shape
    if est.name == "block":
        n_reg, width = est.num_blocks, est.block_length
    else:
        n_reg, width = 1, c
    region = jnp.arange(c) // width  # [C]
    t, u = _draws(keys, est, c, n_reg)  # [B, S, R], [B, S, C]
    pairs = (False, True) if est.coupled else (False,)
    passes = [(s, r, comp) for s in range(est.mc_samples) for r in range(n_reg)
              for comp in pairs]

    @jax.checkpoint  # one pass's activations in the gradient, not one per pass
    def one(carry, xs):
        val, ent_sum, cnt, up = carry
        s, r, comp = xs
        t_r = jax.lax.dynamic_index_in_dim(jax.lax.dynamic_index_in_dim(t, s, 1, False),
                                           r, 1, False)  # [B]
        u_s = jax.lax.dynamic_index_in_dim(u, s, 1, False)  # [B, C]
        drawn = u_s < t_r[:, None]
        in_reg = (region == r)[None, :]
        masked = in_reg & jnp.where(comp, ~drawn, drawn)
        ratio = jnp.where(comp, 1.0 - t_r, t_r)[:, None]
        later = (region > r)[None, :] & ~hint_mask
        lp, en = logprobs.masked_logprobs(params, cfg, prompt_ids, prompt_attn,
                                          completion_ids, masked | later, masked_prompt,
                                          _fold(dropout_rng, (s * n_reg + r) * 2 + comp))
        w = masked / jnp.maximum(ratio, est.eps)
        return (val + w * lp, ent_sum + masked * en, cnt + masked,
                up + w * jnp.exp(upper_beta * lp)), None

    zeros = jnp.zeros((b, c), jnp.float32)
    idx = tuple(jnp.asarray([p[i] for p in passes], jnp.int32) for i in range(3))
    (val, ent_sum, cnt, up), _ = jax.lax.scan(
        one, (zeros, zeros, zeros, zeros), (idx[0], idx[1], idx[2].astype(bool)))
    upper = jnp.where(up > 0, jnp.log(jnp.where(up > 0, up, 1.0) / est.mc_samples), 0.0)
    return (val / est.mc_samples, jnp.where(cnt > 0, ent_sum / jnp.maximum(cnt, 1.0), 0.0),
            upper / upper_beta)


def _one_step(params, cfg, est, prompt_ids, prompt_attn, masked_prompt, completion_ids, order,
              hint_mask, keys, *, with_entropy=True, dropout_rng=None):
    return logprobs.completion_logprobs(params, cfg, prompt_ids, prompt_attn, completion_ids,
                                        masked_prompt, with_entropy=with_entropy,
                                        dropout_rng=dropout_rng)


def _ordered(fn):
    """An estimator from a pass-building function that also returns its entropies."""
    def estimator(params, cfg, est, prompt_ids, prompt_attn, masked_prompt, completion_ids,
                  order, hint_mask, keys, *, with_entropy=True, dropout_rng=None):
        logp, ent = fn(params, cfg, est, prompt_ids, prompt_attn, masked_prompt,
                       completion_ids, order, hint_mask, keys, dropout_rng)[:2]
        return logp, (ent if with_entropy else None)
    return estimator


ESTIMATORS.update({"one_step": _one_step, "trajectory": _ordered(_trajectory),
                   "block": _ordered(_random_masks), "elbo": _ordered(_random_masks)})


def estimate(params, cfg: transformer.TransformerConfig, est: EstimatorConfig, prompt_ids, prompt_attn,
             masked_prompt, completion_ids, order, hint_mask, keys, *, with_entropy=True,
             dropout_rng=None):
    """``(logp [B, C], entropy [B, C] | None)`` of the completion under estimator ``est``
    (:data:`ESTIMATORS`).

    ``order`` int32 ``[B, C]``: the sampler step that wrote each position (-1: none);
    ``hint_mask`` bool ``[B, C]``: hint tokens; ``keys``: one PRNG key per row (the
    random masks of ``block`` / ``elbo``); ``masked_prompt``: d1's prompt mask (or None).
    """
    return ESTIMATORS[est.name](params, cfg, est, prompt_ids, prompt_attn, masked_prompt,
                                completion_ids, order, hint_mask, keys,
                                with_entropy=with_entropy, dropout_rng=dropout_rng)


def bounds(params, cfg: transformer.TransformerConfig, est: EstimatorConfig, prompt_ids, prompt_attn,
           masked_prompt, completion_ids, order, hint_mask, keys, *, beta: float,
           dropout_rng=None):
    """SPG's two per-token estimates from the same masks: ``(lower [B, C], upper [B, C])``,
    the ELBO terms of :func:`estimate` and the upper-bound terms
    ``(1/beta) log((1/S) sum_s 1[masked_s] p_s^beta / t_s)`` (0 where no draw masked the
    token). Needs a random-mask estimator (``block`` or ``elbo``)."""
    if est.name not in ("block", "elbo"):
        raise ValueError(f"SPG's bounds need rl.estimator=block or elbo, not {est.name!r}")
    lower, _, upper = _random_masks(params, cfg, est, prompt_ids, prompt_attn, masked_prompt,
                                    completion_ids, order, hint_mask, keys, dropout_rng, beta)
    return lower, upper
