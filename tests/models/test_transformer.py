"""The shared Transformer (models/transformer.py): padding masks, bfloat16, remat."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from igpo_jax.models import transformer
from tests import reference as ref


def test_attention_mask_hides_padding(tmp_path):
    c, tensors, model = ref.random_model(tmp_path, seed=3)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 60, (2, 9)).astype(np.int32)
    mask = np.ones((2, 9), bool)
    mask[0, :3] = False  # left padding
    got = np.asarray(model(jnp.asarray(ids), jnp.asarray(mask)))
    want = ref.numpy_forward(tensors, c, ids, mask)
    np.testing.assert_allclose(got, want, atol=ref.f32_atol(c, 9, want), rtol=0)
    # padded keys carry no information: changing them leaves the real positions unchanged
    ids2 = ids.copy()
    ids2[0, :3] = (ids2[0, :3] + 7) % 60
    got2 = np.asarray(model(jnp.asarray(ids2), jnp.asarray(mask)))
    np.testing.assert_allclose(got2[0, 3:], got[0, 3:], atol=1e-6)


def test_bfloat16_params_and_compute():
    cfg = transformer.TransformerConfig.tiny(param_dtype="bfloat16", dtype="bfloat16")
    model = transformer.Transformer(cfg, rngs=nnx.Rngs(0))
    assert all(v.dtype == jnp.bfloat16 for v in model.param_dict().values())
    logits = model(jnp.zeros((1, 4), jnp.int32))
    assert logits.dtype == jnp.float32
    cfg32 = cfg.replace(param_dtype="float32", dtype="float32")
    p32 = {k: v.astype(jnp.float32) for k, v in model.param_dict().items()}
    l32 = transformer.forward(p32, cfg32, jnp.zeros((1, 4), jnp.int32))
    np.testing.assert_allclose(np.asarray(logits), np.asarray(l32), atol=0.05)


def test_remat_gives_same_gradients():
    cfg = transformer.TransformerConfig.tiny()
    params = transformer.init_params(cfg, 0)
    ids = jnp.arange(8, dtype=jnp.int32)[None] % 60

    def loss(p, c):
        return jnp.sum(transformer.forward(p, c, ids) ** 2)

    g = jax.grad(loss)(params, cfg)
    g_remat = jax.grad(loss)(params, cfg.replace(remat=True))
    for k in g:
        np.testing.assert_allclose(np.asarray(g[k]), np.asarray(g_remat[k]), rtol=1e-5, atol=1e-6)
