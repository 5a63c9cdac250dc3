"""LLaDA's numerics primitives (docs/ALGORITHM.md section 1): RMSNorm and NeoX rotary in float32,
bidirectional GQA attention with float32 scores and softmax."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """LLaDA RMSNorm: normalise in float32, cast back, then scale by the weight."""
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return weight.astype(x.dtype) * x32.astype(x.dtype)


def rotary_tables(seq_len: int, head_dim: int, theta: float,
                  positions: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """sin, cos of shape [L, head_dim] at absolute positions 0..L-1, or [B, L, head_dim]
    at per-row ``positions`` [B, L] (NeoX half layout, float32)."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    pos = jnp.arange(seq_len, dtype=jnp.float32) if positions is None else \
        positions.astype(jnp.float32)
    freqs = pos[..., None] * inv_freq
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.sin(emb), jnp.cos(emb)


def mask_positions(attention_mask: jax.Array) -> jax.Array:
    """Dream's positions of a padded row: the count of real tokens before each real
    token (so a left-padded prompt starts at 0), and 1 at padding."""
    real = attention_mask.astype(bool)
    return jnp.where(real, jnp.cumsum(real.astype(jnp.int32), axis=-1) - 1, 1)


def apply_rotary(x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
    """x [B, L, H, D]; sin / cos [L, D] or per row [B, L, D]; NeoX rotate_half =
    cat(-x2, x1); computed in float32."""
    x32 = x.astype(jnp.float32)
    x1, x2 = jnp.split(x32, 2, axis=-1)
    rotated = jnp.concatenate([-x2, x1], axis=-1)
    if cos.ndim == 2:
        cos, sin = cos[None], sin[None]
    out = x32 * cos[:, :, None, :] + rotated * sin[:, :, None, :]
    return out.astype(x.dtype)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array | None) -> jax.Array:
    """Bidirectional GQA attention.

    q [B, L, H, D], k/v [B, L, K, D] with H = K * G, bias [B, L_k] additive or None.
    Returns [B, L, H, D]. Scores and softmax in float32.
    """
    b, lq, h, d = q.shape
    kh = k.shape[2]
    g = h // kh
    # Head-major with the query groups folded into the query length: both matmuls
    # are plain batched GEMMs over B * K (measured fastest on CPU, see benchmarks/).
    qh = q.reshape(b, lq, kh, g, d).transpose(0, 2, 3, 1, 4).reshape(b, kh, g * lq, d)
    kt = k.transpose(0, 2, 1, 3)
    vt = v.transpose(0, 2, 1, 3)
    scores = jnp.einsum("bkqd,bkjd->bkqj", qh, kt,
                        preferred_element_type=jnp.float32) * (d ** -0.5)
    if bias is not None:
        scores = scores + bias[:, None, None, :]
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkqj,bkjd->bkqd", probs, vt)
    return out.reshape(b, kh, g, lq, d).transpose(0, 3, 1, 2, 4).reshape(b, lq, h, d)
