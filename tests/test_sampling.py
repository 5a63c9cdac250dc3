import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import sampling
from igpo_jax.data.batches import left_pad
from tests import reference as ref

MASK, EOS = 63, 62


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    return ref.random_model(tmp_path_factory.mktemp("ckpt"), seed=11, vocab=64, d=32, layers=2,
                            heads=4, kv_heads=2, mlp=64)


@pytest.mark.parametrize("top_p", [1.0, 0.6])
def test_dreams_entropy_order_matches_numpy(hf_model, top_p):
    """remasking="entropy", top_p and the dream schedule at temperature 0, one block of
    the whole length (Dream's evaluation settings) against the numpy step loop."""
    c, t, model = hf_model
    prompt = np.random.default_rng(5).integers(0, 60, (3, 5)).astype(np.int32)
    want, log = ref.numpy_generate(t, c, prompt, 16, 16, 16, MASK, remasking="entropy",
                                   top_p=top_p, schedule="dream")
    sc = sampling.SamplerConfig(gen_length=16, block_length=16, steps=16, temperature=0.0,
                                remasking="entropy", top_p=top_p, schedule="dream")
    out = sampling.generate(model, prompt, sc, mask_id=MASK)
    np.testing.assert_array_equal(np.asarray(out.tokens), want)
    order = np.asarray(out.order)
    for _, i, moved in log:
        for r in range(3):
            assert sorted(np.flatnonzero(order[r] == i) + 5) == moved[r]
    assert [len(moved[0]) for _, _, moved in log] == list(ref.dream_counts(16, 16))


def test_entropy_order_differs_from_low_confidence(hf_model):
    _, _, model = hf_model
    prompt = np.random.default_rng(6).integers(0, 60, (4, 5)).astype(np.int32)
    orders = [np.asarray(sampling.generate(model, prompt, sampling.SamplerConfig(
        gen_length=16, block_length=16, steps=16, temperature=0.0, remasking=r),
        mask_id=MASK).order) for r in ("low_confidence", "entropy")]
    assert (orders[0] != orders[1]).any()


def test_greedy_matches_numpy_reference(hf_model):
    c, t, model = hf_model
    prompt = np.random.default_rng(0).integers(0, 60, (3, 5)).astype(np.int32)
    want, _ = ref.numpy_generate(t, c, prompt, 16, 8, 8, MASK)
    got = sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.0), mask_id=MASK).tokens
    assert got.dtype == jnp.int32 and got.shape == (3, 21)
    np.testing.assert_array_equal(np.asarray(got), want)


def test_greedy_with_hints_and_padding_matches_numpy(hf_model):
    c, t, model = hf_model
    rng = np.random.default_rng(1)
    prompt = rng.integers(0, 60, (2, 6)).astype(np.int32)
    attn = np.ones((2, 6), bool)
    attn[1, :2] = False
    hint_mask = np.zeros((2, 16), bool)
    hint_mask[0, [1, 2, 9]] = True
    hint_mask[1, 4:12] = True
    hint_ids = rng.integers(0, 60, (2, 16)).astype(np.int32)
    want, log = ref.numpy_generate(t, c, prompt, 16, 8, 4, MASK, hint_ids, hint_mask, attn)
    got = np.asarray(sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=16, block_length=8, steps=4, temperature=0.0), mask_id=MASK, hint_ids=hint_ids, hint_mask=hint_mask, attention_mask=attn).tokens)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[:, 6:][hint_mask], hint_ids[hint_mask])
    assert not (got == MASK).any()
    # each step moved exactly the scheduled count; hinted positions never counted
    for b, i, moved in log:
        for r in range(2):
            free = 8 - hint_mask[r, b * 8:(b + 1) * 8].sum()
            assert len(moved[r]) == free // 2 + (i < free % 2)
            assert not any(hint_mask[r, pos - 6] for pos in moved[r])


@pytest.mark.parametrize("remasking,temperature", [("low_confidence", 0.8), ("random", 0.0),
                                                   ("random", 1.0)])
def test_stochastic_modes_are_reproducible_and_keep_hints(hf_model, remasking, temperature):
    _, _, model = hf_model
    rng = np.random.default_rng(2)
    prompt = rng.integers(0, 60, (4, 5)).astype(np.int32)
    hint_mask = rng.random((4, 32)) < 0.3
    hint_ids = rng.integers(0, 60, (4, 32)).astype(np.int32)
    sc = sampling.SamplerConfig(gen_length=32, block_length=8, steps=16, temperature=temperature,
                                remasking=remasking)
    kw = dict(mask_id=MASK, hint_ids=hint_ids, hint_mask=hint_mask)
    a = np.asarray(sampling.generate(model, prompt, sc, jax.random.key(5), **kw).tokens)
    b = np.asarray(sampling.generate(model, prompt, sc, jax.random.key(5), **kw).tokens)
    c = np.asarray(sampling.generate(model, prompt, sc, jax.random.key(6), **kw).tokens)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert not (a == MASK).any()
    np.testing.assert_array_equal(a[:, 5:][hint_mask], hint_ids[hint_mask])
    np.testing.assert_array_equal(a[:, :5], prompt)


