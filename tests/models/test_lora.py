"""LoRA adapters: forward against numpy, merge, dropout, sharding, config."""

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import configlib
from igpo_jax import sharding as shd
from igpo_jax.models import lora, transformer
from tests import reference as ref

TARGETS = ("q_proj", "v_proj", "attn_out", "up_proj", "ff_out")


def _with_random_adapters(params, lc, seed):
    """Adapters with non-zero B (a fresh B is zero and would hide every error)."""
    rng = np.random.default_rng(seed)
    out = dict(params)
    for k, v in params.items():
        if lora.is_adapter(k):
            out[k] = jnp.asarray(rng.standard_normal(v.shape).astype(np.float32) * 0.3)
    return out


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    c, tensors, model = ref.random_model(path, seed=5)
    return c, tensors, model


def test_adapter_forward_matches_numpy(hf_model):
    c, tensors, model = hf_model
    lc = lora.LoraConfig(rank=3, alpha=6.0, targets=TARGETS)
    cfg = model.config.replace(lora=lc)
    params = dict(model.param_dict(), **transformer.init_adapters(cfg, 1))
    params = _with_random_adapters(params, lc, 2)
    ids = np.random.default_rng(0).integers(0, c["vocab_size"], (2, 9)).astype(np.int32)
    got = np.asarray(transformer.forward(params, cfg, jnp.asarray(ids)))
    want = ref.numpy_forward(tensors, c, ids, lora={
        t: (np.asarray(params[f"blocks/{t}_lora_a"]), np.asarray(params[f"blocks/{t}_lora_b"]),
            2.0) for t in TARGETS})
    base = ref.numpy_forward(tensors, c, ids)
    assert np.abs(want - base).max() > 0.1  # the adapters matter in this test
    np.testing.assert_allclose(got, want, atol=ref.f32_atol(c, 9, want), rtol=0)


def test_fresh_adapters_change_nothing_and_base_init_is_unchanged():
    cfg = transformer.TransformerConfig.tiny()
    cfg_l = cfg.replace(lora=lora.LoraConfig(rank=4, alpha=8.0))
    p, p_l = transformer.init_params(cfg, 3), transformer.init_params(cfg_l, 3)
    assert set(p_l) - set(p) == {f"blocks/{t}_lora_{ab}" for t in cfg_l.lora.targets
                                 for ab in "ab"}
    for k in p:
        np.testing.assert_array_equal(np.asarray(p[k]), np.asarray(p_l[k]))
    a = np.asarray(p_l["blocks/q_proj_lora_a"])
    assert a.shape == (2, 32, 4) and a.dtype == np.float32 and np.abs(a).max() <= 32 ** -0.5
    assert not np.asarray(p_l["blocks/q_proj_lora_b"]).any()
    ids = jnp.arange(10, dtype=jnp.int32)[None] % 60
    np.testing.assert_array_equal(np.asarray(transformer.forward(p_l, cfg_l, ids)),
                                  np.asarray(transformer.forward(p, cfg, ids)))
    # the reference policy "adapters off" is the base: same arrays, no copy
    assert all(lora.base(p_l)[k] is p_l[k] for k in p)


def test_merge_equals_adapter_forward_and_numpy_weights():
    lc = lora.LoraConfig(rank=2, alpha=3.0, targets=TARGETS)
    cfg = transformer.TransformerConfig.tiny(lora=lc)
    params = _with_random_adapters(transformer.init_params(cfg, 0), lc, 4)
    merged = lora.merge(params, lc)
    assert set(merged) == set(transformer.param_specs(cfg.replace(lora=None)))
    for t in TARGETS:
        a, b = (np.asarray(params[f"blocks/{t}_lora_{x}"], np.float64) for x in "ab")
        want = np.asarray(params["blocks/" + t], np.float64) + 1.5 * np.einsum("nir,nro->nio",
                                                                              a, b)
        np.testing.assert_allclose(np.asarray(merged["blocks/" + t]), want, rtol=1e-6,
                                   atol=1e-6)
    untouched = set(merged) - {"blocks/" + t for t in TARGETS}
    assert all(merged[k] is params[k] for k in untouched)
    ids = jnp.arange(12, dtype=jnp.int32)[None] % 60
    np.testing.assert_allclose(np.asarray(transformer.forward(merged, cfg.replace(lora=None), ids)),
                               np.asarray(transformer.forward(params, cfg, ids)), atol=2e-5)
    with pytest.raises(KeyError, match="q_proj"):
        lora.merge(lora.base(params), lc)


def test_dropout_zeroes_and_rescales_inputs_only_with_a_key():
    lc = lora.LoraConfig(rank=64, alpha=64.0, dropout=0.25)  # scale 1
    eye = jnp.eye(64)
    x = jax.random.normal(jax.random.key(0), (256, 64)) + 3.0
    np.testing.assert_allclose(np.asarray(lora.delta(x, eye, eye, lc)), np.asarray(x),
                               rtol=1e-6)
    out = np.asarray(lora.delta(x, eye, eye, lc, jax.random.key(1)))
    xs = np.asarray(x)
    dropped = out == 0
    np.testing.assert_allclose(out[~dropped], xs[~dropped] / 0.75, rtol=1e-6)
    frac = dropped.mean()  # 16384 draws: 3 standard errors ~ 0.01
    assert abs(frac - 0.25) < 0.011, frac
    other = np.asarray(lora.delta(x, eye, eye, lc, jax.random.key(2)))
    assert (other != out).any()


