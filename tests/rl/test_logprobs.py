"""Log-probability helpers (rl/logprobs.py): completion log-probs against a hand
softmax, the prompt mask, the completion mask."""

import jax
import jax.numpy as jnp
import numpy as np

from igpo_jax.models import transformer
from igpo_jax.rl import logprobs
from tests import reference as ref


def test_completion_logprobs_against_hand_softmax(tmp_path):
    c, t, model = ref.random_model(tmp_path, seed=5)
    prompt = np.array([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]], np.int32)
    attn = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    comp = np.array([[9, 10, 11, 62], [12, 13, 62, 62]], np.int32)
    logp, ent = logprobs.completion_logprobs(model.param_dict(), model.config, jnp.asarray(prompt),
                                             jnp.asarray(attn), jnp.asarray(comp))
    x = np.concatenate([prompt, np.full((2, 4), 63)], 1)
    full_attn = np.concatenate([attn, np.ones((2, 4), bool)], 1)
    logits = ref.numpy_forward(t, c, x, full_attn)[:, 5:]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = np.log(np.take_along_axis(p, comp[..., None], -1)[..., 0])
    np.testing.assert_allclose(np.asarray(logp), want, atol=2e-5)
    np.testing.assert_allclose(np.asarray(ent), -(p * np.log(p)).sum(-1), atol=2e-5)


def test_prompt_mask_rate_and_reuse():
    attn = jnp.ones((64, 200), bool).at[:, :50].set(False)
    key = jax.random.key(3)
    m = logprobs.prompt_mask(key, attn, 0.15)
    assert not bool(m[:, :50].any())  # padding never masked
    rate = float(m[:, 50:].mean())
    assert 0.14 < rate < 0.16
    np.testing.assert_array_equal(m, logprobs.prompt_mask(key, attn, 0.15))
    assert not bool(logprobs.prompt_mask(key, attn, 0.0).any())
    # the same key gives the same log-probs (the shared mask of an inner iteration)
    cfg = transformer.TransformerConfig.tiny()
    params = transformer.init_params(cfg)
    pr = jnp.arange(20, dtype=jnp.int32).reshape(2, 10)
    comp = jnp.full((2, 4), 5, jnp.int32)
    at = jnp.ones((2, 10), bool)

    def lp(k):
        m = logprobs.prompt_mask(k, at, 0.5)
        return logprobs.completion_logprobs(params, cfg, pr, at, comp, m)[0]
    a1, a2, a3 = lp(key), lp(key), lp(jax.random.key(4))
    np.testing.assert_array_equal(a1, a2)
    assert float(jnp.abs(a1 - a3).max()) > 0


def test_completion_mask():
    ids = jnp.array([[1, 2, 9, 9, 9], [9, 9, 9, 9, 9], [1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(logprobs.completion_mask(ids, 9),
                                  [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    assert bool(logprobs.completion_mask(ids, 9, include_padding=True).all())
