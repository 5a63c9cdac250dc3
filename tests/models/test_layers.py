"""The numerics primitives (models/layers.py) against numpy in float64: RMSNorm, NeoX
rotary (absolute and per-row positions), Dream's padded positions, GQA attention.

Tolerances: float32 arithmetic of O(1) values over sums of at most 16 terms, so a
relative error of a few float32 epsilons (1.2e-7) each; 1e-5 leaves a wide margin and
still catches any wrong index, sign or scale."""

import jax.numpy as jnp
import numpy as np

from igpo_jax.models import layers

RNG = np.random.default_rng(0)
TOL = dict(rtol=1e-5, atol=1e-6)


def _np_rotary(x, pos, theta):
    d = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, d, 2) / d)
    ang = pos[..., None] * inv  # [..., L, D/2]
    cos, sin = np.cos(ang), np.sin(ang)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    c, s = cos[..., :, None, :], sin[..., :, None, :]  # broadcast over heads
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def test_rms_norm():
    x, w = RNG.standard_normal((2, 3, 16)), RNG.standard_normal(16)
    want = w * x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)
    got = layers.rms_norm(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), 1e-5)
    np.testing.assert_allclose(np.asarray(got), want, **TOL)


def test_rotary_at_absolute_and_per_row_positions():
    x = RNG.standard_normal((2, 5, 3, 8))
    sin, cos = layers.rotary_tables(5, 8, 10000.0)
    got = layers.apply_rotary(jnp.asarray(x, jnp.float32), sin, cos)
    np.testing.assert_allclose(np.asarray(got), _np_rotary(x, np.arange(5.0), 1e4), **TOL)
    pos = np.array([[0, 1, 2, 3, 4], [1, 1, 0, 1, 2]])
    sin, cos = layers.rotary_tables(5, 8, 500.0, jnp.asarray(pos))
    got = layers.apply_rotary(jnp.asarray(x, jnp.float32), sin, cos)
    want = np.stack([_np_rotary(x[b], pos[b].astype(float), 500.0) for b in range(2)])
    np.testing.assert_allclose(np.asarray(got), want, **TOL)


def test_mask_positions_count_real_tokens():
    mask = jnp.asarray([[0, 0, 1, 1, 1], [1, 0, 1, 1, 0]], bool)
    np.testing.assert_array_equal(np.asarray(layers.mask_positions(mask)),
                                  [[1, 1, 0, 1, 2], [0, 1, 1, 2, 1]])


def test_gqa_attention_with_a_padding_bias():
    b, lq, h, kh, d = 2, 4, 6, 2, 8
    q, k, v = (RNG.standard_normal(s) for s in ((b, lq, h, d), (b, lq, kh, d), (b, lq, kh, d)))
    bias = np.where(np.array([[1, 1, 1, 1], [0, 1, 1, 1]], bool), 0.0, -1e9)
    got = layers.attention(*(jnp.asarray(a, jnp.float32) for a in (q, k, v, bias)))
    want = np.zeros((b, lq, h, d))
    for bi in range(b):
        for hi in range(h):
            kv = hi // (h // kh)  # query heads grouped over the key/value heads
            s = q[bi, :, hi] @ k[bi, :, kv].T / np.sqrt(d) + bias[bi]
            p = np.exp(s - s.max(-1, keepdims=True))
            want[bi, :, hi] = (p / p.sum(-1, keepdims=True)) @ v[bi, :, kv]
    np.testing.assert_allclose(np.asarray(got), want, **TOL)
