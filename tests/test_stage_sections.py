"""The ``sft`` and ``eval`` sections: their defaults and docs are declared once, each
rule is checked by the section itself with the key named, and the stage modules
re-export the same classes."""

import dataclasses

import pytest

from igpo_jax import configlib, evaluate, protocols, sft, stage_sections
from igpo_jax.sections import ConfigError
from igpo_jax.stage_sections import EvalConfig, SFTConfig


def test_the_stage_modules_re_export_the_sections():
    assert sft.SFTConfig is SFTConfig and evaluate.EvalConfig is EvalConfig
    fields = {f.name for f in dataclasses.fields(configlib.RunConfig)}
    assert {"sft", "eval"} <= fields
    rc = configlib.typed(configlib.base_config())
    assert type(rc.sft) is SFTConfig and type(rc.eval) is EvalConfig


def test_the_config_dict_holds_the_declared_defaults_and_docs():
    base = configlib.base_config()
    docs = configlib.key_docs()
    for name, cls in (("sft", SFTConfig), ("eval", EvalConfig)):
        cls()  # the defaults pass their own checks
        for f in dataclasses.fields(cls):
            assert base[name][f.name] == f.default, (name, f.name)
            assert f.metadata["doc"] and docs[f"{name}.{f.name}"] == f.metadata["doc"], f.name
    # the choices the docs name are the ones the checks accept
    doc = {f.name: f.metadata["doc"] for f in dataclasses.fields(SFTConfig)}
    for mode in stage_sections.MASK_MODES:
        assert mode in doc["mask"]
        assert SFTConfig(mask=mode).mask == mode
    for how in stage_sections.OVERLONG:
        assert how in doc["overlong"]


@pytest.mark.parametrize("kw,match", [
    (dict(num_steps=-1), r"config\.sft\.num_steps/batch_size=\(-1, 32\)"),
    (dict(batch_size=0, micro_batch_size=1), r"config\.sft\.num_steps/batch_size=\(100, 0\)"),
    (dict(batch_size=32, micro_batch_size=12), r"config\.sft\.micro_batch_size=12: must divide "
                                               r"sft\.batch_size=32"),
    (dict(t_sampling="sobol"), r"config\.sft\.t_sampling='sobol': expected one of"),
    (dict(mask="span"), r"config\.sft\.mask='span': expected one of \('iid', 'block', 'mixed'\)"),
    (dict(overlong="wrap"), r"config\.sft\.overlong='wrap'"),
    (dict(eps=0.0), r"config\.sft\.eps=0\.0: must be in \(0, 1\)"),
    (dict(eps=1.0), r"config\.sft\.eps=1\.0: must be in \(0, 1\)"),
])
def test_sft_section_names_the_key_of_each_mistake(kw, match):
    with pytest.raises(ConfigError, match=match):
        SFTConfig(**kw)


def test_sft_micro_batches_that_divide_are_accepted():
    assert SFTConfig(batch_size=32, micro_batch_size=8).micro_batch_size == 8
    assert SFTConfig(num_steps=0).num_steps == 0  # an evaluation-only SFT stage


@pytest.mark.parametrize("kw,match", [
    (dict(k=0), r"config\.eval\.k/batch_size=\(0, 32\): must be >= 1"),
    (dict(batch_size=0), r"config\.eval\.k/batch_size=\(1, 0\): must be >= 1"),
    (dict(k=4, temperature=0.0), r"config\.eval\.k=4: avg@k with k > 1 needs "
                                 r"eval\.temperature > 0"),
    (dict(split="dev"), r"config\.eval\.split='dev': expected train\|test"),
    (dict(protocol="d1_gsm9k"), r"config\.eval\.protocol='d1_gsm9k': expected one of"),
])
def test_eval_section_names_the_key_of_each_mistake(kw, match):
    with pytest.raises(ConfigError, match=match):
        EvalConfig(**kw)


def test_eval_accepts_sampled_avg_at_k_and_every_published_protocol():
    assert EvalConfig(k=4, temperature=0.1).k == 4
    for name in protocols.PROTOCOLS:
        assert EvalConfig(protocol=name).protocol == name
    # the docs of eval.protocol name every one it accepts
    doc = {f.name: f.metadata["doc"] for f in dataclasses.fields(EvalConfig)}["protocol"]
    assert all(name in doc for name in protocols.PROTOCOLS) and len(protocols.PROTOCOLS) > 5


def test_the_run_config_check_goes_through_the_section():
    """A wrong value in a ConfigDict fails in configlib.typed with the section's own
    message: there is no second validator of these keys."""
    c = configlib.base_config()
    c.sft.batch_size, c.sft.micro_batch_size = 6, 4
    with pytest.raises(ConfigError, match=r"config\.sft\.micro_batch_size=4: must divide"):
        configlib.typed(c)
    c = configlib.base_config()
    c.eval.k = 3
    with pytest.raises(ConfigError, match=r"config\.eval\.k=3"):
        configlib.typed(c)
