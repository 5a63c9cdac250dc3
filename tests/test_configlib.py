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
    owners = {"sampler": sampling.SamplerConfig, "igpo": igpo.IgpoConfig,
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
    assert rc.igpo == igpo.IgpoConfig(**c.igpo.to_dict())


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


def _fields(cls, prefix=""):
    for f in dataclasses.fields(cls):
        yield prefix + f.name, f
        if f.metadata.get("section") is not None:
            yield from _fields(f.metadata["section"], prefix + f.name + ".")


def test_the_schema_is_declared_once_in_the_typed_sections():
    # every key of every section has its default and a doc where it is declared ...
    for key, f in _fields(configlib.RunConfig):
        assert f.metadata.get("doc"), f"{key} has no doc"
        assert (f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING), f"{key} has no default"
    # ... and base_config() is generated from them: the same keys, the same defaults
    c = configlib.base_config()
    declared = {k for k, _ in _fields(configlib.RunConfig)}
    assert set(configlib.known_keys()) == declared
    assert configlib.typed(c) == configlib.RunConfig()
    assert c.rl.group_size == grpo.RLConfig().group_size == 8
    assert isinstance(c.model.lora.alpha, float)  # the declared type kept (64.0)
    assert configlib.key_docs()["rl.beta"] == dict(
        (f.name, f.metadata["doc"]) for f in dataclasses.fields(grpo.RLConfig))["beta"]
    # a changed default in a section reaches the ConfigDict (nothing is written twice)
    rl_fields = {f.name: f for f in dataclasses.fields(grpo.RLConfig)}
    assert c.rl.micro_batch_size == rl_fields["micro_batch_size"].default
    # the synthetic task's keys are a typed section too
    assert type(configlib.typed(c).data.synthetic).__name__ == "SyntheticConfig"


def test_names_added_to_a_registry_from_outside_are_valid_config_values(monkeypatch):
    """Each registry the README's "Extending" names is read when a config is checked,
    not copied at import: a name added from a user's file passes validation, and is
    refused again once it is gone."""
    from igpo_jax.rl import augment, estimators
    keys = {"reward.name": (rewards.REWARDS, rewards.REWARDS["math"]),
            "rl.loss": (grpo.POLICY_LOSSES, grpo.POLICY_LOSSES["wd1"]),
            "rl.estimator": (estimators.ESTIMATORS, estimators.ESTIMATORS["one_step"]),
            "rl.algo": (augment.AUGMENTATIONS, augment.AUGMENTATIONS["grpo"]),
            "data.source": (sources.FILE_SOURCES, sources.FILE_SOURCES["gsm8k"]),
            "model.family": (family.FAMILIES, family.FAMILIES["llada"])}
    for key, (registry, entry) in keys.items():
        c = _tiny()
        section, name = key.split(".")
        c[section][name] = "mine"
        with pytest.raises(ConfigError, match=rf"config\.{key}='mine'"):
            configlib.typed(c)
        monkeypatch.setitem(registry, "mine", entry)
        assert configlib.typed(c)[section][name] == "mine", key
        monkeypatch.undo()
        with pytest.raises(ConfigError, match=rf"config\.{key}='mine'"):
            configlib.typed(c)