def test_training_forward_uses_dropout_inference_does_not():
    lc = lora.LoraConfig(rank=4, alpha=8.0, dropout=0.5, targets=("q_proj", "up_proj"))
    cfg = transformer.TransformerConfig.tiny(lora=lc)
    params = _with_random_adapters(transformer.init_params(cfg, 0), lc, 1)
    ids = jnp.arange(8, dtype=jnp.int32)[None] % 60
    plain = transformer.hidden_states(params, cfg, ids)
    k = jax.random.key(3)
    a, b = (transformer.hidden_states(params, cfg, ids, dropout_rng=k) for _ in range(2))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the key decides
    assert np.abs(np.asarray(a) - np.asarray(plain)).max() > 1e-3
    no_drop = cfg.replace(lora=lora.LoraConfig(rank=4, alpha=8.0, targets=lc.targets))
    np.testing.assert_array_equal(np.asarray(transformer.hidden_states(params, no_drop, ids,
                                                                 dropout_rng=k)),
                                  np.asarray(plain))


def test_adapters_shard_like_their_base_layers():
    cfg = transformer.TransformerConfig.tiny(lora=lora.LoraConfig(rank=4, alpha=8.0, targets=TARGETS))
    mesh = shd.make_mesh(data=1, fsdp=4, tensor=2)
    sh = shd.tree_shardings(transformer.param_specs(cfg), mesh)
    assert tuple(sh["blocks/q_proj"].spec) == (None, "fsdp", "tensor")
    # A's input / B's output axis as the base's; the rank takes fsdp where it is free
    assert tuple(sh["blocks/q_proj_lora_a"].spec) == (None, "fsdp", None)
    assert tuple(sh["blocks/q_proj_lora_b"].spec) == (None, "fsdp", "tensor")
    assert tuple(sh["blocks/ff_out"].spec) == (None, "tensor", "fsdp")
    assert tuple(sh["blocks/ff_out_lora_a"].spec) == (None, "tensor", "fsdp")
    assert tuple(sh["blocks/ff_out_lora_b"].spec) == (None, "fsdp", None)
    params = jax.jit(lambda: transformer.init_params(cfg, 0), out_shardings=sh)()
    params = _with_random_adapters(params, cfg.lora, 0)
    ids = jnp.arange(16, dtype=jnp.int32).reshape(2, 8) % 60
    want = transformer.forward(jax.device_get(params), cfg, ids)
    got = jax.jit(lambda p: transformer.forward(p, cfg, ids))(shd.place(params, sh))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_lora_config_errors_name_the_key():
    c = configlib.base_config()
    c.model.lora.rank = 8
    c.model.lora.targets = "q_proj,qq_proj"
    with pytest.raises(configlib.ConfigError, match=r"model\.lora.*qq_proj"):
        configlib.validate(c, check_paths=False)
    c.model.lora.targets = "q_proj,v_proj"
    c.model.lora.dropout = 1.0
    with pytest.raises(configlib.ConfigError, match=r"model\.lora.*dropout"):
        configlib.validate(c, check_paths=False)
    c.model.lora.dropout = 0.05
    configlib.validate(c, check_paths=False)
    lc = lora.LoraConfig.from_config(c.model.lora)
    assert lc.targets == ("q_proj", "v_proj") and lc.scale == 8.0
    c.model.lora.rank = 0
    assert lora.LoraConfig.from_config(c.model.lora) is None


def test_sampler_with_adapters_equals_numpy_generation_on_merged_weights(hf_model):
    from igpo_jax import sampling
    c, tensors, model = hf_model
    lc = lora.LoraConfig(rank=3, alpha=6.0, dropout=0.3, targets=TARGETS)
    cfg = model.config.replace(lora=lc)
    params = _with_random_adapters(dict(model.param_dict(), **transformer.init_adapters(cfg, 1)),
                                   lc, 7)
    merged_t = dict(tensors)  # numpy float64 merge in HF layout: W^T + 2 (A B)^T per layer
    for t in TARGETS:
        a, b = (np.asarray(params[f"blocks/{t}_lora_{x}"], np.float64) for x in "ab")
        for i in range(c["n_layers"]):
            name = f"model.transformer.blocks.{i}.{t}.weight"
            merged_t[name] = (tensors[name].astype(np.float64) + 2.0 * (a[i] @ b[i]).T)
    prompt = np.random.default_rng(0).integers(0, 60, (3, 5)).astype(np.int32)
    want, _ = ref.numpy_generate(merged_t, c, prompt, 16, 8, 8, c["mask_token_id"])
    sc = sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.0)
    got = sampling.generate_params(params, cfg, prompt, sc, jax.random.key(0)).tokens
    np.testing.assert_array_equal(np.asarray(got), want)
    base_out = sampling.generate_params(model.param_dict(), model.config, prompt, sc,
                                        jax.random.key(0)).tokens
    assert (np.asarray(base_out) != want).any()  # the adapters change the samples
    # sample_merged=False: the sampler runs the unmerged adapters (the log-prob policy)
    # and gives the same greedy tokens as the float64 merged reference
    unmerged_cfg = model.config.replace(lora=dataclasses.replace(lc, sample_merged=False))
    assert lora.merge_for_sampling(params, unmerged_cfg.lora) is params
    got_u = sampling.generate_params(params, unmerged_cfg, prompt, sc, jax.random.key(0)).tokens
    np.testing.assert_array_equal(np.asarray(got_u), want)
