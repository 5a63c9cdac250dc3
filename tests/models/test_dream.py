"""Dream, the second model family: import of Dream's safetensors layout against a float64
numpy forward written from Dream's modelling code (q/k/v biases, GQA, RoPE, shifted
logits), export in exactly Dream's names and shapes, the sampler (exact and cached, with
hints) against the numpy step-by-step reference, log-probs and the SFT loss at the
shifted positions, LoRA, the chat template, and config checks."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import sampling, tokenizers
from igpo_jax.models import dream, family, hf_io, lora, transformer
from igpo_jax.rl import logprobs
from igpo_jax.sft import masked_sft_loss
from tests import reference as ref
from igpo_jax.configlib import typed

MASK, EOS = 63, 62


def _write(path, c, t, sharded=False):
    ref.write_hf_checkpoint(path, c, t, sharded=sharded)
    return hf_io.load_hf_checkpoint(path)


@pytest.fixture(scope="module")
def dream_model(tmp_path_factory):
    c = ref.dream_hf_config()
    t = ref.random_dream_weights(c, seed=5)
    return c, t, _write(tmp_path_factory.mktemp("dream"), c, t)


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
@pytest.mark.parametrize("sharded", [False, True], ids=["single_file", "sharded_files"])
def test_dream_checkpoint_logits_match_numpy(tmp_path, kv_heads, sharded):
    c = ref.dream_hf_config(kv_heads=kv_heads)
    t = ref.random_dream_weights(c, seed=kv_heads)
    model = _write(tmp_path, c, t, sharded)
    cfg = model.config
    assert (cfg.family, cfg.qkv_bias, cfg.logits_shift, cfg.kv_heads) == ("dream", True, 1,
                                                                           kv_heads)
    assert (cfg.mask_token_id, cfg.eos_token_id, cfg.rms_norm_eps) == (MASK, EOS, 1e-6)
    ids = np.random.default_rng(0).integers(0, 60, (2, 11)).astype(np.int32)
    want = ref.dream_numpy_forward(t, c, ids)
    atol = ref.f32_atol(ref.dream_path_config(c), 11, want)
    got = np.asarray(model(jnp.asarray(ids)))  # the raw forward: as Dream's model returns
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)
    shifted = np.asarray(family.token_logits(model.param_dict(), cfg, jnp.asarray(ids)))
    np.testing.assert_allclose(shifted, ref.dream_shift(want), atol=atol, rtol=0)
    # the biases matter: without them the logits differ by far more than rounding
    no_bias = {k: (v * 0 if k.endswith("_bias") else v) for k, v in model.param_dict().items()}
    assert np.abs(np.asarray(transformer.forward(no_bias, cfg, jnp.asarray(ids))) - want).max() > 1e-2


def test_padded_rows_give_dreams_logits(dream_model):
    """Padding anywhere in a row (left, middle, none): hidden from the keys, and the
    real tokens numbered as Dream's generation code numbers them (the count of real
    tokens before each), so every real position gets Dream's logits."""
    c, t, model = dream_model
    ids = np.random.default_rng(1).integers(0, 60, (3, 9)).astype(np.int32)
    attn = np.ones((3, 9), bool)
    attn[0, :3] = False  # left padding
    attn[1, 4:6] = False  # padding in the middle
    want = ref.dream_numpy_forward(t, c, ids, attention_mask=attn)
    params, cfg = model.param_dict(), model.config
    got = np.asarray(transformer.forward(params, cfg, jnp.asarray(ids), jnp.asarray(attn)))
    tol = ref.f32_atol(ref.dream_path_config(c), 9, want)
    np.testing.assert_allclose(got[attn], want[attn], atol=tol, rtol=0)
    # absolute positions (LLaDA's numbering): rotary scores depend on distances only,
    # so a row padded on the left (all real tokens shifted alike) or not at all gets the
    # same logits; padding in the middle changes distances and the logits
    absolute = np.asarray(transformer.forward(params, cfg.replace(padded_positions=False),
                                        jnp.asarray(ids), jnp.asarray(attn)))
    for row in (0, 2):
        np.testing.assert_allclose(absolute[row][attn[row]], want[row][attn[row]], atol=tol,
                                   rtol=0)
    assert np.abs(absolute[1][attn[1]] - want[1][attn[1]]).max() > 100 * tol
    # the cached window forward (sampler cache modes) numbers the window the same way
    hid, kv = transformer.hidden_states_and_kv(params, cfg, jnp.asarray(ids), jnp.asarray(attn))
    win = transformer.hidden_states_window(params, cfg, jnp.asarray(ids[:, 4:8]), 4, kv,
                                     jnp.asarray(attn))
    np.testing.assert_allclose(np.asarray(win), np.asarray(hid)[:, 4:8], atol=1e-5, rtol=0)


