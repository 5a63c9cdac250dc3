"""SFT (sft.py): the masked-diffusion loss against numpy, the noise rates, one step
lowering the loss, length alignment and rewritten traces."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import sft
from igpo_jax.data import Example
from igpo_jax.models import transformer
from igpo_jax.tokenizers import SentencePieceTokenizer
from tests import reference as ref


def test_sft_loss_matches_numpy(tmp_path):
    c, t, model = ref.random_model(tmp_path, seed=9)
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, 60, (3, 5)).astype(np.int32)
    attn = np.ones((3, 5), bool)
    target = rng.integers(0, 63, (3, 7)).astype(np.int32)
    noise, p = sft.draw_noise(jax.random.key(1), target.shape)
    noise, p = np.asarray(noise), np.asarray(p)
    got = float(sft.masked_sft_loss(model.param_dict(), model.config, jnp.asarray(prompt),
                                    jnp.asarray(attn), jnp.asarray(target), jnp.asarray(noise),
                                    jnp.asarray(p)))
    x = np.concatenate([prompt, np.where(noise, 63, target)], 1)
    logits = ref.numpy_forward(t, c, x)[:, 5:]
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    ce = logz - np.take_along_axis(logits, target[..., None], -1)[..., 0]
    want = sum((ce[b] * noise[b] / p[b]).sum() / 7 for b in range(3))
    # each cross-entropy is within 2x the float32 logit bound (log-sum-exp and target
    # logit), weighted by 1/p and summed as the loss is
    weight = sum((noise[b] / p[b]).sum() / 7 for b in range(3))
    np.testing.assert_allclose(got, want, atol=2 * ref.f32_atol(c, 12, logits) * weight, rtol=0)


@pytest.mark.parametrize("mode", ["uniform", "stratified"])
def test_noise_rates(mode):
    noise, p = sft.draw_noise(jax.random.key(0), (512, 400), 1e-3, mode)
    p = np.asarray(p)
    assert p.min() >= 1e-3 and p.max() <= 1.0
    rates = np.asarray(noise).mean(1)
    np.testing.assert_allclose(rates, p, atol=0.1)
    if mode == "stratified":  # exactly one t in each of the 512 strata
        t = (p - 1e-3) / (1 - 1e-3)
        np.testing.assert_array_equal(np.sort(np.floor(t * 512)), np.arange(512))


def test_one_sft_step_lowers_loss_on_fixed_batch():
    cfg = transformer.TransformerConfig.tiny()
    params = transformer.init_params(cfg, 0)
    import optax
    tx = optax.adam(3e-3)
    opt = tx.init(params)
    rng = np.random.default_rng(0)
    batch = dict(prompt=jnp.asarray(rng.integers(0, 60, (8, 4)), jnp.int32),
                 attn=jnp.ones((8, 4), bool),
                 target=jnp.asarray(rng.integers(0, 60, (8, 12)), jnp.int32))
    step = sft.make_step(cfg, tx, 2, 1e-3, "stratified", params, opt)
    key = jax.random.key(5)
    noise, p = sft.draw_noise(key, (8, 12), 1e-3, "stratified")

    def loss(prm):
        return float(sft.masked_sft_loss(prm, cfg, batch["prompt"], batch["attn"],
                                         batch["target"], noise, p)) / 8
    before = loss(params)
    params2, _, out = step(params, opt, {}, batch, key)
    np.testing.assert_allclose(float(out["loss"]), before, rtol=1e-5)  # micro-batches sum exactly
    assert loss(params2) < before


def test_length_alignment_and_rewritten(tmp_path):
    tok = SentencePieceTokenizer()
    exs = [Example("1 2", "3", "x" * 10), Example("2 2", "4", "y" * 40), Example("q", "1", "")]
    kept, counts = sft.align_lengths(tok, exs, 20, "drop")
    assert [e.question for e in kept] == ["1 2"]
    assert counts == {"examples": 3, "overlong": 1, "no_trace": 1, "kept": 1}
    kept, counts = sft.align_lengths(tok, exs, 20, "truncate")
    assert len(kept) == 2 and counts["overlong"] == 1
    path = tmp_path / "rw.jsonl"
    path.write_text(json.dumps({"question": "2 2", "trace": "short"}) + "\n")
    out, n = sft.apply_rewritten(exs, str(path))
    assert n == 1 and out[1].trace == "short" and out[0].trace == "x" * 10
    path.write_text('{"question": "2 2"}\n')
    with pytest.raises(ValueError, match="rw.jsonl:1"):
        sft.apply_rewritten(exs, str(path))
