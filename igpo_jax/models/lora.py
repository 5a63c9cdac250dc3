"""LoRA adapters on LLaDA's linear layers (docs/ALGORITHM.md section 7: r 128, alpha 64,
dropout 0.05 on the q, k, v and up projections).

A target linear ``W [in, out]`` gets ``A [in, r]`` and ``B [r, out]`` and computes
``x @ W + (alpha / r) * dropout(x) @ A @ B`` (the PEFT formulation: ``A`` uniform
in +-1/sqrt(in), ``B`` zero, so a fresh adapter changes nothing). Adapters live
in the model's flat parameter dict beside their base weight, stacked over layers
like it (``blocks/q_proj_lora_a [n_layers, in, r]``), and shard like it: ``A``'s
input axis as the base input axis, ``B``'s output axis as the base output axis.

* :func:`split` separates what is trained (the adapters, or every parameter when
  there are none) from what is frozen; the optimiser only ever sees the former.
* :func:`base` drops the adapters: the reference policy "with adapters off",
  the same arrays as the policy's base, no copy.
* :func:`merge` folds ``(alpha / r) A @ B`` into ``W`` for export.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from igpo_jax.sections import ConfigError, Section, check, field

LINEARS = ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")
SUFFIX_A, SUFFIX_B = "_lora_a", "_lora_b"


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    """Which linears get adapters, their rank, scale ``alpha / rank`` and input dropout."""

    rank: int
    alpha: float
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "up_proj")
    param_dtype: str = "float32"  # adapters (and so their AdamW moments) in float32
    # rollouts / evaluation fold the adapters into their base weights (cast to the
    # weights' dtype: with bfloat16 weights small adapter updates round away); False
    # samples with the adapters unmerged, the same function the log-probs use
    sample_merged: bool = True

    def __post_init__(self):
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.rank <= 0:
            raise ValueError(f"LoraConfig.rank={self.rank} must be positive")
        if self.alpha <= 0:
            raise ValueError(f"LoraConfig.alpha={self.alpha} must be positive")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoraConfig.dropout={self.dropout} must be in [0, 1)")
        unknown = [t for t in self.targets if t not in LINEARS]
        if not self.targets or unknown or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"LoraConfig.targets={self.targets}: expected a non-empty set of "
                             f"{LINEARS} (unknown: {unknown})")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def from_config(cls, m: Mapping[str, Any]) -> "LoraConfig | None":
        """``config.model.lora`` -> LoraConfig, or None when ``rank`` is 0 (no adapters)."""
        if not m["rank"]:
            return None
        targets = m["targets"]
        if isinstance(targets, str):
            targets = tuple(t.strip() for t in targets.split(",") if t.strip())
        return cls(rank=int(m["rank"]), alpha=float(m["alpha"]), dropout=float(m["dropout"]),
                   targets=tuple(targets), param_dtype=m["param_dtype"],
                   sample_merged=bool(m.get("sample_merged", True)))

    def to_dict(self) -> dict[str, Any]:
        return dict(rank=self.rank, alpha=self.alpha, dropout=self.dropout,
                    targets=list(self.targets), param_dtype=self.param_dtype)


def adapter_specs(lc: LoraConfig, base_specs: Mapping[str, tuple]) -> dict[str, tuple]:
    """name -> (shape, logical axes) of every adapter, from the base linears' specs."""
    out = {}
    for t in lc.targets:
        (n, d_in, d_out), (layers, in_axis, out_axis) = base_specs["blocks/" + t]
        out[f"blocks/{t}{SUFFIX_A}"] = ((n, d_in, lc.rank), (layers, in_axis, "lora_rank"))
        out[f"blocks/{t}{SUFFIX_B}"] = ((n, lc.rank, d_out), (layers, "lora_rank", out_axis))
    return out


def init_value(name: str, shape: tuple[int, ...], dtype, key: jax.Array) -> jax.Array:
    """``A`` uniform in +-1/sqrt(in) (PEFT's kaiming-uniform with a=sqrt(5)), ``B`` zero."""
    if name.endswith(SUFFIX_B):
        return jnp.zeros(shape, dtype)
    bound = shape[-2] ** -0.5
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def is_adapter(name: str) -> bool:
    return name.endswith(SUFFIX_A) or name.endswith(SUFFIX_B)


