"""What a model family is: one :class:`Family` value, exported by the family's own file
(models/llada.py, models/dream.py) and registered by name in models/family.py.

A family is the shared Transformer (models/transformer.py) with its architecture
switches, plus everything that is the family's alone: its presets, its Hugging Face
layout (tensor names, which tensors are linear, ``config.json`` keys both ways), its
chat format and special tokens. A family with a different network passes its own
forward functions; they default to the shared Transformer's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from igpo_jax.models import transformer

Messages = Sequence[tuple[str, str]]  # (role, content) pairs


@dataclasses.dataclass(frozen=True)
class ChatFormat:
    """A family's chat template and the special tokens of its ``tokenizer.json``.

    ``render(messages, prefill)``: the text the family's ``tokenizer_config.json``
    template renders with the generation prompt, then ``prefill``. ``bos``, ``eos``,
    ``mask``, ``eot`` (end of turn): the tokens of those ids; ``markers``: the
    template's tokens that must be single tokens.
    """

    render: Callable[[Messages, str], str]
    bos: str
    eos: str
    mask: str
    eot: str
    markers: tuple[str, ...]


# the shared Transformer's linear kernels (models/transformer.py), stored [in, out] here
LINEARS = frozenset({"q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"})


def is_linear(name: str) -> bool:
    """Whether a parameter of the shared Transformer is a linear kernel (Hugging Face
    files store them ``[out, in]``, this package ``[in, out]``)."""
    return name == "lm_head" or name.split("/")[-1] in LINEARS


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a family's checkpoints are written by Hugging Face: tensor names,
    ``config.json`` keys, and which tensors are linear (``[out, in]`` there, ``[in, out]``
    here; by default the shared Transformer's kernels)."""

    tensor_name: Callable[[str, int | None], str]
    config_from_hf: Callable[..., transformer.TransformerConfig]
    config_to_hf: Callable[[transformer.TransformerConfig], dict]
    matches: Callable[[Mapping[str, Any]], bool]  # whether a config.json is this family's
    modelling_files: str  # the modelling code a Hugging Face folder of it ships
    is_linear: Callable[[str], bool] = is_linear


@dataclasses.dataclass(frozen=True)
class Family:
    name: str  # model.family
    title: str  # as printed ("LLaDA", "Dream")
    switches: dict  # TransformerConfig fields every model of the family has
    presets: dict  # model.preset -> TransformerConfig fields of the family's full sizes
    checkpoint: str  # the Hugging Face checkpoint of its presets (their weights)
    layout: Layout
    chat: ChatFormat
    param_specs: Callable = transformer.param_specs
    init_params: Callable = transformer.init_params
    init_adapters: Callable = transformer.init_adapters
    abstract_model: Callable = transformer.abstract_model
    hidden_states: Callable = transformer.hidden_states
    hidden_states_and_kv: Callable = transformer.hidden_states_and_kv
    hidden_states_window: Callable = transformer.hidden_states_window
    logits_from_hidden: Callable = transformer.logits_from_hidden
    forward: Callable = transformer.forward

