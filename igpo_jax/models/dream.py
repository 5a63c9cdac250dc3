"""Dream (Dream-org/Dream-v0-Instruct-7B, -Base-7B): the family's presets, Hugging Face
layout, chat format and special tokens.

Dream is a masked-diffusion LM initialised from Qwen2.5-7B: the same Transformer as
LLaDA here (pre-norm RMSNorm, NeoX rotary, GQA, SwiGLU, untied head, bidirectional
attention) plus biases on the q, k, v projections, and its logits are shifted by
one position: the prediction for token i is read at position i-1 (Dream's own
generation code shifts the logits right by one and keeps position 0's). The forward
pass is models/transformer.py's with ``qkv_bias=True`` and positions that count a
padded row's real tokens; the shift is applied by its users through models/family.py.
"""

from __future__ import annotations

from typing import Any, Mapping

from igpo_jax.models import transformer
from igpo_jax.models.protocol import ChatFormat, Family, Layout, Messages

NAME = "dream"
MASK_TOKEN = "<|mask|>"  # id 151666 in Dream's tokenizer
EOS_TOKEN = "<|endoftext|>"  # id 151643: end of text and padding
IM_START, IM_END = "<|im_start|>", "<|im_end|>"  # ChatML turns (Qwen2.5)
DEFAULT_SYSTEM = "You are a helpful assistant."
MODELLING_FILES = "configuration_dream.py, modeling_dream.py, generation_utils.py"
SWITCHES = dict(family=NAME, qkv_bias=True, logits_shift=1, padded_positions=True)
# Qwen2.5-7B-shaped (q/k/v biases, GQA 28/4, untied head); with model.hf_dir every size
# and id is read from its config.json instead
PRESETS = {"dream_7b": dict(
    vocab_size=152064, d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4,
    mlp_hidden_size=18944, max_sequence_length=131072, rope_theta=1000000.0,
    rms_norm_eps=1e-6, mask_token_id=151666, eos_token_id=151643, bos_token_id=151643)}


def chat_text(messages: Messages, prefill: str = "") -> str:
    """Dream's (Qwen2.5's) chat template: ChatML turns, with Qwen's default system turn
    when the first message is not one; the assistant turn opens, then ``prefill``."""
    msgs = list(messages)
    if not msgs or msgs[0][0] != "system":
        msgs.insert(0, ("system", DEFAULT_SYSTEM))
    turns = "".join(f"{IM_START}{role}\n{content}{IM_END}\n" for role, content in msgs)
    return f"{turns}{IM_START}assistant\n{prefill}"

_LAYER = {"attn_norm": "input_layernorm.weight", "ff_norm": "post_attention_layernorm.weight",
          "q_proj": "self_attn.q_proj.weight", "k_proj": "self_attn.k_proj.weight",
          "v_proj": "self_attn.v_proj.weight", "attn_out": "self_attn.o_proj.weight",
          "q_bias": "self_attn.q_proj.bias", "k_bias": "self_attn.k_proj.bias",
          "v_bias": "self_attn.v_proj.bias", "ff_proj": "mlp.gate_proj.weight",
          "up_proj": "mlp.up_proj.weight", "ff_out": "mlp.down_proj.weight"}
_TOP = {"wte": "model.embed_tokens.weight", "ln_f": "model.norm.weight",
        "lm_head": "lm_head.weight"}
def tensor_name(name: str, layer: int | None = None) -> str:
    """Our parameter name -> the tensor name in Dream's safetensors files."""
    if name.startswith("blocks/"):
        return f"model.layers.{layer}.{_LAYER[name.split('/', 1)[1]]}"
    return _TOP[name]


def matches(hf: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` is Dream's."""
    return str(hf.get("model_type", "")).lower() == "dream" or \
        "DreamModel" in (hf.get("architectures") or [])


def config_from_hf(hf: Mapping[str, Any], **overrides) -> transformer.TransformerConfig:
    """Every size and id from Dream's ``config.json``."""
    required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                "intermediate_size")
    missing = [k for k in required if k not in hf]
    if missing:
        raise ValueError(f"Dream config.json is missing keys {missing}")
    if hf.get("tie_word_embeddings"):
        raise ValueError("Dream config.json has tie_word_embeddings=true; this package "
                         "models the untied head of Dream-7B")
    if hf.get("rope_scaling"):
        raise ValueError(f"Dream config.json has rope_scaling={hf['rope_scaling']}; only "
                         f"plain rotary embeddings are implemented")
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"Dream config.json has hidden_act={act!r}; only 'silu' (SwiGLU, "
                         f"Dream-7B's) is implemented")
    eos = hf.get("eos_token_id", 151643)
    # a key the file omits takes the default of Dream's configuration code
    # (configuration_dream.DreamConfig): 32 KV heads, 32768 positions, rope_theta 1e4;
    # num_key_value_heads written as null means one KV head per query head there
    kv = hf.get("num_key_value_heads", 32)
    kw = dict(
        vocab_size=hf["vocab_size"], d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
        n_kv_heads=kv if kv is not None else hf["num_attention_heads"],
        mlp_hidden_size=hf["intermediate_size"],
        max_sequence_length=hf.get("max_position_embeddings", 32768),
        rope_theta=float(hf.get("rope_theta", 10000.0)),
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        mask_token_id=hf.get("mask_token_id", 151666), eos_token_id=eos,
        bos_token_id=hf.get("bos_token_id") if hf.get("bos_token_id") is not None else eos,
        **SWITCHES)
    kw.update(overrides)
    return transformer.TransformerConfig(**kw)


def config_to_hf(cfg: transformer.TransformerConfig) -> dict[str, Any]:
    """``config.json`` keys of Dream's modelling code for this model."""
    return {
        "architectures": ["DreamModel"],
        "model_type": "Dream",
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig",
                     "AutoModel": "modeling_dream.DreamModel"},
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.mlp_hidden_size,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads,
        "vocab_size": cfg.vocab_rows,
        "max_position_embeddings": cfg.max_sequence_length,
        "rope_theta": cfg.rope_theta,
        "rms_norm_eps": cfg.rms_norm_eps,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "rope_scaling": None,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "mask_token_id": cfg.mask_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.eos_token_id,
        "bos_token_id": cfg.bos_token_id,
    }


FAMILY = Family(
    name=NAME, title="Dream", switches=dict(SWITCHES, rms_norm_eps=1e-6), presets=PRESETS,
    checkpoint="Dream-org/Dream-v0-Instruct-7B",
    layout=Layout(tensor_name, config_from_hf, config_to_hf, matches,
                  MODELLING_FILES),
    chat=ChatFormat(chat_text, bos=EOS_TOKEN, eos=EOS_TOKEN, mask=MASK_TOKEN, eot=IM_END,
                    markers=(IM_START,)))
