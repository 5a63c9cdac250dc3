"""The config at the boundary: the entry point turns the ConfigDict into frozen typed
sections owned by their modules, each checking its own fields; cross-section checks
stay in configlib.validate; library entry points refuse the raw dict."""

import dataclasses

import pytest

from igpo_jax import checkpoint, configlib, evaluate, optim, rewards, sampling, sft, sharding
from igpo_jax.data import sources
from igpo_jax.models import family, lora
from igpo_jax.rl import grpo, igpo, trainer
from igpo_jax.sections import ConfigError


def _tiny():
    from configs import tiny
    return tiny.get_config("rl")


def test_validate_returns_frozen_sections_owned_by_their_modules():
    rc = configlib.validate(_tiny(), check_paths=False)
    owners = {"sampler": sampling.SamplerSettings, "igpo": igpo.IgpoConfig,
              "rl": grpo.RLConfig, "sft": sft.SFTConfig, "optim": optim.OptimConfig,
              "data": sources.DataConfig, "reward": rewards.RewardConfig,
              "eval": evaluate.EvalConfig, "mesh": sharding.MeshConfig,
              "checkpoint": checkpoint.CheckpointConfig, "model": family.ModelSettings}
    for name, cls in owners.items():
        assert type(rc[name]) is cls, name
    assert type(rc.model.lora) is lora.LoraSettings
    assert type(rc.data.tfds) is sources.TfdsConfig
    with pytest.raises(dataclasses.FrozenInstanceError):
        rc.rl.group_size = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        rc.seed = 1
    # the same values as the ConfigDict, readable by attribute and by key
    c = _tiny()
    assert rc.rl.group_size == c.rl.group_size and rc.igpo["tau"] == c.igpo.tau
    assert rc.data.to_dict()["tfds"] == c.data.tfds.to_dict()
    assert rc.igpo.hints() == igpo.HintConfig(
        c.igpo.min_chunk, c.igpo.max_chunk, c.igpo.eta_low, c.igpo.eta_high, c.igpo.reserve,
        c.igpo.position, max_gap=c.igpo.max_gap, reveal_last_chunk=c.igpo.reveal_last_chunk)


@pytest.mark.parametrize("key,value,match", [
    ("rl.group_size", 1, "config.rl.group_size=1: group methods need at least 2"),
    ("rl.algo", "ppo", "config.rl.algo='ppo': expected one of"),
    ("igpo.tau", 0.0, "config.igpo.tau=0.0: need 0 < tau <= 1"),
    ("sampler.cache", "full", "config.sampler.cache='full': expected one of"),
    ("optim.schedule", "step", "config.optim.schedule='step': expected one of"),
    ("sft.mask", "span", "config.sft.mask='span': expected one of"),
    ("eval.split", "dev", "config.eval.split='dev': expected train|test"),
    ("reward.name", "bleu", "config.reward.name='bleu': expected one of"),
    ("data.source", "csv", "config.data.source='csv': expected one of"),
    ("checkpoint.keep", 0, r"config.checkpoint.every/keep=\(1, 0\): must be >= 1"),
    ("model.family", "gpt", "config.model.family='gpt': expected one of"),
])
def test_each_section_checks_its_own_fields(key, value, match):
    c = _tiny()
    section, field = key.split(".")
    c[section][field] = value
    with pytest.raises(ConfigError, match=match):
        configlib.typed(c)  # the section's own check, before any cross-section check


def test_cross_section_checks_stay_in_validate():
    c = _tiny()
    c.igpo.reserve = c.sampler.gen_length  # fine for the igpo section alone
    rc = configlib.typed(c)
    assert rc.igpo.reserve == c.sampler.gen_length
    with pytest.raises(ConfigError, match="igpo.reserve.*sampler.gen_length"):
        configlib.validate(c, check_paths=False)


def test_library_entry_points_refuse_the_raw_dict(tmp_path):
    c = _tiny()
    with pytest.raises(TypeError, match="configlib.validate"):
        trainer.train(c, str(tmp_path))
    with pytest.raises(TypeError, match="typed config"):
        sft.train(c, str(tmp_path))
    with pytest.raises(TypeError, match="typed config"):
        evaluate.run_eval(c, str(tmp_path))
    from igpo_jax import experiment
    with pytest.raises(TypeError, match="typed config"):
        experiment.model_config(c)
    assert configlib.typed(configlib.typed(c)) == configlib.typed(c)  # idempotent
