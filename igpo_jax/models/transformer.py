"""The masked-diffusion Transformer every model family shares, in Flax NNX.

Architecture (docs/ALGORITHM.md section 1): bidirectional attention (no causal mask),
pre-norm RMSNorm computed in float32, NeoX rotary embeddings in float32, GQA,
SwiGLU MLP ``ff_out(silu(ff_proj(x)) * up_proj(x))``, final ``ln_f`` and an
untied output projection; no dropout, no timestep input. That is LLaDA's network;
a family switches on what differs (``TransformerConfig.qkv_bias``, ``logits_shift``,
``padded_positions``: Dream's). The families themselves (presets, Hugging Face
layout, chat format, special tokens) are models/llada.py and models/dream.py.

Layers are stored stacked (leading ``layers`` axis) and run under
``jax.lax.scan`` so that compile time does not grow with depth. The module only
holds parameters; the forward pass is the pure function :func:`forward` over a
dict of arrays, which is what jitted code (sampler, losses) calls.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from igpo_jax.models import lora as lora_lib
from igpo_jax.models.layers import (apply_rotary, attention, mask_positions,  # noqa: F401
                                    rms_norm, rotary_tables)

Params = dict[str, Any]

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def _dtype(name: str):
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(_DTYPES)}")
    return _DTYPES[name]


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Shape and numerics of a model. Validated at construction. The defaults are
    LLaDA-8B's."""

    vocab_size: int = 126464
    d_model: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None  # None: same as n_heads (MHA)
    mlp_hidden_size: int = 12288
    embedding_size: int | None = None  # rows of wte / lm head; None: vocab_size
    max_sequence_length: int = 4096
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    bos_token_id: int = 126080
    param_dtype: str = "float32"
    dtype: str = "float32"  # compute dtype of matmuls; norms, rotary and softmax stay float32
    remat: bool = False  # rematerialise each layer in the backward pass (training memory)
    lora: lora_lib.LoraConfig | None = None  # adapters on some linears (models/lora.py)
    # the model family (models/family.py): its Hugging Face layout, tokens and the
    # architecture switches below; "llada" is the plain Transformer
    family: str = "llada"
    qkv_bias: bool = False  # biases on the q, k, v projections (Qwen2-shaped: Dream)
    # 1: the logits that predict token i come from position i-1 (Dream, trained from an
    # autoregressive model); 0: from position i (LLaDA)
    logits_shift: int = 0
    # True: a padded row's positions count its real tokens (Dream's generation code);
    # False: positions are absolute, padding included (LLaDA's)
    padded_positions: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "mlp_hidden_size",
                     "max_sequence_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TransformerConfig.{name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"TransformerConfig: d_model={self.d_model} is not divisible by "
                             f"n_heads={self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"TransformerConfig: head_dim={self.head_dim} must be even for rotary")
        if self.kv_heads <= 0 or self.n_heads % self.kv_heads:
            raise ValueError(f"TransformerConfig: n_heads={self.n_heads} must be a multiple of "
                             f"n_kv_heads={self.n_kv_heads}")
        if self.vocab_rows < self.vocab_size:
            raise ValueError(f"TransformerConfig: embedding_size={self.embedding_size} is smaller "
                             f"than vocab_size={self.vocab_size}")
        for tok in ("mask_token_id", "eos_token_id", "bos_token_id"):
            if not 0 <= getattr(self, tok) < self.vocab_rows:
                raise ValueError(f"TransformerConfig.{tok}={getattr(self, tok)} is outside the "
                                 f"vocabulary of {self.vocab_rows} rows")
        _dtype(self.param_dtype)
        _dtype(self.dtype)
        if self.logits_shift not in (0, 1):
            raise ValueError(f"TransformerConfig.logits_shift={self.logits_shift}; expected 0 or 1")
        if self.lora is not None:
            _dtype(self.lora.param_dtype)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def vocab_rows(self) -> int:
        return self.embedding_size or self.vocab_size

    def replace(self, **kwargs) -> "TransformerConfig":
        return dataclasses.replace(self, **kwargs)

    def num_params(self) -> int:
        d, h, f = self.d_model, self.head_dim, self.mlp_hidden_size
        per_layer = 2 * d + d * d * 2 + 2 * d * self.kv_heads * h + 3 * d * f
        if self.qkv_bias:
            per_layer += d + 2 * self.kv_heads * h
        return self.n_layers * per_layer + 2 * self.vocab_rows * d + d

    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per token: 2 x matmul params + attention score/value matmuls."""
        d, f = self.d_model, self.mlp_hidden_size
        kv = self.kv_heads * self.head_dim
        matmul = self.n_layers * (2 * d * d + 2 * d * kv + 3 * d * f) + self.vocab_rows * d
        attention = self.n_layers * 2 * seq_len * d
        return 2.0 * (matmul + attention)

    # ---- sizes of every family (PRESETS below; a family's own presets are in its file)
    @classmethod
    def tiny(cls, **kw) -> "TransformerConfig":
        """A few-thousand-parameter model for unit tests (vocab 64, mask 63, eos 62, bos 61)."""
        base = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                    mlp_hidden_size=64, max_sequence_length=256, rope_theta=10000.0,
                    mask_token_id=63, eos_token_id=62, bos_token_id=61)
        base.update(kw)
        return cls(**base)

    @classmethod
    def small(cls, **kw) -> "TransformerConfig":
        """The sampler benchmark scale: d_model 256, 4 layers, 4 heads, vocab 512."""
        base = dict(vocab_size=512, d_model=256, n_layers=4, n_heads=4, n_kv_heads=4,
                    mlp_hidden_size=768, max_sequence_length=1024, rope_theta=10000.0,
                    mask_token_id=511, eos_token_id=510, bos_token_id=509)
        base.update(kw)
        return cls(**base)


# ---- parameter layout -----------------------------------------------------------------
# One place that names every parameter, its shape, its logical axes for sharding and
# its Hugging Face tensor. Linear kernels are stored [in, out] (HF stores [out, in]).
PRESETS = ("tiny", "small")  # TransformerConfig class methods, for every family: model.preset


def param_specs(cfg: TransformerConfig) -> dict[str, tuple[tuple[int, ...], tuple[str | None, ...]]]:
    """name -> (shape, logical axes). Names under ``blocks/`` carry a leading layer axis.
    With ``cfg.lora`` the adapters follow the base parameters (models/lora.py)."""
    d, n, f, v = cfg.d_model, cfg.n_layers, cfg.mlp_hidden_size, cfg.vocab_rows
    q, kv = cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    specs = {
        "wte": ((v, d), ("vocab", "embed")),
        "blocks/attn_norm": ((n, d), ("layers", "norm")),
        "blocks/q_proj": ((n, d, q), ("layers", "embed", "heads")),
        "blocks/k_proj": ((n, d, kv), ("layers", "embed", "kv_heads")),
        "blocks/v_proj": ((n, d, kv), ("layers", "embed", "kv_heads")),
        "blocks/attn_out": ((n, q, d), ("layers", "heads", "embed")),
        "blocks/ff_norm": ((n, d), ("layers", "norm")),
        "blocks/ff_proj": ((n, d, f), ("layers", "embed", "mlp")),
        "blocks/up_proj": ((n, d, f), ("layers", "embed", "mlp")),
        "blocks/ff_out": ((n, f, d), ("layers", "mlp", "embed")),
        "ln_f": ((d,), ("norm",)),
        "lm_head": ((d, v), ("embed", "vocab")),
    }
    if cfg.qkv_bias:
        specs.update({"blocks/q_bias": ((n, q), ("layers", "heads")),
                      "blocks/k_bias": ((n, kv), ("layers", "kv_heads")),
                      "blocks/v_bias": ((n, kv), ("layers", "kv_heads"))})
    if cfg.lora is not None:
        specs.update(lora_lib.adapter_specs(cfg.lora, specs))
    return specs


class _Blocks(nnx.Module):
    """The stacked per-layer parameters (leading axis = layer)."""


class Transformer(nnx.Module):
    """Holds the parameters (``nnx.Param`` per name of :func:`param_specs`).

    ``model(input_ids, attention_mask=None)`` returns float32 logits ``[B, L, V]``.
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        self.config = config
        pdt = _dtype(config.param_dtype)
        init = jax.nn.initializers.normal(0.02)
        self.blocks = _Blocks()
        for name, (shape, _) in param_specs(config).items():
            if lora_lib.is_adapter(name):
                value = lora_lib.init_value(name, shape, _dtype(config.lora.param_dtype),
                                            rngs.params())
            elif name.endswith("norm") or name == "ln_f":
                value = jnp.ones(shape, pdt)
            else:
                value = init(rngs.params(), shape, pdt)
            owner, attr = (self.blocks, name[7:]) if name.startswith("blocks/") else (self, name)
            setattr(owner, attr, nnx.Param(value))

    def param_dict(self) -> Params:
        """Plain ``{name: array}`` view (names of :func:`param_specs`) for jitted code."""
        flat = nnx.to_flat_state(nnx.state(self, nnx.Param))
        return {"/".join(map(str, path)): var[...] for path, var in flat}

    def load_param_dict(self, params: Mapping[str, jax.Array]) -> None:
        """Replaces the parameters in place (e.g. after a jitted update)."""
        for name, value in params.items():
            owner, attr = (self.blocks, name[7:]) if name.startswith("blocks/") else (self, name)
            getattr(owner, attr).set_value(value)

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
        return forward(self.param_dict(), self.config, input_ids, attention_mask)