def test_config_defaults_follow_dreams_configuration_code():
    hf = ref.dream_hf_config(d=64, heads=32)  # 32 query heads: a multiple of the 32 KV heads
    for key in ("num_key_value_heads", "rope_theta", "max_position_embeddings"):
        hf.pop(key, None)
    cfg = dream.config_from_hf(hf)
    assert (cfg.kv_heads, cfg.rope_theta, cfg.max_sequence_length) == (32, 10000.0, 32768)
    assert dream.config_from_hf({**hf, "num_key_value_heads": None}).kv_heads == cfg.n_heads
    with pytest.raises(ValueError, match="hidden_act='gelu'"):
        dream.config_from_hf({**hf, "hidden_act": "gelu"})


def test_export_writes_dreams_names_shapes_and_config(dream_model, tmp_path):
    c, t, model = dream_model
    out = hf_io.save_hf_checkpoint(model, None, tmp_path / "out")
    assert out["files"] == ["model.safetensors"]
    from safetensors.numpy import load_file
    written = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert {k: v.shape for k, v in written.items()} == {k: v.shape for k, v in t.items()}
    for k in t:  # float32 export of float32 weights: bit-exact, transposes undone
        np.testing.assert_array_equal(written[k], t[k], err_msg=k)
    hf = json.load(open(tmp_path / "out" / "config.json"))
    assert hf["model_type"] == "Dream" and hf["architectures"] == ["DreamModel"]
    for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "vocab_size", "mask_token_id", "eos_token_id"):
        assert hf[k] == c[k], k
    assert hf["tie_word_embeddings"] is False and hf["auto_map"]["AutoModel"] == \
        "modeling_dream.DreamModel"
    again = hf_io.load_hf_checkpoint(tmp_path / "out")
    assert again.config == model.config


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_sampler_matches_numpy_reference_with_shift(dream_model, cache):
    c, t, model = dream_model
    rng = np.random.default_rng(2)
    prompt = rng.integers(0, 60, (3, 5)).astype(np.int32)
    hint_ids = rng.integers(0, 60, (3, 16)).astype(np.int32)
    hint_mask = np.zeros((3, 16), bool)
    hint_mask[0, [2, 3, 9]] = True
    hint_mask[2, 12:] = True
    want, _ = ref.numpy_generate(t, c, prompt, 16, 8, 8, MASK, hint_ids=hint_ids,
                                 hint_mask=hint_mask, cache=cache, dream=True)
    got = sampling.generate(model, prompt, sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.0, cache=cache), hint_ids=hint_ids, hint_mask=hint_mask).tokens
    np.testing.assert_array_equal(np.asarray(got), want)
    # and the shift is what makes it match: the unshifted model decodes differently
    unshifted = sampling.generate_params(
        model.param_dict(), model.config.replace(logits_shift=0), prompt,
        sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.0,
                               cache=cache), jax.random.key(0),
        hint_ids=hint_ids, hint_mask=hint_mask).tokens
    assert not np.array_equal(np.asarray(unshifted), want)


