"""The model families by name (``model.family``): what sampling, log-probs, SFT, LoRA,
export and the dry run need from a model, looked up from ``TransformerConfig.family``.

Each family is one file exporting one ``Family`` (models/protocol.py): models/llada.py
and models/dream.py. It provides:

* its architecture switches over the shared Transformer (models/transformer.py) and its
  presets (``model.preset``; ``tiny`` and ``small`` are sizes of every family);
* parameters: ``param_specs(cfg)`` (name -> shape, logical axes), ``init_params``,
  ``init_adapters``, ``abstract_model``;
* the forward: ``hidden_states`` (final-normed, ``[B, L, d]``), ``logits_from_hidden``,
  and for the cached sampler ``hidden_states_and_kv`` / ``hidden_states_window``;
* its Hugging Face layout (tensor names, ``config.json`` keys both ways) and its chat
  format with the special tokens of its ``tokenizer.json``.

``logits_shift`` is 0 when the logits that predict token i are read at position i
(LLaDA), 1 when at position i-1 (Dream); :func:`predicting` and :func:`token_logits`
apply it, so callers never index positions themselves. See the README, "Adding a
model family".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from igpo_jax.models import dream, llada, transformer
from igpo_jax.models.lora import LoraSettings
from igpo_jax.models.protocol import Family
from igpo_jax.sections import Section, check, field, sub

FAMILIES: dict[str, Family] = {f.name: f for f in (llada.FAMILY, dream.FAMILY)}


def register(family: Family) -> None:
    """Adds a family (its name becomes a valid ``model.family``)."""
    FAMILIES[family.name] = family


def title(name: str) -> str:
    return FAMILIES[name].title if name in FAMILIES else name


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def of(cfg: transformer.TransformerConfig) -> Family:
    return get(cfg.family)


def presets() -> tuple[str, ...]:
    """Every ``model.preset``: the shared sizes, then each family's own."""
    return transformer.PRESETS + tuple(p for f in FAMILIES.values() for p in f.presets)


def family_of_preset(preset: str) -> str | None:
    """The family whose own preset this is (None for a shared size)."""
    return next((f.name for f in FAMILIES.values() if preset in f.presets), None)


def preset_config(name: str, preset: str, **kw) -> transformer.TransformerConfig:
    """The config of ``preset`` in family ``name``: a family's own preset (its full
    size, every id included), or a shared size with the family's switches; ``kw``
    overrides either."""
    fam = get(name)
    if preset in fam.presets:
        return transformer.TransformerConfig(**{**fam.switches, **fam.presets[preset], **kw})
    if preset not in transformer.PRESETS:
        raise ValueError(f"model.preset={preset!r} is not a size of every family "
                         f"{transformer.PRESETS} nor a {fam.title} preset {tuple(fam.presets)}")
    return getattr(transformer.TransformerConfig, preset)(**{**fam.switches, **kw})


def of_hf(hf: Mapping[str, Any]) -> Family:
    """The family whose ``config.json`` this is (Dream's say so; LLaDA's have d_model; a
    config without ``model_type`` is read as LLaDA's)."""
    for fam in FAMILIES.values():
        if fam.name != "llada" and fam.layout.matches(hf):
            return fam
    if FAMILIES["llada"].layout.matches(hf) or not hf.get("model_type"):
        return FAMILIES["llada"]
    raise ValueError(f"config.json of model_type {hf.get('model_type')!r}: not a family this "
                     f"package implements ({sorted(FAMILIES)})")


def predicting(cfg: transformer.TransformerConfig, hidden: jax.Array, start,
               length: int) -> jax.Array:
    """The hidden states whose logits predict the tokens at ``[start, start + length)``:
    those positions, or with a shift of one the positions before them (``start`` may
    be traced; it must be >= the shift)."""
    return jax.lax.dynamic_slice_in_dim(hidden, start - cfg.logits_shift, length, axis=1)


def token_logits(params, cfg: transformer.TransformerConfig, input_ids: jax.Array,
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
    and :func:`presets`)."""

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
        check(self.preset in presets() or self.hf_dir, "model.preset", self.preset,
              f"expected one of {presets()}, or set model.hf_dir")
        check(self.family in FAMILIES, "model.family", self.family,
              f"expected one of {sorted(FAMILIES)}")
        owner = family_of_preset(self.preset)
        check(self.hf_dir or owner is None or owner == self.family,
              "model.preset", self.preset,
              f"is a {owner} model but model.family={self.family!r}: set "
              f"--config.model.family={owner}")
