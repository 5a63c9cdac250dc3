"""The optimiser (igpo_jax/optim.py): AdamW moments in float32 for bfloat16 parameters
(optim.moments_dtype), non-finite gradients skipped then stopping the run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from igpo_jax import optim

CFG = dict(lr=1e-3, warmup_steps=0, schedule="constant", b1=0.9, b2=0.99, weight_decay=0.1,
           grad_clip=1.0)


def _steps(tx, params, grads_seq):
    state = tx.init(params)
    for g in grads_seq:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_float32_moments_for_bfloat16_params_equal_a_float32_adamw_then_cast():
    rng = np.random.default_rng(0)
    p32 = {"w": jnp.asarray(rng.standard_normal((64, 8)), jnp.float32)}
    p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), p32)
    grads = [{"w": jnp.asarray(rng.standard_normal((64, 8)) * 0.1, jnp.bfloat16)}
             for _ in range(3)]
    tx, _ = optim.make_optimizer(dict(CFG, moments_dtype="float32"), 10)
    params, state = _steps(tx, p16, grads)
    moments = [x for x in jax.tree.leaves(state) if getattr(x, "shape", ()) == (64, 8)]
    assert len(moments) == 2 and all(m.dtype == jnp.float32 for m in moments)
    assert params["w"].dtype == jnp.bfloat16
    # independent: plain optax AdamW on float32 copies, one step at a time, each new
    # parameter rounded to bfloat16 (what the bf16 model holds) before the next step
    ref = optax.chain(optax.clip_by_global_norm(1.0),
                      optax.adamw(1e-3, b1=0.9, b2=0.99, weight_decay=0.1))
    p, st = p16, ref.init(jax.tree.map(lambda x: x.astype(jnp.float32), p16))
    for g in grads:
        g32 = jax.tree.map(lambda x: x.astype(jnp.float32), g)
        u, st = ref.update(g32, st, jax.tree.map(lambda x: x.astype(jnp.float32), p))
        p = jax.tree.map(lambda a, b: (a.astype(jnp.float32) + b).astype(jnp.bfloat16), p, u)
    np.testing.assert_array_equal(np.asarray(params["w"], np.float32),
                                  np.asarray(p["w"], np.float32))


def test_param_dtype_moments_follow_the_params():
    p16 = {"w": jnp.ones((4, 4), jnp.bfloat16)}
    tx, _ = optim.make_optimizer(dict(CFG, moments_dtype="param"), 10)
    _, state = _steps(tx, p16, [{"w": jnp.full((4, 4), 0.5, jnp.bfloat16)}])
    moments = [x for x in jax.tree.leaves(state) if getattr(x, "shape", ()) == (4, 4)]
    assert len(moments) == 2 and all(m.dtype == jnp.bfloat16 for m in moments)
    # the skip-on-non-finite counters stay on top of the float32 wrapper
    tx, _ = optim.make_optimizer(dict(CFG, moments_dtype="float32"), 10)
    st = tx.init(p16)
    _, st = tx.update({"w": jnp.full((4, 4), jnp.nan, jnp.bfloat16)}, st, p16)
    assert optim.nonfinite_counts(st) == (1, 1)


def test_nonfinite_gradients_skip_the_update():
    tx, _ = optim.make_optimizer(dict(lr=0.1, warmup_steps=0, schedule="constant", b1=0.9,
                                      b2=0.99, weight_decay=0.0, grad_clip=1.0), 10)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    bad = {"w": jnp.array([1.0, jnp.nan, 0.0])}
    updates, state = tx.update(bad, state, params)
    assert float(jnp.abs(updates["w"]).max()) == 0.0
    assert optim.nonfinite_counts(state) == (1, 1)
    updates, state = tx.update({"w": jnp.ones(3)}, state, params)
    assert float(jnp.abs(updates["w"]).max()) > 0 and optim.nonfinite_counts(state) == (0, 1)
    with pytest.raises(optim.NonFiniteError, match="in a row"):
        for _ in range(3):
            _, state = tx.update(bad, state, params)
        optim.check_finite(state, 3, "rl", 5, 4)