# ---- the forward pass --------------------------------------------------------------------
def _linear(cfg: TransformerConfig, x: jax.Array, layer: Params, name: str,
            dropout_key: jax.Array | None = None) -> jax.Array:
    """``x @ W`` in x's dtype, plus the LoRA term when the layer carries ``name``'s adapter
    (adapter dropout only with a key: the training forward)."""
    y = x @ layer[name].astype(x.dtype)
    a = layer.get(name + lora_lib.SUFFIX_A)
    if a is None:
        return y
    key = None if dropout_key is None else jax.random.fold_in(dropout_key,
                                                              lora_lib.LINEARS.index(name))
    return y + lora_lib.delta(x, a, layer[name + lora_lib.SUFFIX_B], cfg.lora, key)


def _qkv(cfg: TransformerConfig, x: jax.Array, layer: Params, sin, cos, dropout_key=None):
    """Rotated queries [B, L, H, D] and keys, values [B, L, K, D] of one layer."""
    b, l, _ = x.shape
    h = rms_norm(x, layer["attn_norm"], cfg.rms_norm_eps)

    def proj(name, heads):
        y = _linear(cfg, h, layer, name + "_proj", dropout_key)
        if cfg.qkv_bias:
            y = y + layer[name + "_bias"].astype(y.dtype)
        return y.reshape(b, l, heads, cfg.head_dim)
    q, k, v = proj("q", cfg.n_heads), proj("k", cfg.kv_heads), proj("v", cfg.kv_heads)
    return apply_rotary(q, sin, cos), apply_rotary(k, sin, cos), v


