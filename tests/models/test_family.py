"""The family registry (models/family.py): names, presets, which family a config.json is,
and the logits shift applied by ``predicting`` / ``token_logits``."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax.models import dream, family, llada, transformer
from tests import reference as ref


def test_each_family_is_one_registry_entry_with_its_own_presets():
    assert set(family.FAMILIES) == {"llada", "dream"}
    assert family.get("llada") is llada.FAMILY and family.get("dream") is dream.FAMILY
    with pytest.raises(ValueError, match=r"model family 'gpt'; known: \['dream', 'llada'\]"):
        family.get("gpt")
    # the shared sizes first, then each family's own; a family's own preset is its own
    assert family.presets()[:len(transformer.PRESETS)] == transformer.PRESETS
    for fam in family.FAMILIES.values():
        for p in fam.presets:
            assert family.family_of_preset(p) == fam.name
    assert all(family.family_of_preset(p) is None for p in transformer.PRESETS)
    assert family.family_of_preset("nonsense") is None


def test_preset_config_takes_the_family_switches_and_refuses_other_sizes():
    tiny_dream = family.preset_config("dream", "tiny")
    assert tiny_dream.family == "dream" and tiny_dream.qkv_bias and tiny_dream.logits_shift == 1
    tiny_llada = family.preset_config("llada", "tiny", n_layers=3)
    assert tiny_llada.family == "llada" and not tiny_llada.qkv_bias
    assert tiny_llada.n_layers == 3 and tiny_llada.logits_shift == 0
    with pytest.raises(ValueError, match="not a size of every family"):
        family.preset_config("llada", "dream_7b")


def test_of_hf_reads_the_family_from_config_json():
    assert family.of_hf(ref.hf_config()) is llada.FAMILY
    assert family.of_hf(ref.dream_hf_config()) is dream.FAMILY
    assert family.of_hf({"d_model": 8}) is llada.FAMILY  # no model_type: LLaDA's keys
    with pytest.raises(ValueError, match="model_type 'gpt2': not a family"):
        family.of_hf({"model_type": "gpt2", "n_embd": 8})


def test_the_logits_shift_reads_the_position_before():
    """``token_logits`` of a shifted family: position i holds the forward's i-1 (position 0
    keeps its own); ``predicting`` slices hidden states one earlier."""
    cfg = family.preset_config("llada", "tiny")
    params = family.of(cfg).init_params(cfg, 0)
    ids = jnp.asarray(np.arange(12).reshape(2, 6) % cfg.vocab_size)
    plain = np.asarray(family.token_logits(params, cfg, ids))
    shifted_cfg = dataclasses.replace(cfg, logits_shift=1)
    shifted = np.asarray(family.token_logits(params, shifted_cfg, ids))
    np.testing.assert_array_equal(shifted[:, 1:], plain[:, :-1])
    np.testing.assert_array_equal(shifted[:, 0], plain[:, 0])
    hidden = jnp.arange(2 * 6 * 3, dtype=jnp.float32).reshape(2, 6, 3)
    np.testing.assert_array_equal(np.asarray(family.predicting(cfg, hidden, 2, 3)),
                                  np.asarray(hidden[:, 2:5]))
    np.testing.assert_array_equal(np.asarray(family.predicting(shifted_cfg, hidden, 2, 3)),
                                  np.asarray(hidden[:, 1:4]))
