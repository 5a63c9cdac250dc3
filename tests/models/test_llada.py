"""The LLaDA family (models/llada.py): its config validation and config.json keys."""

import json

import pytest

from igpo_jax.models import family, hf_io, transformer
from tests import reference as ref


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
