"""The sampler's config section (igpo_jax/sampler_config.py): lengths, steps and modes
checked when built, and the names derived from them."""

import pytest

from igpo_jax import sampling


def test_indivisible_lengths_are_rejected():
    with pytest.raises(ValueError, match="block_length"):
        sampling.SamplerConfig(gen_length=30, block_length=8, steps=8)
    with pytest.raises(ValueError, match="sampler.steps=6: must be a multiple of the number of blocks"):
        sampling.SamplerConfig(gen_length=32, block_length=8, steps=6)
    with pytest.raises(ValueError, match="remasking"):
        sampling.SamplerConfig(gen_length=32, block_length=8, steps=8, remasking="top")


def test_blocks_steps_and_mode_names():
    sc = sampling.SamplerConfig(gen_length=32, block_length=8, steps=16)
    assert (sc.num_blocks, sc.steps_per_block, sc.mode) == (4, 4, "exact")
    assert sc.replace(cache="dual").mode == "cache=dual,unmask=fixed"
    assert sc.replace(unmask="threshold", threshold=0.8).mode == "cache=none,unmask=threshold0.8"
    assert sampling.SamplerConfig.from_config({"gen_length": 32, "block_length": 8,
                                               "steps": 16}, temperature=0.7).temperature == 0.7
    with pytest.raises(ValueError, match="needs remasking=low_confidence"):
        sc.replace(unmask="threshold", remasking="random")