def test_logprobs_and_sft_loss_read_the_shifted_positions(dream_model):
    c, t, model = dream_model
    rng = np.random.default_rng(3)
    prompt = rng.integers(0, 60, (2, 4)).astype(np.int32)
    comp = rng.integers(0, 60, (2, 6)).astype(np.int32)
    attn = np.ones((2, 4), bool)
    params, cfg = model.param_dict(), model.config
    logp, ent = logprobs.completion_logprobs(params, cfg, jnp.asarray(prompt),
                                             jnp.asarray(attn), jnp.asarray(comp),
                                             with_entropy=True)
    x = np.concatenate([prompt, np.full_like(comp, MASK)], 1)
    lg = ref.dream_shift(ref.dream_numpy_forward(t, c, x))[:, 4:]
    lz = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    want = np.take_along_axis(lg, comp[..., None], -1)[..., 0] - lz
    atol = ref.f32_atol(ref.dream_path_config(c), 10, lg)
    np.testing.assert_allclose(np.asarray(logp), want, atol=2 * atol, rtol=0)
    p = np.exp(lg - lz[..., None])
    np.testing.assert_allclose(np.asarray(ent), lz - (p * lg).sum(-1), atol=4 * atol, rtol=0)
    # SFT: cross-entropy at the noised positions / p, from the shifted logits
    noise = rng.random((2, 6)) < 0.5
    noise[:, 0] = True
    pm = np.full((2,), 0.5, np.float32)
    loss = masked_sft_loss(params, cfg, jnp.asarray(prompt), jnp.asarray(attn),
                           jnp.asarray(comp), jnp.asarray(noise), jnp.asarray(pm))
    xs = np.concatenate([prompt, np.where(noise, MASK, comp)], 1)
    lg = ref.dream_shift(ref.dream_numpy_forward(t, c, xs))[:, 4:]
    lz = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    ce = lz - np.take_along_axis(lg, comp[..., None], -1)[..., 0]
    want_loss = ((ce * noise / 0.5).sum(1) / 6).sum()
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)


def test_lora_on_dream_merges_to_the_adapted_forward(dream_model):
    _, _, model = dream_model
    lc = lora.LoraConfig(rank=2, alpha=4.0, targets=("q_proj", "v_proj", "up_proj"))
    cfg = model.config.replace(lora=lc)
    adapters = family.of(cfg).init_adapters(cfg, 0)
    key = jax.random.key(1)
    adapters = {k: (jax.random.normal(jax.random.fold_in(key, i), v.shape) * 0.1
                    if k.endswith("_lora_b") else v) for i, (k, v) in enumerate(adapters.items())}
    params = {**model.param_dict(), **adapters}
    ids = jnp.asarray(np.random.default_rng(4).integers(0, 60, (2, 7)), jnp.int32)
    with_adapters = family.token_logits(params, cfg, ids)
    merged = family.token_logits(lora.merge(params, lc), cfg.replace(lora=None), ids)
    np.testing.assert_allclose(np.asarray(with_adapters), np.asarray(merged), atol=2e-4)
    assert np.abs(np.asarray(with_adapters) -
                  np.asarray(family.token_logits(model.param_dict(), model.config, ids))
                  ).max() > 1e-3


def test_chatml_template_and_dream_special_tokens(tmp_path):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    words = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>", "system\n",
             "user\n", "assistant\n", "\n", "You", "are", "a", "helpful", "assistant.", "hi",
             " "]
    vocab = {w: i for i, w in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"system\n|user\n|assistant\n|\n| "),
                                            behavior="isolated")
    tk.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"])
    tk.save(str(tmp_path / "tokenizer.json"))
    tok = tokenizers.load_tokenizer("hf", str(tmp_path), family="dream")
    v = vocab
    assert (tok.eos_id, tok.mask_id, tok.eot_id) == (v["<|endoftext|>"], v["<|mask|>"],
                                                     v["<|im_end|>"])
    ids = tok.prompt_ids("hi")
    system = [v["You"], v[" "], v["are"], v[" "], v["a"], v[" "], v["helpful"], v[" "],
              v["assistant."]]
    assert ids == ([v["<|im_start|>"], v["system\n"]] + system + [v["<|im_end|>"], v["\n"]]
                   + [v["<|im_start|>"], v["user\n"], v["hi"], v["<|im_end|>"], v["\n"]]
                   + [v["<|im_start|>"], v["assistant\n"]])
    assert tok.prompt_ids("hi", system_prompt="hi")[:3] == [v["<|im_start|>"], v["system\n"],
                                                            v["hi"]]
    with pytest.raises(ValueError, match="<\\|mask\\|>"):  # a LLaDA tokenizer is not Dream's
        ref_tok = tmp_path / "llada"
        ref_tok.mkdir()
        from tests.test_tokenizers import _tiny_hf_tokenizer
        _tiny_hf_tokenizer(ref_tok / "tokenizer.json")
        tokenizers.load_tokenizer("hf", str(ref_tok), family="dream")


