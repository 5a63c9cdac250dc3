"""LLaDA (GSAI-ML/LLaDA-8B-Instruct, -Base): the family's presets, Hugging Face layout,
chat format and special tokens.

LLaDA's network is the shared Transformer of models/transformer.py with no switch on
(no biases, logits read at the position of the token they predict, absolute positions).
``LLaDAConfig`` is :class:`transformer.TransformerConfig` under the name the Python API
has always used.
"""

from __future__ import annotations

from typing import Any, Mapping

from igpo_jax.models import transformer
from igpo_jax.models.protocol import ChatFormat, Family, Layout, Messages

LLaDAConfig = transformer.TransformerConfig

NAME = "llada"
MASK_TOKEN = "<|mdm_mask|>"
EOT_TOKEN = "<|eot_id|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
BOS_TOKEN, EOS_TOKEN = "<|startoftext|>", "<|endoftext|>"
SWITCHES = dict(family=NAME)
PRESETS = {"llada_8b": {}}  # the TransformerConfig defaults are LLaDA-8B's


def chat_text(messages: Messages, prefill: str = "") -> str:
    """LLaDA-8B-Instruct's chat template: BOS, then per message
    ``<|start_header_id|>role<|end_header_id|>``, a blank line, the content stripped of
    surrounding whitespace (the template's ``| trim``) and ``<|eot_id|>``; the assistant
    header always follows, then ``prefill``."""
    turns = "".join(f"{HEADER_START}{role}{HEADER_END}\n\n{content.strip()}{EOT_TOKEN}"
                    for role, content in messages)
    return f"{BOS_TOKEN}{turns}{HEADER_START}assistant{HEADER_END}\n\n{prefill}"


# ---- names and config.json of the Hugging Face LLaDA layout --------------------------
def tensor_name(name: str, layer: int | None = None) -> str:
    """Our parameter name -> the Hugging Face LLaDA tensor name."""
    if name.startswith("blocks/"):
        return f"model.transformer.blocks.{layer}.{name.split('/', 1)[1]}.weight"
    return {"wte": "model.transformer.wte.weight", "ln_f": "model.transformer.ln_f.weight",
            "lm_head": "model.transformer.ff_out.weight"}[name]


def matches(hf: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` is LLaDA's (it has ``d_model``)."""
    return "d_model" in hf


def config_from_hf(hf: Mapping[str, Any], **overrides) -> LLaDAConfig:
    """Reads the keys of a Hugging Face LLaDA ``config.json``."""
    required = ("d_model", "n_layers", "n_heads", "vocab_size")
    missing = [k for k in required if k not in hf]
    if missing:
        raise ValueError(f"Hugging Face config is missing keys {missing}; "
                         f"expected a LLaDA config.json")
    kw = dict(
        vocab_size=hf["vocab_size"],
        d_model=hf["d_model"],
        n_layers=hf["n_layers"],
        n_heads=hf["n_heads"],
        n_kv_heads=hf.get("n_kv_heads"),
        mlp_hidden_size=hf.get("mlp_hidden_size") or 4 * hf["d_model"],
        embedding_size=hf.get("embedding_size"),
        max_sequence_length=hf.get("max_sequence_length", 4096),
        rope_theta=float(hf.get("rope_theta", 10000.0)),
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
        mask_token_id=hf.get("mask_token_id", 126336),
        eos_token_id=hf.get("eos_token_id", 126081),
        bos_token_id=hf.get("bos_token_id", 126080) if hf.get("bos_token_id") is not None
        else 126080,
    )
    if kw["bos_token_id"] >= (kw["embedding_size"] or kw["vocab_size"]):
        kw["bos_token_id"] = 0
    kw.update(overrides)
    return LLaDAConfig(**kw)


def config_to_hf(cfg: LLaDAConfig) -> dict[str, Any]:
    """``config.json`` keys of LLaDA's modelling code for this model."""
    return {
        "architectures": ["LLaDAModelLM"],
        "model_type": "llada",
        "d_model": cfg.d_model,
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "n_kv_heads": cfg.kv_heads,
        "mlp_hidden_size": cfg.mlp_hidden_size,
        "mlp_ratio": cfg.mlp_hidden_size // cfg.d_model,
        "vocab_size": cfg.vocab_size,
        "embedding_size": cfg.vocab_rows,
        "max_sequence_length": cfg.max_sequence_length,
        "rope_theta": cfg.rope_theta,
        "rms_norm_eps": cfg.rms_norm_eps,
        "mask_token_id": cfg.mask_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.eos_token_id,
        "bos_token_id": cfg.bos_token_id,
        "activation_type": "silu",
        "block_type": "llama",
        "layer_norm_type": "rms",
        "rope": True,
        "weight_tying": False,
        "include_bias": False,
        "attention_layer_norm": False,
        "multi_query_attention": None,
        # LLaDA's ModelConfig defaults that differ from this model (dropout 0.1,
        # GPT-2 sizes ...) are written out so that its modelling code builds it
        "attention_dropout": 0.0, "residual_dropout": 0.0, "embedding_dropout": 0.0,
        "rope_full_precision": True, "include_qkv_bias": False,
        "layer_norm_with_affine": True, "bias_for_layer_norm": False,
        "attention_layer_norm_with_affine": True, "scale_logits": False,
        "input_emb_norm": False, "alibi": False, "flash_attention": False,
        "block_group_size": 1, "use_cache": False,
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                     "AutoModel": "modeling_llada.LLaDAModelLM",
                     "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"},
    }


FAMILY = Family(
    name=NAME, title="LLaDA", switches=SWITCHES, presets=PRESETS,
    checkpoint="GSAI-ML/LLaDA-8B-Instruct",
    layout=Layout(tensor_name, config_from_hf, config_to_hf, matches,
                  "configuration_llada.py, modeling_llada.py"),
    chat=ChatFormat(chat_text, bos=BOS_TOKEN, eos=EOS_TOKEN, mask=MASK_TOKEN, eot=EOT_TOKEN,
                    markers=(HEADER_START, HEADER_END)))