def _finish_layer(cfg: TransformerConfig, x: jax.Array, a: jax.Array, layer: Params,
                  dropout_key=None) -> jax.Array:
    """Attention output projection, residual and the SwiGLU MLP."""
    b, l, _ = x.shape
    x = x + _linear(cfg, a.reshape(b, l, cfg.n_heads * cfg.head_dim), layer, "attn_out",
                    dropout_key)
    h = rms_norm(x, layer["ff_norm"], cfg.rms_norm_eps)
    gate = jax.nn.silu(_linear(cfg, h, layer, "ff_proj", dropout_key))
    up = _linear(cfg, h, layer, "up_proj", dropout_key)
    return x + _linear(cfg, gate * up, layer, "ff_out", dropout_key)


def _layer(cfg: TransformerConfig, x: jax.Array, layer: Params, sin, cos, bias) -> jax.Array:
    q, k, v = _qkv(cfg, x, layer, sin, cos)
    return _finish_layer(cfg, x, attention(q, k, v, bias), layer)


def attention_bias(attention_mask: jax.Array | None) -> jax.Array | None:
    """[B, L] bool (True = real token) -> additive float32 bias over keys."""
    if attention_mask is None:
        return None
    return jnp.where(attention_mask.astype(bool), 0.0, -1e30).astype(jnp.float32)


def _embed(params: Params, cfg: TransformerConfig, input_ids: jax.Array) -> jax.Array:
    return jnp.take(params["wte"], input_ids, axis=0).astype(_dtype(cfg.dtype))


def _stacked_layers(params: Params) -> Params:
    return {k.split("/", 1)[1]: v for k, v in params.items() if k.startswith("blocks/")}


def _rotary(cfg: TransformerConfig, seq_len: int, attention_mask: jax.Array | None):
    """The rotary tables: absolute positions, or per row from the padding
    (``cfg.padded_positions``)."""
    if cfg.padded_positions and attention_mask is not None:
        return rotary_tables(seq_len, cfg.head_dim, cfg.rope_theta,
                             mask_positions(attention_mask))
    return rotary_tables(seq_len, cfg.head_dim, cfg.rope_theta)


def _check_length(cfg: TransformerConfig, seq_len: int) -> None:
    if seq_len > cfg.max_sequence_length:
        raise ValueError(f"sequence of {seq_len} tokens exceeds max_sequence_length="
                         f"{cfg.max_sequence_length}")