def test_family_and_preset_checks(tmp_path, dream_model):
    from configs import tiny
    from igpo_jax import configlib, experiment
    c = tiny.get_config("rl")
    c.model.family = "dream"
    cfg = experiment.model_config(typed(c))
    assert (cfg.family, cfg.qkv_bias, cfg.logits_shift) == ("dream", True, 1)
    assert "blocks/q_bias" in family.of(cfg).param_specs(cfg)
    c.model.update(family="llada", preset="dream_7b")
    with pytest.raises(configlib.ConfigError, match="model.family=dream"):
        configlib.validate(c, check_paths=False)
    c.model.update(family="gpt", preset="tiny")
    with pytest.raises(configlib.ConfigError, match="model.family"):
        configlib.validate(c, check_paths=False)
    d = tmp_path / "d"
    ref.write_hf_checkpoint(d, ref.dream_hf_config(), dream_model[1])
    c.model.update(family="llada", hf_dir=str(d))
    with pytest.raises(ValueError, match="holds a dream model"):
        experiment.model_config(typed(c))
    big = family.preset_config("dream", "dream_7b")
    # Qwen2.5-7B's parameter count: 7.62B (embeddings and head untied)
    assert big.num_params() == sum(int(np.prod(s)) for s, _ in transformer.param_specs(big).values())
    assert abs(big.num_params() - 7.6156e9) < 1e6


@pytest.mark.slow
def test_tiny_pipeline_runs_on_a_dream_shaped_model(tmp_path):
    """configs/tiny.py with model.family=dream: SFT -> IGPO on a Dream-shaped toy
    model (biases, shifted logits), then --export_hf writes Dream's layout."""
    from configs import tiny
    from igpo_jax import export, pipeline, run
    from igpo_jax.checkpoint import load_params
    c = tiny.get_config()
    c.model.family = "dream"
    # SFT then IGPO only (GRPO's stage runs the same programs; tests/test_pipeline.py runs
    # the whole recipe)
    c.pipeline.stages = pipeline.recipe_stages(("igpo",))
    c.rl.num_steps = 2
    results = run.run(c, str(tmp_path / "p"))
    assert set(results) == {"sft", "igpo"}
    assert results["igpo"]["inpaint_trigger_rate"] > 0  # hints were planted
    rl = tiny.get_config("rl")
    rl.model.family = "dream"
    from igpo_jax import experiment
    cfg = experiment.model_config(typed(rl))
    like = family.of(cfg).init_params(cfg, 0)
    params, meta = load_params(str(tmp_path / "p" / "igpo" / "checkpoints"), like)
    assert meta["stage"] == "igpo" and "blocks/q_bias" in params
    sft, _ = load_params(str(tmp_path / "p" / "sft" / "checkpoints"), like)
    assert np.abs(np.asarray(params["blocks/q_bias"]) - np.asarray(sft["blocks/q_bias"])
                  ).max() > 0  # the biases train
    out = export.export(typed(rl), str(tmp_path / "p" / "igpo"), str(tmp_path / "hf"))
    hf = json.load(open(tmp_path / "hf" / "config.json"))
    assert hf["model_type"] == "Dream" and out["tensors"] == 3 + 12 * cfg.n_layers  # 2 norms, 4 + 3 biases, 3 MLP
    again = hf_io.load_hf_checkpoint(tmp_path / "hf")
    for k, v in params.items():
        np.testing.assert_array_equal(np.asarray(again.param_dict()[k]), np.asarray(v))
