"""Cached (prefix / dual) and threshold decoding against recompute-everything references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import sampling, unmasking
from igpo_jax import sharding as shd
from igpo_jax.models import hf_io, transformer
from tests import reference as ref

MASK, EOS = 63, 62
FAST = [("prefix", "fixed"), ("dual", "fixed"), ("none", "threshold"), ("prefix", "threshold"),
        ("dual", "threshold")]


@pytest.fixture(scope="module")
def sharp_model(tmp_path_factory):
    """Larger weights than default: confident, position-dependent predictions, so the
    stale cache changes tokens and the threshold actually bites."""
    path = tmp_path_factory.mktemp("sharp")
    c = ref.hf_config(vocab=64, d=32, layers=2, heads=4, kv_heads=2, mlp=64)
    t = ref.random_hf_weights(c, seed=3, scale=0.8)
    ref.write_hf_checkpoint(path, c, t)
    return c, t, hf_io.load_hf_checkpoint(path)


@pytest.fixture(scope="module")
def one_layer(tmp_path_factory):
    return ref.random_model(tmp_path_factory.mktemp("one"), seed=4, layers=1)


def _prompt(seed, b=3, p=5):
    return np.random.default_rng(seed).integers(0, 60, (b, p)).astype(np.int32)


def test_window_forward_with_fresh_cache_equals_full_forward(sharp_model):
    _, _, model = sharp_model
    cfg, params = model.config, model.param_dict()
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 64, (2, 20)), jnp.int32)
    attn = jnp.ones((2, 20), bool).at[1, :3].set(False)
    full, (keys, values) = transformer.hidden_states_and_kv(params, cfg, ids, attn)
    # float32, two differently fused programs, each within the float32 bound of the
    # exact result: they agree within twice that bound
    c, _, _ = sharp_model
    tol = 2 * ref.f32_atol(c, 20, full)
    np.testing.assert_allclose(full, transformer.hidden_states(params, cfg, ids, attn), atol=tol,
                               rtol=0)
    assert keys.shape == (2, 2, 20, 2, 8) and values.shape == keys.shape
    for start, width in ((4, 8), (12, 8), (7, 13)):
        win = transformer.hidden_states_window(params, cfg, ids[:, start:start + width], start,
                                         (keys, values), attn)
        np.testing.assert_allclose(win, full[:, start:start + width], atol=tol, rtol=0)


def test_cached_keys_and_values_equal_independent_recomputation(tmp_path):
    # default-scale weights: the float64 reference and float32 agree to 1e-5 (the sharp
    # model amplifies float32 rounding through its near-one-hot attention)
    c, t, model = ref.random_model(tmp_path, seed=5, layers=3)
    ids = np.random.default_rng(1).integers(0, 64, (2, 12))
    record = []
    ref.numpy_forward(t, c, ids, record=record)
    _, (keys, values) = transformer.hidden_states_and_kv(model.param_dict(), model.config,
                                                   jnp.asarray(ids, jnp.int32))
    for layer, (k, v) in enumerate(record):
        np.testing.assert_allclose(keys[layer], k, atol=ref.f32_atol(c, 12, k), rtol=0)
        np.testing.assert_allclose(values[layer], v, atol=ref.f32_atol(c, 12, v), rtol=0)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_cached_greedy_matches_recompute_everything_reference(sharp_model, cache):
    c, t, model = sharp_model
    prompt = _prompt(2)
    exact = np.asarray(sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=24, block_length=8, steps=12, temperature=0.0), mask_id=MASK).tokens)
    want, _ = ref.numpy_generate(t, c, prompt, 24, 8, 12, MASK, cache=cache)
    got = np.asarray(sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=24, block_length=8, steps=12, temperature=0.0, cache=cache), mask_id=MASK).tokens)
    np.testing.assert_array_equal(got, want)
    assert (got != exact).any(), "the stale cache should change some tokens of this model"


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_threshold_greedy_matches_reference_and_counts(sharp_model, cache):
    c, t, model = sharp_model
    prompt = _prompt(3)
    rng = np.random.default_rng(3)
    hint_mask = rng.random((3, 24)) < 0.2
    hint_ids = rng.integers(0, 60, (3, 24)).astype(np.int32)
    want, log = ref.numpy_generate(t, c, prompt, 24, 8, 12, MASK, hint_ids, hint_mask,
                                   cache=cache, threshold=0.5)
    out = sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=24, block_length=8, steps=12, temperature=0.0, cache=cache, unmask="threshold", threshold=0.5), mask_id=MASK, hint_ids=hint_ids, hint_mask=hint_mask)
    got, order = out.tokens, out.order
    np.testing.assert_array_equal(np.asarray(got), want)
    # the reference's steps run until every row's block is done; some finish early
    assert out.forward_passes == len(log) < 12
    assert out.mode == f"cache={cache},unmask=threshold0.5"
    order = np.asarray(order)
    np.testing.assert_array_equal(order[hint_mask], -1)
    for blk in range(3):
        for r in range(3):
            in_blk = order[r, blk * 8:(blk + 1) * 8]
            free = int((~hint_mask[r, blk * 8:(blk + 1) * 8]).sum())
            steps = in_blk[in_blk >= 0] - blk * 4
            assert len(steps) == free and steps.max(initial=0) < 4  # within the budget
            left = free
            for i in range(4):  # at least one per step while masks remain, never more
                n = int((steps == i).sum())
                assert (n >= 1 if left else n == 0) and n <= left
                left -= n


def test_threshold_counts_bounds():
    rng = np.random.default_rng(0)
    for _ in range(50):
        conf = jnp.asarray(rng.random((4, 8)), jnp.float32)
        masked = jnp.asarray(rng.random((4, 8)) < 0.5)
        floor = jnp.asarray(rng.integers(-3, 6, 4))
        thr = float(rng.random())
        k = np.asarray(unmasking.threshold_counts(conf, masked, floor, thr))
        remaining = np.asarray(masked).sum(1)
        above = (np.asarray(masked) & (np.asarray(conf) > thr)).sum(1)
        want = np.minimum(np.maximum(above, np.maximum(np.asarray(floor), 1)), remaining)
        np.testing.assert_array_equal(k, want)
        assert ((k >= 1) | (remaining == 0)).all() and (k <= remaining).all()


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_threshold_one_is_the_fixed_schedule(sharp_model, cache):
    _, _, model = sharp_model
    sc = sampling.SamplerConfig(gen_length=24, block_length=8, steps=12, temperature=0.7,
                                cache=cache)
    kw = dict(mask_id=MASK, rng=jax.random.key(2))
    fixed = np.asarray(sampling.generate(model, _prompt(4), sc, **kw).tokens)
    thr = np.asarray(sampling.generate(model, _prompt(4), sc.replace(unmask="threshold",
                                                                     threshold=1.0),
                                       **kw).tokens)
    np.testing.assert_array_equal(thr, fixed)


@pytest.mark.parametrize("cache,unmask", [("prefix", "fixed"), ("dual", "fixed")])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_one_layer_cache_is_exact(one_layer, cache, unmask, temperature):
    # with one layer the cached keys/values of positions that do not change (prompt,
    # finished blocks, masked suffix) are exact, so every mode equals the exact sampler
    _, _, model = one_layer
    sc = sampling.SamplerConfig(gen_length=24, block_length=8, steps=12,
                                temperature=temperature, cfg_scale=1.5)
    kw = dict(mask_id=MASK, rng=jax.random.key(7))
    a = sampling.generate(model, _prompt(5), sc, **kw)
    b = sampling.generate(model, _prompt(5), sc.replace(cache=cache, unmask=unmask), **kw)
    np.testing.assert_array_equal(np.asarray(a.tokens), np.asarray(b.tokens))
    np.testing.assert_array_equal(np.asarray(a.order), np.asarray(b.order))


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_one_step_per_block_cache_is_exact(sharp_model, cache):
    # every step is a refresh step: nothing is ever stale
    _, _, model = sharp_model
    a = np.asarray(sampling.generate(model, _prompt(6), sampling.SamplerConfig(gen_length=24, block_length=8, steps=3, temperature=0.0), mask_id=MASK).tokens)
    b = np.asarray(sampling.generate(model, _prompt(6), sampling.SamplerConfig(gen_length=24, block_length=8, steps=3, temperature=0.0, cache=cache), mask_id=MASK).tokens)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cache,unmask", FAST)
def test_fast_modes_keep_hints_and_stop_early(sharp_model, cache, unmask):
    _, _, model = sharp_model
    rng = np.random.default_rng(8)
    hint_mask = rng.random((4, 32)) < 0.3
    hint_mask[:, :8] = True
    hint_ids = rng.integers(0, 60, (4, 32)).astype(np.int32)
    sc = sampling.SamplerConfig(gen_length=32, block_length=8, steps=16, temperature=1.0,
                                cache=cache, unmask=unmask, threshold=0.6)
    kw = dict(mask_id=MASK, rng=jax.random.key(1), hint_ids=hint_ids, hint_mask=hint_mask)
    out = np.asarray(sampling.generate(model, _prompt(8, 4), sc, **kw).tokens)
    np.testing.assert_array_equal(out[:, 5:][hint_mask], hint_ids[hint_mask])
    assert not (out == MASK).any()
    # early stop: the first block is hinted all EOS -> the rest is EOS except hints
    eos_ids = np.where(np.arange(32) < 8, EOS, hint_ids)
    res = sampling.generate(model, _prompt(8, 4), sc.replace(early_stop=True), eos_id=EOS,
                            **{**kw, "hint_ids": eos_ids.astype(np.int32)})
    stats = {"forward_passes": res.forward_passes}
    out = np.asarray(res.tokens)[:, 5:]
    np.testing.assert_array_equal(out[hint_mask], eos_ids[hint_mask])
    assert (out[~hint_mask] == EOS).all()
    assert stats["forward_passes"] <= 4


def test_bad_fast_settings():
    with pytest.raises(ValueError, match="cache='kv'"):
        sampling.SamplerConfig(cache="kv")
    with pytest.raises(ValueError, match="unmask="):
        sampling.SamplerConfig(unmask="all")
    with pytest.raises(ValueError, match="it needs remasking=low_confidence"):
        sampling.SamplerConfig(unmask="threshold", remasking="random")
    with pytest.raises(ValueError, match="threshold=1.5"):
        sampling.SamplerConfig(threshold=1.5)
    assert sampling.SamplerConfig().mode == "exact"


@pytest.mark.parametrize("cache,unmask", [("prefix", "threshold"), ("dual", "fixed")])
def test_fast_modes_sharded_equal_single_device(sharp_model, cache, unmask):
    _, _, model = sharp_model
    mesh = shd.make_mesh(data=2, fsdp=2, tensor=2)
    sc = sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.8,
                                cache=cache, unmask=unmask, threshold=0.5)
    kw = dict(mask_id=MASK, rng=jax.random.key(3))
    single = np.asarray(sampling.generate(model, _prompt(9, 8), sc, **kw).tokens)
    sharded = np.asarray(sampling.generate(model, _prompt(9, 8), sc, mesh=mesh, **kw).tokens)
    np.testing.assert_array_equal(single, sharded)