def hidden_states(params: Params, cfg: TransformerConfig, input_ids: jax.Array,
                  attention_mask: jax.Array | None = None, return_kv: bool = False,
                  dropout_rng: jax.Array | None = None):
    """Final-normed hidden states ``[B, L, d_model]`` (compute dtype).

    ``dropout_rng``: the training forward's key for LoRA adapter dropout (no key, no
    dropout: sampling, old/reference log-probs, evaluation).

    With ``return_kv`` returns ``(hidden, (keys, values))``: every layer's rotated
    keys and values ``[n_layers, B, L, kv_heads, head_dim]``, the cache that
    :func:`hidden_states_window` attends to (sampling.py cache modes).
    """
    seq_len = input_ids.shape[1]
    _check_length(cfg, seq_len)
    x = _embed(params, cfg, input_ids)
    sin, cos = _rotary(cfg, seq_len, attention_mask)
    bias = attention_bias(attention_mask)

    def body(x, xs):
        layer, key = xs
        q, k, v = _qkv(cfg, x, layer, sin, cos, key)
        return _finish_layer(cfg, x, attention(q, k, v, bias), layer, key), (
            (k, v) if return_kv else None)

    if cfg.remat and not return_kv:
        body = jax.checkpoint(body, prevent_cse=False)
    keys = None if dropout_rng is None else jax.random.split(dropout_rng, cfg.n_layers)
    x, kv = jax.lax.scan(body, x, (_stacked_layers(params), keys))
    x = rms_norm(x, params["ln_f"], cfg.rms_norm_eps)
    return (x, kv) if return_kv else x


# ---- key/value caching for block-wise decoding (sampling.py cache modes) ------------------
def hidden_states_and_kv(params: Params, cfg: TransformerConfig, input_ids: jax.Array,
                         attention_mask: jax.Array | None = None):
    """``hidden_states(..., return_kv=True)``: ``(hidden, (keys, values))``."""
    return hidden_states(params, cfg, input_ids, attention_mask, return_kv=True)


def hidden_states_window(params: Params, cfg: TransformerConfig, window_ids: jax.Array, start,
                         kv_cache, attention_mask: jax.Array | None = None) -> jax.Array:
    """Hidden states of the positions ``[start, start + W)`` only, against a K/V cache.

    ``window_ids`` int32 ``[B, W]``; ``kv_cache`` from :func:`hidden_states_and_kv`
    over the full length ``L``; ``attention_mask`` bool ``[B, L]``. In every layer
    the window's own keys and values are computed fresh and written over the
    cache's at the window positions; all other positions use the cached ones. With
    a cache computed from the same tokens this equals ``hidden_states(...)`` at the
    window (tested); with a stale cache it is the Fast-dLLM approximation.
    """
    keys, values = kv_cache
    seq_len, w = keys.shape[2], window_ids.shape[1]
    x = _embed(params, cfg, window_ids)
    sin, cos = _rotary(cfg, seq_len, attention_mask)
    sin = jax.lax.dynamic_slice_in_dim(sin, start, w, axis=sin.ndim - 2)
    cos = jax.lax.dynamic_slice_in_dim(cos, start, w, axis=cos.ndim - 2)
    bias = attention_bias(attention_mask)

    def body(x, xs):
        layer, k_c, v_c = xs
        q, k, v = _qkv(cfg, x, layer, sin, cos)
        k = jax.lax.dynamic_update_slice_in_dim(k_c, k.astype(k_c.dtype), start, axis=1)
        v = jax.lax.dynamic_update_slice_in_dim(v_c, v.astype(v_c.dtype), start, axis=1)
        return _finish_layer(cfg, x, attention(q, k, v, bias), layer), None

    x, _ = jax.lax.scan(body, x, (_stacked_layers(params), keys, values))
    return rms_norm(x, params["ln_f"], cfg.rms_norm_eps)


def logits_from_hidden(params: Params, cfg: TransformerConfig, hidden: jax.Array) -> jax.Array:
    """Output projection: ``[..., d_model]`` -> float32 ``[..., vocab_size]``."""
    logits = jnp.dot(hidden, params["lm_head"].astype(hidden.dtype),
                     preferred_element_type=jnp.float32)
    return logits[..., : cfg.vocab_size] if cfg.vocab_rows != cfg.vocab_size else logits


def forward(params: Params, cfg: TransformerConfig, input_ids: jax.Array,
            attention_mask: jax.Array | None = None) -> jax.Array:
    """Pure forward pass: int32 ``[B, L]`` -> float32 logits ``[B, L, V]``."""
    return logits_from_hidden(params, cfg, hidden_states(params, cfg, input_ids, attention_mask))


def init_params(cfg: TransformerConfig, seed: int = 0) -> Params:
    """Random parameters (adapters included with ``cfg.lora``; the base ones do not
    depend on whether there are adapters)."""
    return Transformer(cfg, rngs=nnx.Rngs(seed)).param_dict()


def init_adapters(cfg: TransformerConfig, seed: int = 0) -> Params:
    """Fresh adapters only (for a base loaded from elsewhere); under jit the unused base
    initialisers are dead code."""
    return {k: v for k, v in init_params(cfg, seed).items() if lora_lib.is_adapter(k)}


def abstract_model(cfg: TransformerConfig) -> Transformer:
    """A model whose parameters are ShapeDtypeStructs (no memory allocated)."""
    return nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))


