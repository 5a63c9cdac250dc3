"""The diffusion-LM protocol: what sampling, log-probs, SFT, LoRA, export and the dry
run need from a model family, selected by ``model.family`` (``LLaDAConfig.family``).

A family provides:

* parameters: ``param_specs(cfg)`` (name -> shape, logical axes), ``init_params``,
  ``init_adapters``, ``abstract_model``;
* the forward: ``hidden_states`` (final-normed, ``[B, L, d]``), ``logits_from_hidden``,
  and for the cached sampler ``hidden_states_and_kv`` / ``hidden_states_window``;
* ``logits_shift``: 0 when the logits that predict token i are read at position i
  (LLaDA), 1 when at position i-1 (Dream); :func:`predicting` and
  :func:`token_logits` apply it, so callers never index positions themselves;
* Hugging Face import/export (``hf_io.LAYOUTS``: tensor names, config.json keys) and
  special token ids (mask, EOS, BOS on the config; the chat template's tokens in
  tokenizers.py).

LLaDA and Dream share models/llada.py's Transformer (Dream adds q/k/v biases and the
shift through config fields), so both entries below point at it; a family with a
different forward registers its own functions with :func:`register`. See the README,
"Adding a model family".
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from igpo_jax.models import llada
from igpo_jax.models.lora import LoraSettings
from igpo_jax.sections import Section, check, field, sub


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    title: str  # as printed ("LLaDA", "Dream")
    preset: str  # the LLaDAConfig preset of its reference size (model.preset)
    features: dict  # LLaDAConfig fields every model of the family has
    param_specs: Callable = llada.param_specs
    init_params: Callable = llada.init_params
    init_adapters: Callable = llada.init_adapters
    abstract_model: Callable = llada.abstract_model
    hidden_states: Callable = llada.hidden_states
    hidden_states_and_kv: Callable = llada.hidden_states_and_kv
    hidden_states_window: Callable = llada.hidden_states_window
    logits_from_hidden: Callable = llada.logits_from_hidden
    forward: Callable = llada.forward


FAMILIES: dict[str, Family] = {
    "llada": Family("llada", "LLaDA", "llada_8b", llada.FAMILY_SWITCHES["llada"]),
    "dream": Family("dream", "Dream", "dream_7b",
                    dict(llada.FAMILY_SWITCHES["dream"], rms_norm_eps=1e-6)),
}


def register(family: Family) -> None:
    FAMILIES[family.name] = family


def title(name: str) -> str:
    return FAMILIES[name].title if name in FAMILIES else name


def of(cfg: llada.LLaDAConfig) -> Family:
    if cfg.family not in FAMILIES:
        raise ValueError(f"model family {cfg.family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[cfg.family]


def predicting(cfg: llada.LLaDAConfig, hidden: jax.Array, start, length: int) -> jax.Array:
    """The hidden states whose logits predict the tokens at ``[start, start + length)``:
    those positions, or with a shift of one the positions before them (``start`` may
    be traced; it must be >= the shift)."""
    return jax.lax.dynamic_slice_in_dim(hidden, start - cfg.logits_shift, length, axis=1)


def token_logits(params, cfg: llada.LLaDAConfig, input_ids: jax.Array,
                 attention_mask: jax.Array | None = None) -> jax.Array:
    """float32 logits ``[B, L, V]`` whose position i predicts token i, for every family
    (with a shift, position 0 keeps its own logits, as Dream's generation code does)."""
    logits = of(cfg).forward(params, cfg, input_ids, attention_mask)
    if cfg.logits_shift:
        logits = jnp.concatenate([logits[:, :1], logits[:, :-1]], axis=1)
    return logits


@dataclasses.dataclass(frozen=True)
class ModelOverrides(Section):
    """``model.overrides``: sizes over the preset's (0 = the preset's)."""

    d_model: int = field(0, "hidden size")
    n_layers: int = field(0, "transformer blocks")
    n_heads: int = field(0, "query heads")
    n_kv_heads: int = field(0, "key/value heads (GQA when fewer than n_heads)")
    mlp_hidden_size: int = field(0, "SwiGLU hidden size")
    max_sequence_length: int = field(0, "longest prompt + completion the model accepts")


@dataclasses.dataclass(frozen=True)
class ModelSettings(Section):
    """The config's ``model`` section (family and preset names from :data:`FAMILIES`
    and ``llada.PRESETS``)."""

    family: str = field(
        "llada",
        "llada | dream: the model family (models/family.py): architecture switches, Hugging Face"
        " layout, special tokens and chat template (an hf_dir's config.json decides)")
    preset: str = field(
        "tiny",
        "tiny | small (random init, sized by the tokenizer, in the family's shape) | llada_8b | "
        "dream_7b (random init at full size) ... unless hf_dir / init_from")
    hf_dir: str = field(
        "", "Hugging Face folder (config.json + safetensors) of a LLaDA or Dream model")
    init_from: str = field(
        "", "a workdir (or its checkpoints/ folder) of an earlier run, e.g. SFT")
    param_dtype: str = field("float32", "parameter storage dtype: float32 | bfloat16")
    dtype: str = field("float32", "compute dtype of the matmuls: float32 | bfloat16")
    remat: bool = field(
        False, "recompute each layer in the backward pass (less memory, more FLOPs)")
    overrides: ModelOverrides = sub(
        ModelOverrides, "model size over the preset (0 = the preset's value)")
    lora: LoraSettings = sub(
        LoraSettings,
        "LoRA (models/lora.py): rank 0 = train every parameter. With rank > 0 only the adapters "
        "are trained and checkpointed; the reference policy is the base model.")

    def __post_init__(self):
        check(self.preset in llada.PRESETS or self.hf_dir, "model.preset", self.preset,
              f"expected one of {llada.PRESETS}, or set model.hf_dir")
        check(self.family in FAMILIES, "model.family", self.family,
              f"expected one of {sorted(FAMILIES)}")
        big = {FAMILIES[f].preset: f for f in FAMILIES}
        check(self.hf_dir or self.preset not in big or big[self.preset] == self.family,
              "model.preset", self.preset,
              f"is a {big.get(self.preset)} model but model.family={self.family!r}: set "
              f"--config.model.family={big.get(self.preset)}")