def split(params: Mapping[str, Any]) -> tuple[dict, dict]:
    """(trainable, frozen): the adapters and the rest, or (everything, {}) without adapters."""
    adapters = {k: v for k, v in params.items() if is_adapter(k)}
    if not adapters:
        return dict(params), {}
    return adapters, base(params)


def base(params: Mapping[str, Any]) -> dict:
    """The parameters without adapters (the same arrays: nothing is copied)."""
    return {k: v for k, v in params.items() if not is_adapter(k)}


def delta(x: jax.Array, a: jax.Array, b: jax.Array, lc: LoraConfig,
          key: jax.Array | None = None) -> jax.Array:
    """``scale * dropout(x) @ A @ B`` in x's dtype; dropout only when a key is given."""
    if key is not None and lc.dropout > 0:
        keep = jax.random.bernoulli(key, 1.0 - lc.dropout, x.shape)
        x = jnp.where(keep, x / (1.0 - lc.dropout), 0).astype(x.dtype)
    return ((x @ a.astype(x.dtype)) @ b.astype(x.dtype)) * jnp.asarray(lc.scale, x.dtype)


def merge(params: Mapping[str, Any], lc: LoraConfig | None) -> dict:
    """Base parameters with ``W + scale * A @ B`` (float32 product, cast to W's dtype)."""
    out = base(params)
    if lc is None:
        return out
    for t in lc.targets:
        name = "blocks/" + t
        a, b = params.get(name + SUFFIX_A), params.get(name + SUFFIX_B)
        if a is None or b is None:
            raise KeyError(f"LoRA adapter for {name} is missing from the parameters")
        w = out[name]
        d = jnp.einsum("nir,nro->nio", a.astype(jnp.float32), b.astype(jnp.float32),
                       precision=jax.lax.Precision.HIGHEST)
        out[name] = (w.astype(jnp.float32) + lc.scale * d).astype(w.dtype)
    return out


# jitted once for every caller that needs no particular output placement (sampling,
# export); the lora config is static
merge_jit = jax.jit(merge, static_argnums=1)


def merge_for_sampling(params: Mapping[str, Any], lc: LoraConfig | None):
    """Parameters for sampling: LoRA adapters folded into their base weights (a transient
    copy of the adapted weights), as sampling has no dropout and no gradients; the
    same object without adapters or with ``lc.sample_merged`` off. The sampler does this
    itself; callers that sample many batches from the same parameters (rollouts,
    evaluation) merge once up front."""
    if lc is None or not lc.sample_merged or not any(is_adapter(k) for k in params):
        return params
    return merge_jit(params, lc)


def count(params: Mapping[str, Any]) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable, _ = split(params)
    size = lambda t: sum(int(x.size) for x in t.values())  # noqa: E731
    return size(trainable), size(params)


@dataclasses.dataclass(frozen=True)
class LoraSettings(Section):
    """The config's ``model.lora`` section; :meth:`config` is the :class:`LoraConfig`
    (None at rank 0: no adapters)."""

    rank: int = field(0, "adapter rank (0 = no LoRA: full-parameter training)")
    alpha: float = field(64.0, "scale alpha / rank")
    dropout: float = field(0.0, "on the adapters' input, training forward only")
    targets: Any = field(
        "q_proj,k_proj,v_proj,up_proj",
        "comma-separated subset of q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out")
    param_dtype: str = field("float32", "the adapters' dtype (and so their AdamW moments')")
    sample_merged: bool = field(
        True, "sample from base + adapters folded together and cast to the base dtype (fast; with "
        "bfloat16 weights small adapter updates round away) | False: unmerged, exactly the "
        "policy the log-probs use")

    def __post_init__(self):
        check(self.rank >= 0, "model.lora.rank", self.rank, "must be >= 0 (0 = no LoRA)")
        try:
            LoraConfig.from_config(self)
        except ValueError as e:
            raise ConfigError(f"config.model.lora={self.to_dict()}: {e}") from None

    def config(self) -> "LoraConfig | None":
        return LoraConfig.from_config(self)
