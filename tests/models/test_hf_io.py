"""Hugging Face import and export (models/hf_io.py): logits of an imported checkpoint
against numpy, errors that name the tensor, a bit-exact roundtrip, damaged downloads."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from igpo_jax.models import hf_io, transformer
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
