"""One-step log-probability estimators for masked diffusion LMs (docs/ALGORITHM.md section 4).

Every completion token is masked; each real prompt token is masked with
probability ``p_mask_prompt`` (0.15 in d1, 0 in the IGPO reference run). One
forward pass then gives, at every completion position, ``log p(token)`` and the
predictive entropy. The prompt mask comes from a key, so the new, old and
reference log-probs of one inner iteration share it exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from igpo_jax.models import family, transformer


def prompt_mask(key: jax.Array, prompt_attn: jax.Array, p_mask_prompt: float) -> jax.Array:
    """bool ``[B, P]``: which real prompt tokens to mask (padding is never masked)."""
    if p_mask_prompt <= 0:
        return jnp.zeros(prompt_attn.shape, bool)
    return (jax.random.uniform(key, prompt_attn.shape) < p_mask_prompt) & prompt_attn


def completion_logprobs(params, cfg: transformer.TransformerConfig, prompt_ids: jax.Array,
                        prompt_attn: jax.Array, completion_ids: jax.Array,
                        masked_prompt: jax.Array | None = None,
                        with_entropy: bool = True, dropout_rng: jax.Array | None = None
                        ) -> tuple[jax.Array, jax.Array | None]:
    """Per-token log-probs (and entropies) of a completion under the masked estimator
    (every completion token masked): :func:`masked_logprobs` with nothing visible.

    Args:
      prompt_ids, prompt_attn: int32 / bool ``[B, P]`` (left-padded prompts).
      completion_ids: int32 ``[B, C]``.
      masked_prompt: bool ``[B, P]`` prompt tokens to replace by the mask token
        (from :func:`prompt_mask`; None = no prompt masking).
    Returns:
      ``logp [B, C]`` float32 and ``entropy [B, C]`` float32 (or None).
    """
    return masked_logprobs(params, cfg, prompt_ids, prompt_attn, completion_ids, None,
                           masked_prompt, dropout_rng, with_entropy)


def masked_logprobs(params, cfg: transformer.TransformerConfig, prompt_ids, prompt_attn, completion_ids,
                    hide, masked_prompt=None, dropout_rng=None, with_entropy: bool = True):
    """Per-token log-probs and entropies ``[B, C]`` of the completion tokens from one
    forward pass in which the completion positions ``hide`` (bool ``[B, C]``; None: all)
    and the prompt positions ``masked_prompt`` are replaced by the mask token. Only the
    hidden positions' values are predictions (a visible token's are not)."""
    p = prompt_ids.shape[1]
    if masked_prompt is not None:
        prompt_ids = jnp.where(masked_prompt, cfg.mask_token_id, prompt_ids)
    comp = (jnp.full(completion_ids.shape, cfg.mask_token_id, jnp.int32) if hide is None
            else jnp.where(hide, cfg.mask_token_id, completion_ids).astype(jnp.int32))
    x = jnp.concatenate([prompt_ids, comp], axis=1)
    attn = jnp.concatenate([prompt_attn, jnp.ones(completion_ids.shape, bool)], axis=1)
    fam = family.of(cfg)
    hidden = fam.hidden_states(params, cfg, x, attn, dropout_rng=dropout_rng)
    hidden = family.predicting(cfg, hidden, p, completion_ids.shape[1])
    logits = fam.logits_from_hidden(params, cfg, hidden)  # [B, C, V] float32
    logz = jax.nn.logsumexp(logits, axis=-1)
    tok = jnp.take_along_axis(logits, completion_ids[..., None], axis=-1)[..., 0]
    logp = tok - logz
    if not with_entropy:
        return logp, None
    probs = jnp.exp(logits - logz[..., None])
    entropy = logz - jnp.sum(probs * logits, axis=-1)
    return logp, entropy


def completion_mask(completion_ids: jax.Array, eos_id: int, include_padding: bool = False
                    ) -> jax.Array:
    """bool ``[B, C]``: tokens up to and including the first EOS (or all positions)."""
    if include_padding:
        return jnp.ones(completion_ids.shape, bool)
    is_eos = completion_ids == eos_id
    before_first = jnp.cumsum(is_eos, axis=1) - is_eos == 0
    return before_first
