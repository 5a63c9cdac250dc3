"""What one denoising step unmasks (igpo_jax/sampling.py runs the steps): how many tokens
(LLaDA's even schedule, Dream's schedule, the confidence threshold), which ones (the
highest confidences) and from which distribution (the nucleus filter)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def num_transfer_tokens(num_masked: jax.Array, steps: int) -> jax.Array:
    """Tokens to unmask at each step of a block: ``[B]`` -> ``[B, steps]``.

    base = n // steps, and the first n % steps steps take one more.
    """
    base = num_masked[:, None] // steps
    rem = num_masked[:, None] % steps
    return base + (jnp.arange(steps)[None, :] < rem).astype(base.dtype)


DREAM_EPS = 1e-3  # the last timestep of Dream's schedule (generation_utils.py)


def dream_transfer_tokens(num_masked: jax.Array, steps: int, eps: float = DREAM_EPS
                          ) -> jax.Array:
    """Dream's tokens to unmask per step: ``[B]`` -> ``[B, steps]``.

    With ``t = linspace(1, eps, steps + 1)`` and ``m`` the tokens still masked, step ``i``
    unmasks ``floor(m * (1 - t[i+1] / t[i]))`` (float32, as Dream computes it on the
    device), and the last step every token left. At one step per token the first step
    unmasks none (``L * (1 - eps) / L < 1``) and the last one catches up.
    """
    t = jnp.asarray(np.linspace(1.0, eps, steps + 1), jnp.float32)

    def body(m, ts):
        t_i, s_i, last = ts
        k = jnp.where(last, m, jnp.floor(m.astype(jnp.float32) * (1 - s_i / t_i)).astype(m.dtype))
        return m - k, k

    _, ks = jax.lax.scan(body, num_masked, (t[:-1], t[1:], jnp.arange(steps) == steps - 1))
    return ks.T


def top_p_logits(logits: jax.Array, top_p: float) -> jax.Array:
    """Logits outside the nucleus set to ``-inf``: sorted by logit, a token is dropped
    when the mass before it already exceeds ``top_p`` (the most likely token always
    stays; Dream's ``top_p_logits``). Tokens tied with the last kept logit stay too."""
    order = jnp.sort(logits, axis=-1)[..., ::-1]
    mass = jnp.cumsum(jax.nn.softmax(order, axis=-1), axis=-1)
    mass_before = jnp.concatenate([jnp.zeros_like(mass[..., :1]), mass[..., :-1]], axis=-1)
    kept = mass_before <= top_p
    cutoff = jnp.min(jnp.where(kept, order, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits >= cutoff, logits, -jnp.inf)


def threshold_counts(confidence: jax.Array, masked: jax.Array, min_count: jax.Array,
                     threshold: float) -> jax.Array:
    """Tokens to unmask this step under ``unmask="threshold"``: ``[B]``.

    Every masked position whose confidence exceeds ``threshold`` and at least
    ``max(1, min_count)`` (the floor that lets the block finish within the fixed
    step budget), never more than the masked count.
    """
    remaining = jnp.sum(masked, axis=1)
    above = jnp.sum(masked & (confidence > threshold), axis=1)
    return jnp.minimum(jnp.maximum(above, jnp.maximum(min_count, 1)), remaining)


def select_top(confidence: jax.Array, k: jax.Array) -> jax.Array:
    """Bool mask of the ``k[b]`` highest entries of each row of ``confidence [B, N]``.

    Ties go to the lower index (stable sort); ``-inf`` entries are never chosen
    as long as ``k`` does not exceed the count of finite ones.
    """
    order = jnp.argsort(-confidence, axis=-1, stable=True)
    rank = jnp.argsort(order, axis=-1, stable=True)
    return rank < k[:, None]
