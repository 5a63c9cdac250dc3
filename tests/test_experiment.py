"""What every stage builds from its config (experiment.py): the model config checked
against the tokenizer, ModelParts built once with the parameters read lazily, and the
starting parameters of a stage built on an adapters-only (LoRA) run."""

import json

import numpy as np
import pytest

from igpo_jax import experiment
from igpo_jax.configlib import typed
from igpo_jax.models import hf_io, llada, lora, transformer
from tests.conftest import LORA_SFT


def _tiny(mode="rl"):
    from configs import tiny
    c = tiny.get_config("rl")
    c.mode = mode
    return c


def _hf_folder(path, **kw):
    """A Hugging Face folder's config.json (the model config reads nothing else)."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps(llada.config_to_hf(
        transformer.TransformerConfig.tiny(**kw))))
    return str(path)


def test_model_parts_build_the_tokenizer_and_model_config_once_and_params_lazily(monkeypatch):
    c = typed(_tiny())
    calls = {"tokenizer": 0, "params": 0}
    real_tok, real_init = experiment.build_tokenizer, experiment.initial_params

    def tok(c):
        calls["tokenizer"] += 1
        return real_tok(c)

    def init(*a):
        calls["params"] += 1
        return real_init(*a)
    monkeypatch.setattr(experiment, "build_tokenizer", tok)
    monkeypatch.setattr(experiment, "initial_params", init)
    parts = experiment.ModelParts(c)
    assert calls == {"tokenizer": 1, "params": 0}  # no weights before the stage asks
    assert parts.cfg.vocab_size == parts.tok.vocab_size  # the tiny preset's vocabulary
    assert (parts.cfg.mask_token_id, parts.cfg.eos_token_id) == (parts.tok.mask_id,
                                                                 parts.tok.eos_id)
    assert parts.cfg.d_model == c.model.overrides.d_model
    first = parts.params
    assert parts.params is first and calls["params"] == 1
    assert set(first) == set(transformer.param_specs(parts.cfg))
    # what is given is used as is
    given = experiment.ModelParts(c, tokenizer=parts.tok, params=first)
    assert given.tok is parts.tok and given.params is first and calls == {"tokenizer": 1,
                                                                          "params": 1}


def test_model_parts_without_text_build_no_tokenizer_for_a_full_size_preset(monkeypatch):
    c = _tiny()
    c.model.update(preset="llada_8b")
    c.model.overrides.update(d_model=0, mlp_hidden_size=0)

    def no_tokenizer(c):
        raise AssertionError("the tokenizer was built")
    monkeypatch.setattr(experiment, "build_tokenizer", no_tokenizer)
    parts = experiment.ModelParts(typed(c), with_tokenizer=False)
    assert parts.tok is None
    assert (parts.cfg.d_model, parts.cfg.n_layers) == (4096, 32)  # LLaDA-8B, no weights read
    # a shared size takes its vocabulary from the tokenizer, so it must build one
    monkeypatch.undo()
    parts = experiment.ModelParts(typed(_tiny()), with_tokenizer=False)
    assert parts.tok is None and parts.cfg.vocab_size == experiment.build_tokenizer(
        typed(_tiny())).vocab_size


def test_model_config_names_what_disagrees_with_the_tokenizer(tmp_path):
    c = _tiny()
    tok = experiment.build_tokenizer(typed(c))
    ids = dict(mask_token_id=tok.mask_id, eos_token_id=tok.eos_id, bos_token_id=tok.bos_id)
    c.model.hf_dir = _hf_folder(tmp_path / "small", vocab_size=tok.vocab_size - 1, **ids)
    with pytest.raises(hf_io.CheckpointError,
                       match=rf"the tokenizer has {tok.vocab_size} tokens but the model "
                             rf"\(model.hf_dir .*small/config.json\) only "
                             rf"{tok.vocab_size - 1} embedding rows"):
        experiment.model_config(typed(c), tok)
    c.model.hf_dir = _hf_folder(tmp_path / "ids", vocab_size=tok.vocab_size,
                                **{**ids, "mask_token_id": tok.mask_id + 1})
    with pytest.raises(hf_io.CheckpointError, match=r"mask/EOS ids .* of the model .* differ "
                                                   r"from the tokenizer's"):
        experiment.model_config(typed(c), tok)
    # without a tokenizer the folder's config is taken as it is
    assert experiment.model_config(typed(c)).mask_token_id == tok.mask_id + 1
    # the right ids pass, and the folder's sizes win over the preset's
    c.model.hf_dir = _hf_folder(tmp_path / "ok", vocab_size=tok.vocab_size, n_layers=3, **ids)
    assert experiment.model_config(typed(c), tok).n_layers == 3


def test_run_folders_and_their_checkpoints(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert experiment.checkpoint_dir(str(tmp_path / "run")) == str(tmp_path / "run" /
                                                                   "checkpoints")
    assert experiment.checkpoint_dir(str(tmp_path / "run" / "checkpoints")) == str(
        tmp_path / "run" / "checkpoints")
    with pytest.raises(FileNotFoundError, match="no config.json in .*run: not a run folder"):
        experiment.read_run_config(str(tmp_path / "run"))
    (tmp_path / "run" / "config.json").write_text(json.dumps({"seed": 3}))
    assert experiment.read_run_config(str(tmp_path / "run")) == {"seed": 3}


@pytest.mark.slow
@pytest.mark.xdist_group(LORA_SFT)
def test_a_stage_from_an_sft_lora_run_starts_from_its_merged_adapters(lora_sft_run):
    sft_params = lora_sft_run["params"]
    assert np.abs(sft_params["blocks/up_proj_lora_b"]).max() > 0
    # the next stage: full-parameter RL from the SFT-LoRA run gets base + merged adapters
    r = _tiny("rl")
    r.model.init_from = str(lora_sft_run["workdir"])
    cfg = experiment.model_config(typed(r))
    got = experiment.initial_params(typed(r), cfg, experiment.build_mesh(typed(r)))
    want = lora.merge(sft_params, lora_sft_run["cfg"].lora)
    assert set(got) == set(want)
    for k in want:  # the jitted merge against the eager one: float32 rounding may differ
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=1e-6,
                                   atol=1e-7)
    # a LoRA stage on top of it starts from the merged base with fresh adapters
    r.model.lora.rank = 4
    cfg = experiment.model_config(typed(r))
    got2 = experiment.initial_params(typed(r), cfg, experiment.build_mesh(typed(r)))
    np.testing.assert_array_equal(np.asarray(got2["blocks/q_proj"]),
                                  np.asarray(got["blocks/q_proj"]))
    assert not np.asarray(got2["blocks/q_proj_lora_b"]).any()
