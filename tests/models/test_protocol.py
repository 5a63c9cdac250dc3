"""What a model family is (models/protocol.py): which parameters are linear kernels in
the Hugging Face layout, and a ``Family`` that names only its own parts runs on the
shared Transformer, while one that passes its own network is the one every caller
reaches through the registry."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

from igpo_jax.models import family, hf_io, llada, lora, protocol, transformer


def _tiny(**kw):
    return family.preset_config("llada", "tiny", **kw)


def test_is_linear_marks_exactly_the_matmul_kernels():
    cfg = _tiny(qkv_bias=True, lora=lora.LoraConfig(rank=2, alpha=4.0))
    names = set(transformer.param_specs(cfg))
    linear = {n for n in names if protocol.is_linear(n)}
    assert linear == {"lm_head"} | {f"blocks/{k}" for k in protocol.LINEARS}
    # embeddings, norms, biases and LoRA adapters are stored as they are
    for n in ("wte", "ln_f", "blocks/attn_norm", "blocks/ff_norm", "blocks/q_bias",
              "blocks/q_proj_lora_a", "blocks/q_proj_lora_b"):
        assert n in names and not protocol.is_linear(n), n


def test_the_hf_files_transpose_exactly_the_layouts_linear_tensors(tmp_path):
    """A written checkpoint holds ``[out, in]`` for what the layout calls linear and the
    parameter itself for the rest, under the layout's tensor names."""
    cfg = _tiny()
    params = {k: np.asarray(v) for k, v in llada.FAMILY.init_params(cfg, 0).items()}
    hf_io.save_hf_checkpoint(params, cfg, str(tmp_path), max_shard_bytes=None)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    layout = llada.FAMILY.layout
    assert layout.is_linear is protocol.is_linear  # the default: the shared kernels
    seen = set()
    for name, value in params.items():
        layers = range(cfg.n_layers) if name.startswith("blocks/") else [None]
        for i in layers:
            key = layout.tensor_name(name, i)
            got = tensors[key]
            want = value if i is None else value[i]
            np.testing.assert_array_equal(got, want.T if layout.is_linear(name) else want,
                                          err_msg=key)
            seen.add(key)
    assert seen == set(tensors)
    assert json.load(open(tmp_path / "config.json"))["d_model"] == cfg.d_model


def test_a_family_with_only_its_own_parts_runs_on_the_shared_transformer(monkeypatch):
    # only what a family must say; LLaDA's layout and chat format stand in for its own
    toy = protocol.Family(name="toy", title="Toy", switches=dict(family="toy"), presets={},
                          checkpoint="", layout=llada.FAMILY.layout, chat=llada.FAMILY.chat)
    for fn in ("param_specs", "init_params", "hidden_states", "logits_from_hidden", "forward"):
        assert getattr(toy, fn) is getattr(transformer, fn)
    monkeypatch.setattr(family, "FAMILIES", dict(family.FAMILIES))  # undone after the test
    family.register(toy)
    assert family.title("toy") == "Toy" and family.get("toy") is toy
    cfg = family.preset_config("toy", "tiny")
    assert cfg.family == "toy" and family.of(cfg) is toy
    ids = jnp.asarray(np.arange(12).reshape(2, 6) % cfg.vocab_size)
    params = toy.init_params(cfg, 0)
    ref_cfg = _tiny()
    np.testing.assert_array_equal(np.asarray(family.token_logits(params, cfg, ids)),
                                  np.asarray(family.token_logits(params, ref_cfg, ids)))


def test_a_family_that_passes_its_own_network_is_the_one_callers_reach(monkeypatch):
    def doubled(params, cfg, input_ids, attention_mask=None):
        return 2.0 * transformer.forward(params, cfg, input_ids, attention_mask)

    odd = dataclasses.replace(llada.FAMILY, name="odd", title="Odd",
                              switches=dict(family="odd"), presets={}, forward=doubled)
    monkeypatch.setattr(family, "FAMILIES", dict(family.FAMILIES))
    family.register(odd)
    cfg = family.preset_config("odd", "tiny")
    params = odd.init_params(cfg, 0)
    ids = jnp.asarray(np.arange(12).reshape(2, 6) % cfg.vocab_size)
    base = np.asarray(transformer.forward(params, cfg, ids))
    np.testing.assert_array_equal(np.asarray(family.token_logits(params, cfg, ids)), 2.0 * base)
    with pytest.raises(ValueError, match="model family 'nope'"):
        family.get("nope")