@pytest.mark.parametrize("remasking,temperature", [("low_confidence", 0.0), ("random", 1.0)])
def test_every_step_unmasks_exactly_the_scheduled_count(hf_model, remasking, temperature):
    _, _, model = hf_model
    rng = np.random.default_rng(3)
    hint_mask = rng.random((3, 24)) < 0.25
    hint_ids = rng.integers(0, 60, (3, 24)).astype(np.int32)
    prompt = rng.integers(0, 60, (3, 4)).astype(np.int32)
    order = sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=24, block_length=8, steps=9, temperature=temperature, remasking=remasking), mask_id=MASK, rng=jax.random.key(1), hint_ids=hint_ids, hint_mask=hint_mask).order
    order = np.asarray(order)
    np.testing.assert_array_equal(order[hint_mask], -1)
    for r in range(3):
        for blk in range(3):
            free = int((~hint_mask[r, blk * 8:(blk + 1) * 8]).sum())
            for i in range(3):
                step = blk * 3 + i
                want = free // 3 + (i < free % 3)
                got = order[r] == step
                assert got.sum() == want
                assert got[blk * 8:(blk + 1) * 8].sum() == want  # only inside its block


def test_early_stop_fills_eos(hf_model):
    _, _, model = hf_model
    # hint every position of the first block with EOS so that block is all EOS
    hint_mask = np.zeros((2, 32), bool)
    hint_mask[:, :8] = True
    hint_ids = np.full((2, 32), EOS, np.int32)
    prompt = np.ones((2, 3), np.int32)
    out = np.asarray(sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=32, block_length=8, steps=16, temperature=0.0, early_stop=True), mask_id=MASK, eos_id=EOS, hint_ids=hint_ids, hint_mask=hint_mask).tokens)
    assert (out[:, 3:] == EOS).all()
    full = np.asarray(sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=32, block_length=8, steps=16, temperature=0.0), mask_id=MASK, eos_id=EOS, hint_ids=hint_ids, hint_mask=hint_mask).tokens)
    assert not (full[:, 11:] == EOS).all()  # without early stop the model fills the rest


def test_classifier_free_guidance_changes_output_and_matches_formula(hf_model):
    c, t, model = hf_model
    prompt = np.random.default_rng(4).integers(0, 60, (2, 6)).astype(np.int32)
    plain = np.asarray(sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=8, block_length=8, steps=1, temperature=0.0), mask_id=MASK).tokens)
    guided = np.asarray(sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=8, block_length=8, steps=1, temperature=0.0, cfg_scale=3.0), mask_id=MASK).tokens)
    # one step unmasks all 8 tokens with argmax of un + 4 (cond - un)
    x = np.concatenate([prompt, np.full((2, 8), MASK)], 1)
    un = x.copy()
    un[:, :6] = MASK
    cond_l, un_l = ref.numpy_forward(t, c, x)[:, 6:], ref.numpy_forward(t, c, un)[:, 6:]
    mix = un_l + 4.0 * (cond_l - un_l)
    mix[..., MASK] = -np.inf
    np.testing.assert_array_equal(guided[:, 6:], mix.argmax(-1))
    assert (plain != guided).any()


def test_bad_inputs(hf_model):
    _, _, model = hf_model
    prompt = np.zeros((2, 3), np.int32)
    with pytest.raises(ValueError, match="hint_ids must have shape"):
        sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.0), hint_ids=np.zeros((2, 8), np.int32), hint_mask=np.zeros((2, 8), bool)).tokens
    with pytest.raises(ValueError, match="together"):
        sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.0), hint_ids=np.zeros((2, 16), np.int32)).tokens
    with pytest.raises(ValueError, match="max_sequence_length"):
        sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=1024, block_length=32, steps=32, temperature=0.0)).tokens


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [0, 0, 8]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [0, 0, 1]])


def test_sampler_call_moves_host_inputs_once_and_keeps_results_on_device(hf_model,
                                                                        monkeypatch):
    """numpy prompts, mask and hints reach the devices in one explicit transfer, nothing
    else crosses (transfer guards on "disallow"), and the tokens and the model-call
    count stay on the device until read."""
    c, t, model = hf_model
    params = model.param_dict()
    sc = sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.0)
    prompt = np.random.default_rng(5).integers(0, 60, (2, 5)).astype(np.int32)
    hint_ids = np.zeros((2, 16), np.int32) + 7
    hint_mask = np.zeros((2, 16), bool)
    hint_mask[0, 3] = True
    key = jax.random.key(0)
    sampling.generate_params(params, model.config, prompt, sc, key, hint_ids=hint_ids,
                             hint_mask=hint_mask)  # compile outside the guard
    real_put, puts = jax.device_put, []
    monkeypatch.setattr(jax, "device_put", lambda *a, **k: puts.append(1) or real_put(*a, **k))
    with jax.transfer_guard_host_to_device("disallow"), \
            jax.transfer_guard_device_to_host("disallow"):
        out = sampling.generate_params(params, model.config, prompt, sc, key,
                                       hint_ids=hint_ids, hint_mask=hint_mask)
    assert len(puts) == 1 and isinstance(out.tokens, jax.Array)
    want, _ = ref.numpy_generate(t, c, prompt, 16, 8, 8, MASK, hint_ids=hint_ids,
                                 hint_mask=hint_mask)
    np.testing.assert_array_equal(np.asarray(out.tokens), want)
    assert out.forward_passes == 8
