import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from igpo_jax.models import family, hf_io, transformer
from igpo_jax.models.hf_io import CheckpointError
from tests import reference as ref


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
@pytest.mark.parametrize("sharded", [False, True], ids=["single_file", "sharded_files"])
def test_hf_checkpoint_logits_match_numpy(tmp_path, kv_heads, sharded):
    c = ref.hf_config(kv_heads=kv_heads)
    tensors = ref.random_hf_weights(c, seed=kv_heads)
    ref.write_hf_checkpoint(tmp_path, c, tensors, sharded=sharded)
    model = hf_io.load_hf_checkpoint(tmp_path, dtype="float32")
    assert model.config.kv_heads == kv_heads
    ids = np.random.default_rng(0).integers(0, c["vocab_size"], (2, 11)).astype(np.int32)
    got = np.asarray(model(jnp.asarray(ids)))
    want = ref.numpy_forward(tensors, c, ids)
    assert got.dtype == np.float32 and got.shape == (2, 11, c["vocab_size"])
    np.testing.assert_allclose(got, want, atol=ref.f32_atol(c, 11, want), rtol=0)


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


def test_checkpoint_errors_name_the_tensor(tmp_path):
    c = ref.hf_config()
    tensors = ref.random_hf_weights(c)
    bad = dict(tensors)
    bad["model.transformer.blocks.1.k_proj.weight"] = np.zeros((5, 32), np.float32)
    ref.write_hf_checkpoint(tmp_path / "shape", c, bad)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.k_proj.*\(5, 32\).*\(16, 32\)"):
        hf_io.load_hf_checkpoint(tmp_path / "shape")
    missing = dict(tensors)
    del missing["model.transformer.ln_f.weight"]
    ref.write_hf_checkpoint(tmp_path / "missing", c, missing)
    with pytest.raises(CheckpointError, match=r"ln_f\.weight.*missing"):
        hf_io.load_hf_checkpoint(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="config.json"):
        hf_io.load_hf_checkpoint(tmp_path / "nowhere")


def test_save_then_load_roundtrip_bit_exact(tmp_path):
    cfg = transformer.TransformerConfig.tiny()
    model = transformer.Transformer(cfg, rngs=nnx.Rngs(4))
    hf_io.save_hf_checkpoint(model, None, tmp_path / "one")
    hf_io.save_hf_checkpoint(model, None, tmp_path / "many", max_shard_bytes=4096)
    assert json.load(open(tmp_path / "many" / "model.safetensors.index.json"))["weight_map"]
    for sub in ("one", "many"):
        loaded = hf_io.load_hf_checkpoint(tmp_path / sub)
        for name, value in model.param_dict().items():
            np.testing.assert_array_equal(np.asarray(loaded.param_dict()[name]), np.asarray(value))


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


def test_config_validation_and_hf_config(tmp_path):
    with pytest.raises(ValueError, match="n_kv_heads"):
        transformer.TransformerConfig.tiny(n_kv_heads=3)
    with pytest.raises(ValueError, match="divisible"):
        transformer.TransformerConfig.tiny(d_model=30)
    with pytest.raises(ValueError, match="mask_token_id"):
        transformer.TransformerConfig.tiny(mask_token_id=100)
    c = ref.hf_config()
    cfg = hf_io.config_from_hf(c)
    assert (cfg.d_model, cfg.n_layers, cfg.kv_heads, cfg.mask_token_id) == (32, 2, 2, 63)
    (tmp_path / "config.json").write_text(json.dumps({"d_model": 8}))
    with pytest.raises(ValueError, match="missing keys"):
        hf_io.config_from_hf(tmp_path)
    big = family.preset_config("llada", "llada_8b")
    assert (big.d_model, big.n_layers, big.vocab_size, big.mask_token_id) == (4096, 32, 126464, 126336)
    assert 7.5e9 < big.num_params() < 8.5e9


def test_bad_downloads_are_named_before_any_compute(tmp_path):
    """A NaN in one tensor, a config.json whose vocabulary cannot hold the special ids,
    a truncated shard and a file that is no safetensors each stop the load with an
    error naming the file and (where one is read) the tensor."""
    c = ref.hf_config()
    tensors = ref.random_hf_weights(c)
    nan = dict(tensors)
    nan["model.transformer.blocks.0.ff_norm.weight"] = nan[
        "model.transformer.blocks.0.ff_norm.weight"].copy()
    nan["model.transformer.blocks.0.ff_norm.weight"][3] = np.nan
    ref.write_hf_checkpoint(tmp_path / "nan", c, nan, sharded=True)
    with pytest.raises(CheckpointError, match=r"safetensors: tensor 'model\.transformer\."
                                              r"blocks\.0\.ff_norm\.weight' has 1 non-finite"):
        hf_io.load_hf_checkpoint(tmp_path / "nan")
    small = dict(c, vocab_size=7)  # embedding_size stays 64
    ref.write_hf_checkpoint(tmp_path / "vocab", small, tensors)
    with pytest.raises(CheckpointError, match=r"config\.json: mask_token_id=63 is outside "
                                              r"vocab_size=7"):
        hf_io.load_hf_checkpoint(tmp_path / "vocab")
    ref.write_hf_checkpoint(tmp_path / "cut", c, tensors, sharded=True)
    shards = sorted((tmp_path / "cut").glob("model-*.safetensors"))
    data = shards[-1].read_bytes()
    shards[-1].write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=shards[-1].name + r": cannot read tensor"):
        hf_io.load_hf_checkpoint(tmp_path / "cut")
    ref.write_hf_checkpoint(tmp_path / "junk", c, tensors)
    (tmp_path / "junk" / "model.safetensors").write_bytes(b"<html>not found</html>")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable"):
        hf_io.load_hf_checkpoint(tmp_path / "junk")
    # a good folder verifies: every tensor read and checked
    ref.write_hf_checkpoint(tmp_path / "good", c, tensors, sharded=True)
    assert hf_io.verify_hf_checkpoint(tmp_path / "good") == len(tensors)
