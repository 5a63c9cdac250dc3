"""Fixed-step semi-autoregressive block denoising for masked diffusion LMs.

docs/ALGORITHM.md section 3, as one jit-compiled program: a ``lax.while_loop`` over blocks
(it stops early when every row's block is all EOS, if asked) around a loop over
the block's steps. Shapes are static; hints are clamped masks: written before
the first step, never masked, never counted, never overwritten.

Per step the Transformer runs, but the output projection, softmax and selection
run on the current block only: positions outside it can never be chosen (their
confidence is -inf in the reference), so this is exact and saves the
``[B, L, V]`` logits.

The mask token is never a candidate (its logit is excluded): writing it would
re-mask a position, which docs/ALGORITHM.md section 3 forbids. A trained LLaDA never predicts it, so
this changes nothing for real checkpoints.

Fast modes (training-free, after Fast-dLLM), selected per config:

* ``cache="prefix"``: a block's first step is a full forward that also stores
  every layer's keys and values; the block's later steps run the Transformer on
  ``[block start, end)`` only, attending to the stored keys/values of the prompt
  and finished blocks. The window shrinks block by block, so the block loop is
  unrolled (one static shape per block).
* ``cache="dual"``: the later steps run on the current block only; prompt,
  finished blocks and the still-masked suffix all come from the cache.
* ``unmask="threshold"``: each step unmasks every masked position whose
  confidence exceeds ``threshold``, at least one, and at least what the fixed
  schedule needs to finish the block within its step budget; a block stops as
  soon as nothing is masked, so the fixed step count is an upper bound.

In a bidirectional model the cached keys/values of other positions go stale as
the block changes (they are refreshed when the next block starts); that is the
approximation these modes trade for speed. ``cache="none", unmask="fixed"`` is
the exact sampler.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from igpo_jax import sharding as shd
from igpo_jax.models import family, lora, transformer
from igpo_jax.sampler_config import SamplerConfig
from igpo_jax.unmasking import (dream_transfer_tokens, num_transfer_tokens,  # noqa: F401
                                select_top, threshold_counts, top_p_logits)



@dataclasses.dataclass(frozen=True)
class _Static:
    model: transformer.TransformerConfig
    sampler: SamplerConfig
    mask_id: int
    eos_id: int


def _model_inputs(st: _Static, x, attn, prompt_len):
    """The rows the Transformer sees: with CFG, the batch plus its prompt-masked copy."""
    if st.sampler.cfg_scale <= 0:
        return x, attn
    prompt_pos = (jnp.arange(x.shape[1]) < prompt_len)[None, :] & attn
    un_x = jnp.where(prompt_pos, st.mask_id, x)
    return jnp.concatenate([x, un_x], axis=0), jnp.concatenate([attn, attn], axis=0)


def _head(params, st: _Static, h, b):
    """Block hidden states -> float32 logits ``[B, block_length, V]`` (CFG combined)."""
    logits = family.of(st.model).logits_from_hidden(params, st.model, h)
    if st.sampler.cfg_scale > 0:
        cond, un = logits[:b], logits[b:]
        logits = un + (st.sampler.cfg_scale + 1.0) * (cond - un)
    return logits.at[..., st.mask_id].set(-jnp.inf)


def _block_logits(params, st: _Static, x, attn, prompt_len, start):
    """float32 logits of the block at ``start`` from a full forward (no cache)."""
    xs, attn = _model_inputs(st, x, attn, prompt_len)
    h = family.of(st.model).hidden_states(params, st.model, xs, attn)
    h = family.predicting(st.model, h, start, st.sampler.block_length)
    return _head(params, st, h, x.shape[0])


def _refresh(params, st: _Static, x, attn, prompt_len, start):
    """Full forward at a block's first step: the block's logits and a fresh K/V cache."""
    xs, attn = _model_inputs(st, x, attn, prompt_len)
    h, cache = family.of(st.model).hidden_states_and_kv(params, st.model, xs, attn)
    h = family.predicting(st.model, h, start, st.sampler.block_length)
    return _head(params, st, h, x.shape[0]), cache, attn


def _window_logits(params, st: _Static, x, attn, cache, start, width, prompt_len):
    """The block's logits from a forward over ``[start, start + width)`` against ``cache``
    (with shifted logits the window starts one position earlier: that position's
    hidden state predicts the block's first token)."""
    s = st.model.logits_shift
    xw = jax.lax.dynamic_slice_in_dim(x, start - s, width + s, axis=1)
    if st.sampler.cfg_scale > 0:  # the unconditional half: prompt positions masked
        pos = start - s + jnp.arange(width + s)
        xw = jnp.concatenate([xw, jnp.where(pos[None] < prompt_len, st.mask_id, xw)], axis=0)
    h = family.of(st.model).hidden_states_window(params, st.model, xw, start - s, cache, attn)
    return _head(params, st, h[:, :st.sampler.block_length], x.shape[0])


@struct.dataclass
class DenoiseState:
    """The denoising loop's one carry, from the first block to the last (a
    ``flax.struct`` pytree): the sequence, the step that wrote each generated
    position (-1: not written by a step), the sampling key, the model calls so far,
    the next block, the next step of the current block (threshold decoding) and
    whether early stop was reached."""

    x: jax.Array  # int32 [B, P + G]
    order: jax.Array  # int32 [B, G]
    rng: jax.Array
    forward_passes: jax.Array  # int32 scalar
    block: jax.Array  # int32 scalar
    step: jax.Array  # int32 scalar
    done: jax.Array  # bool scalar


def _run_block(params, st: _Static, s: DenoiseState, blk, attn, hint_mask, p) -> DenoiseState:
    """Denoises block ``blk`` (a Python int under cache="prefix", else traced).

    Every mode takes the same random draws per step, so modes differ only through the
    logits they see.
    """
    sc = st.sampler
    bl, spb = sc.block_length, sc.steps_per_block
    nfe = s.forward_passes
    start = p + blk * bl
    hint_b = jax.lax.dynamic_slice_in_dim(hint_mask, blk * bl, bl, axis=1)
    xb0 = jax.lax.dynamic_slice_in_dim(s.x, start, bl, axis=1)
    n_masked = jnp.sum((xb0 == st.mask_id) & ~hint_b, axis=1)
    schedule = (dream_transfer_tokens(n_masked, spb) if sc.schedule == "dream"
                else num_transfer_tokens(n_masked, spb))  # [B, spb]
    # tokens the later steps unmask under the fixed schedule: the threshold floor.
    later = jnp.concatenate([jnp.cumsum(schedule[:, ::-1], axis=1)[:, ::-1][:, 1:],
                             jnp.zeros_like(schedule[:, :1])], axis=1)

    def masked_of(x):
        return (jax.lax.dynamic_slice_in_dim(x, start, bl, axis=1) == st.mask_id) & ~hint_b

    def update(i, s: DenoiseState, logits) -> DenoiseState:
        x, order = s.x, s.order
        rng, k_noise, k_rand = jax.random.split(s.rng, 3)
        scaled = logits / sc.temperature if sc.temperature > 0 else logits
        if sc.top_p < 1:
            scaled = top_p_logits(scaled, sc.top_p)
        if sc.temperature > 0:
            g = jax.random.gumbel(k_noise, logits.shape, jnp.float32)
            x0 = jnp.argmax(scaled + g, axis=-1)
        else:
            x0 = jnp.argmax(scaled, axis=-1)
        if sc.remasking == "low_confidence":
            probs = jax.nn.softmax(logits, axis=-1)
            conf = jnp.take_along_axis(probs, x0[..., None], axis=-1)[..., 0]
        elif sc.remasking == "entropy":
            # Dream: the negative entropy of the distribution sampled from (1e-10 as
            # Dream's epsilon inside the log)
            probs = jax.nn.softmax(scaled, axis=-1)
            conf = jnp.sum(probs * jnp.log(probs + 1e-10), axis=-1)
        else:
            conf = jax.random.uniform(k_rand, x0.shape, jnp.float32)
        masked = masked_of(x)
        if sc.unmask == "fixed":
            k = schedule[:, i]
        else:
            remaining = jnp.sum(masked, axis=1)
            k = threshold_counts(conf, masked, remaining - later[:, i], sc.threshold)
        conf = jnp.where(masked, conf, -jnp.inf)
        transfer = select_top(conf, k) & masked
        xb = jnp.where(transfer, x0.astype(jnp.int32),
                       jax.lax.dynamic_slice_in_dim(x, start, bl, axis=1))
        ob = jax.lax.dynamic_slice_in_dim(order, blk * bl, bl, axis=1)
        ob = jnp.where(transfer, blk * spb + i, ob)
        return s.replace(x=jax.lax.dynamic_update_slice_in_dim(x, xb, start, axis=1),
                         order=jax.lax.dynamic_update_slice_in_dim(order, ob, blk * bl, axis=1),
                         rng=rng)

    if sc.cache == "none":
        def logits_of(x):
            return _block_logits(params, st, x, attn, p, start)
        first = 0
    else:
        logits0, cache, attn2 = _refresh(params, st, s.x, attn, p, start)
        s = update(0, s, logits0)
        width = bl if sc.cache == "dual" else s.x.shape[1] - start  # prefix: static blk

        def logits_of(x):
            return _window_logits(params, st, x, attn2, cache, start, width, p)
        first = 1

    def step(i, s: DenoiseState) -> DenoiseState:
        return update(i, s, logits_of(s.x))

    if sc.unmask == "fixed":
        s = jax.lax.fori_loop(first, spb, step, s)
        return s.replace(forward_passes=nfe + spb)

    def cond(s: DenoiseState):
        return (s.step < spb) & jnp.any(masked_of(s.x))

    def body(s: DenoiseState) -> DenoiseState:
        return step(s.step, s).replace(step=s.step + 1)

    s = jax.lax.while_loop(cond, body, s.replace(step=jnp.int32(first)))
    return s.replace(forward_passes=nfe + s.step)


def _generate(params, prompt_ids, prompt_attn, hint_ids, hint_mask, rng, *, st: _Static):
    sc = st.sampler
    b, p = prompt_ids.shape
    bl = sc.block_length
    gen = jnp.where(hint_mask, hint_ids, st.mask_id).astype(jnp.int32)
    x = jnp.concatenate([prompt_ids.astype(jnp.int32), gen], axis=1)
    attn = jnp.concatenate([prompt_attn, jnp.ones((b, sc.gen_length), bool)], axis=1)

    def finished(x, blk):
        if not sc.early_stop:
            return jnp.asarray(False)
        return jnp.all(jax.lax.dynamic_slice_in_dim(x, p + blk * bl, bl, axis=1) == st.eos_id)

    s = DenoiseState(x=x, order=jnp.full((b, sc.gen_length), -1, jnp.int32), rng=rng,
                     forward_passes=jnp.int32(0), block=jnp.int32(0), step=jnp.int32(0),
                     done=jnp.asarray(False))
    if sc.cache == "prefix":
        # The window [block start, end) shrinks block by block: one static shape per
        # block, so the block loop is unrolled (early stop skips blocks via cond).
        for i in range(sc.num_blocks):
            def run(s: DenoiseState, i=i) -> DenoiseState:
                s = _run_block(params, st, s, i, attn, hint_mask, p)
                return s.replace(block=jnp.int32(i + 1), done=finished(s.x, i))
            s = jax.lax.cond(s.done, lambda s: s, run, s)
    else:
        def cond(s: DenoiseState):
            return (s.block < sc.num_blocks) & ~s.done

        def body(s: DenoiseState) -> DenoiseState:
            out = _run_block(params, st, s, s.block, attn, hint_mask, p)
            return out.replace(block=s.block + 1, done=finished(out.x, s.block))

        s = jax.lax.while_loop(cond, body, s)
    x = s.x
    if sc.early_stop:
        # positions after the last finished block become EOS (hints stay).
        pos = jnp.arange(sc.gen_length)[None, :]
        fill = s.done & (pos >= s.block * bl) & ~hint_mask
        x = x.at[:, p:].set(jnp.where(fill, st.eos_id, x[:, p:]))
    return x, s.order, s.forward_passes


_generate_jit = jax.jit(_generate, static_argnames=("st",))


def lower(params, model_cfg: transformer.TransformerConfig, sampler_cfg: SamplerConfig,
          prompt_ids, prompt_attn, hint_ids, hint_mask, rng) -> jax.stages.Lowered:
    """The program one sampler call runs, lowered for these inputs (arrays or
    ``jax.ShapeDtypeStruct`` with shardings) without running it: what the dry run
    compiles to plan memory and FLOPs. The same program as :func:`generate_params`
    with the config's mask and EOS ids (on merged weights: pass the base config)."""
    st = _Static(model_cfg, sampler_cfg, model_cfg.mask_token_id, model_cfg.eos_token_id)
    return _generate_jit.lower(params, prompt_ids, prompt_attn, hint_ids, hint_mask, rng, st=st)


@dataclasses.dataclass(frozen=True)
class Sample:
    """What one sampler call returns."""

    tokens: jax.Array  # int32 [B, P + gen_length]: the prompt followed by the completion
    order: jax.Array  # int32 [B, gen_length]: the global step that wrote each position
    #                   (-1 for hints and early-stop fill)
    nfe: Any  # int32 scalar (on the device until read): denoising steps run, each one
    #           model call (sampler steps at most)
    mode: str  # the sampler mode ("exact", "cache=dual,unmask=threshold0.9", ...)

    @property
    def forward_passes(self) -> int:
        """:attr:`nfe` as a Python int (reads it from the device)."""
        return int(self.nfe)

    def completions(self) -> jax.Array:
        """int32 ``[B, gen_length]``: the generated part."""
        return self.tokens[:, self.tokens.shape[1] - self.order.shape[1]:]


def generate_params(params: dict[str, Any], model_cfg: transformer.TransformerConfig, prompt_ids,
                    sampler_cfg: SamplerConfig, rng: jax.Array, *, mask_id: int | None = None,
                    eos_id: int | None = None, attention_mask=None, hint_ids=None,
                    hint_mask=None, mesh: jax.sharding.Mesh | None = None) -> Sample:
    """:func:`generate` on a parameter dict (what the trainer holds).

    Host (numpy) inputs are checked on the host and moved to the devices in one
    transfer; the result stays on the devices (``Sample.tokens``, ``Sample.nfe``)."""
    def host_or_device(x, dtype):
        return x.astype(dtype) if isinstance(x, jax.Array) else np.asarray(x, dtype)
    xp = jnp if isinstance(prompt_ids, jax.Array) else np
    prompt_ids = host_or_device(prompt_ids, np.int32)
    if prompt_ids.ndim != 2:
        raise ValueError(f"prompt_ids must be [batch, prompt_len], got shape {prompt_ids.shape}")
    b, p = prompt_ids.shape
    g = sampler_cfg.gen_length
    if p + g > model_cfg.max_sequence_length:
        raise ValueError(f"prompt_len {p} + gen_length {g} exceeds the model's "
                         f"max_sequence_length {model_cfg.max_sequence_length}")
    if (hint_ids is None) != (hint_mask is None):
        raise ValueError("pass hint_ids and hint_mask together (or neither)")
    if hint_ids is None:
        hint_ids = xp.zeros((b, g), np.int32)
        hint_mask = xp.zeros((b, g), bool)
    hint_ids, hint_mask = host_or_device(hint_ids, np.int32), host_or_device(hint_mask, bool)
    for name, arr in (("hint_ids", hint_ids), ("hint_mask", hint_mask)):
        if arr.shape != (b, g):
            raise ValueError(f"{name} must have shape [batch, gen_length] = {(b, g)}, "
                             f"got {arr.shape}")
    attn = (xp.ones((b, p), bool) if attention_mask is None
            else host_or_device(attention_mask, bool))
    st = _Static(model_cfg, sampler_cfg,
                 model_cfg.mask_token_id if mask_id is None else int(mask_id),
                 model_cfg.eos_token_id if eos_id is None else int(eos_id))
    if bool((hint_mask & (hint_ids == st.mask_id)).any()):
        raise ValueError("a hint position holds the mask token; hints must be real tokens")
    args = (prompt_ids, attn, hint_ids, hint_mask)
    if model_cfg.lora is not None and model_cfg.lora.sample_merged:
        params = lora.merge_for_sampling(params, model_cfg.lora)
        model_cfg = model_cfg.replace(lora=None)
        st = dataclasses.replace(st, model=model_cfg)
    if mesh is not None:
        params = shd.place(params, shd.tree_shardings(
            family.of(model_cfg).param_specs(model_cfg), mesh))
        args = shd.shard_batch(args, mesh)
    elif not all(isinstance(a, jax.Array) for a in args):
        args = jax.device_put(args)  # one transfer of the host inputs
    out, order, nfe = _generate_jit(params, *args, rng, st=st)
    return Sample(out, order, nfe, sampler_cfg.mode)


def generate(model: transformer.Transformer, prompt_ids, sampler: SamplerConfig,
             rng: jax.Array | None = None, *, hint_ids=None, hint_mask=None,
             attention_mask=None, mask_id: int | None = None, eos_id: int | None = None,
             mesh: jax.sharding.Mesh | None = None) -> Sample:
    """Samples completions for a batch of (left-padded) prompts with a model object:
    :func:`generate_params` on its parameters and config.

    Args:
      model: a :class:`transformer.Transformer`.
      prompt_ids: int32 ``[B, P]``; left-pad with any token and pass ``attention_mask``.
      sampler: the :class:`SamplerConfig` (lengths, steps, temperature, remasking,
        guidance, early stop, cache and unmasking modes).
      rng: a ``jax.random.key`` (default ``key(0)``); needed for temperature > 0 or
        random remasking.
      hint_ids, hint_mask: int32 / bool ``[B, gen_length]``: inpainting hints,
        clamped for the whole generation.
      attention_mask: bool ``[B, P]``, False at prompt padding.
      mask_id, eos_id: the ``[MASK]`` / EOS ids (default: the model config's).
      mesh: run sharded (batch over data/fsdp, model over tensor).

    Returns:
      a :class:`Sample`: ``tokens`` int32 ``[B, P + gen_length]`` (the prompt followed
      by the completion), ``order``, ``forward_passes`` and ``mode``.
    """
    rng = jax.random.key(0) if rng is None else rng
    return generate_params(model.param_dict(), model.config, prompt_ids, sampler, rng,
                           mask_id=mask_id, eos_id=eos_id, attention_mask=attention_mask,
                           hint_ids=hint_ids, hint_mask=hint_mask, mesh=mesh)
