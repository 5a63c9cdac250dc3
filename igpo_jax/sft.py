"""Supervised fine-tuning of a masked diffusion LM (docs/ALGORITHM.md section 2).

The prompt is never masked; each response token (EOS padding included, so the
model learns to stop) is masked with probability p = (1 - eps) t + eps; the loss
is the sum of CE / p over masked response tokens divided by the response length,
averaged over the batch. ``t_sampling = "stratified"`` draws the batch's t in
equal strata (lower-variance gradients, as LLaDA does for its likelihood
estimate); ``uniform`` is the plain recipe.

Length alignment: traces longer than the generation budget (``gen_length``
tokens with at least one EOS) are dropped or truncated (``sft.overlong``), and the
counts are reported. Rewritten traces can replace the originals through a JSONL
file of ``{"question", "trace"}`` rows (``sft.rewritten_path``).
"""

from __future__ import annotations

import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from igpo_jax import experiment, loop, optim, storage
from igpo_jax import sharding as shd
from igpo_jax.data import Example
from igpo_jax.data.batches import encode_prompts, index_iterator
from igpo_jax.data.sources import load_examples, read_json_rows
from igpo_jax.metrics import PipelinePosition, Progress
from igpo_jax.records import SFTRecord
from igpo_jax.models import family, transformer
from igpo_jax.sections import require
from igpo_jax.stage_sections import MASK_MODES, OVERLONG, T_SAMPLING, SFTConfig  # noqa: F401
from igpo_jax.tokenizers import Tokenizer

from igpo_jax.configlib import RunConfig

log = logging.getLogger(__name__)


def masked_sft_loss(params, cfg: transformer.TransformerConfig, prompt_ids, prompt_attn, target_ids,
                    noise_mask, p_mask, dropout_rng=None) -> jax.Array:
    """Sum over the batch of per-example losses (divide by the batch size).

    target_ids int32 ``[B, C]``, noise_mask bool ``[B, C]`` (response tokens to
    mask), p_mask float ``[B]`` (their masking probability). ``dropout_rng``: LoRA
    adapter dropout.
    """
    p = prompt_ids.shape[1]
    x = jnp.concatenate([prompt_ids, jnp.where(noise_mask, cfg.mask_token_id, target_ids)], 1)
    attn = jnp.concatenate([prompt_attn, jnp.ones(target_ids.shape, bool)], 1)
    fam = family.of(cfg)
    hidden = fam.hidden_states(params, cfg, x, attn, dropout_rng=dropout_rng)
    logits = fam.logits_from_hidden(params, cfg,
                                    family.predicting(cfg, hidden, p, target_ids.shape[1]))
    ce = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, target_ids[..., None], -1)[..., 0]
    p_tok = p_mask if p_mask.ndim == 2 else p_mask[:, None]
    per_example = (ce * noise_mask / p_tok).sum(1) / target_ids.shape[1]
    return per_example.sum()


def draw_noise(key, shape, eps: float = 1e-3, t_sampling: str = "uniform", mask: str = "iid",
               block_length: int = 0):
    """(noise_mask bool ``shape``, p_mask) with p = (1 - eps) t + eps.

    ``mask="iid"``: every response token masked with probability p; p_mask ``[B]``.
    ``mask="block"``: the conditions the block sampler decodes under: a block b drawn
    uniformly per example, blocks before it clean, its tokens masked with probability
    p, every later block fully masked; p_mask ``[B, C]`` is each token's masking
    probability (p in block b, 1 after it) so the loss stays a 1/p-weighted CE.
    ``mask="mixed"``: each example iid or block with probability 1/2.
    """
    if mask != "iid":
        noise, p = draw_noise(key, shape, eps, t_sampling)
        b, c = shape
        if not block_length or c % block_length:
            raise ValueError(f"sft.mask={mask!r} needs a block_length that divides {c}")
        k_b, k_mix = jax.random.split(jax.random.fold_in(key, 2))
        blk = jax.random.randint(k_b, (b, 1), 0, c // block_length)
        pos_blk = (jnp.arange(c) // block_length)[None, :]
        blk_noise = jnp.where(pos_blk < blk, False, jnp.where(pos_blk == blk, noise, True))
        blk_p = jnp.where(pos_blk == blk, p[:, None], 1.0)
        use = (jnp.ones((b, 1), bool) if mask == "block"
               else jax.random.bernoulli(k_mix, 0.5, (b, 1)))
        return (jnp.where(use, blk_noise, noise),
                jnp.where(use, blk_p, jnp.broadcast_to(p[:, None], shape)))
    """(noise_mask bool ``shape``, p_mask ``[B]``) with p = (1 - eps) t + eps."""
    k_t, k_m = jax.random.split(key)
    b = shape[0]
    u = jax.random.uniform(k_t, (b,))
    if t_sampling == "stratified":
        t = (jnp.arange(b) + u) / b
        t = jax.random.permutation(jax.random.fold_in(k_t, 1), t)
    elif t_sampling == "uniform":
        t = u
    else:
        raise ValueError(f"sft.t_sampling={t_sampling!r}; expected uniform or stratified")
    p = (1.0 - eps) * t + eps
    return jax.random.uniform(k_m, shape) < p[:, None], p


def align_lengths(tok: Tokenizer, examples: list[Example], gen_length: int, overlong: str
                  ) -> tuple[list[Example], dict]:
    """Drops or truncates traces that do not fit ``gen_length`` tokens plus one EOS."""
    if overlong not in OVERLONG:
        raise ValueError(f"sft.overlong={overlong!r}; expected drop or truncate")
    kept, counts = [], {"examples": len(examples), "overlong": 0, "no_trace": 0}
    for e in examples:
        if not e.trace:
            counts["no_trace"] += 1
            continue
        if len(tok.encode(e.trace)) >= gen_length:
            counts["overlong"] += 1
            if overlong == "drop":
                continue
        kept.append(e)
    counts["kept"] = len(kept)
    if not kept:
        raise ValueError(f"no SFT example fits gen_length={gen_length} ({counts})")
    return kept, counts


def apply_rewritten(examples: list[Example], path: str) -> tuple[list[Example], int]:
    """Replaces traces by rewritten ones keyed by question (JSONL ``question``, ``trace``)."""
    table = {}
    for line, row in read_json_rows(path):
        if isinstance(row, Exception) or not isinstance(row, dict) or \
                not row.get("question") or not row.get("trace"):
            raise ValueError(f"{path}:{line}: expected an object with 'question' and 'trace'")
        table[row["question"]] = row["trace"]
    out = [Example(e.question, e.answer, table.get(e.question, e.trace), e.meta)
           for e in examples]
    return out, sum(e.question in table for e in examples)


def make_step(cfg, tx, n_micro: int, eps: float, t_sampling: str, trainable, opt_state,
              mask: str = "iid", block_length: int = 0):
    """jit: (trainable, opt_state, frozen, batch, key) -> (trainable, opt_state, out);
    the noise levels and masks of the whole batch come from ``key``."""
    def make_loss(batch, key):
        noise, p = draw_noise(key, batch["target"].shape, eps, t_sampling, mask, block_length)
        batch = dict(batch, noise=noise, p=p)
        denom = batch["target"].shape[0]

        def loss_fn(prm, mb, dropout_key):
            return masked_sft_loss(prm, cfg, mb["prompt"], mb["attn"], mb["target"],
                                   mb["noise"], mb["p"], dropout_rng=dropout_key) / denom, {}
        return loss_fn, batch
    return optim.make_update_step(make_loss, tx, n_micro, trainable, opt_state)


def train(c: RunConfig | ml_collections.ConfigDict, workdir: str, stop_after: int | None = None,
          *, position: PipelinePosition | None = None) -> dict:
    """Runs (or resumes) SFT of config ``c`` in ``workdir``."""
    c = require(c, "sft.train")
    sft, s = c.sft, c.sampler
    parts = experiment.ModelParts(c)
    mesh, tok, cfg = parts.mesh, parts.tok, parts.cfg
    examples = load_examples(c.data.to_dict(), "train")
    if sft.rewritten_path:
        examples, n_rw = apply_rewritten(examples, sft.rewritten_path)
        log.info("replaced %d traces from %s", n_rw, sft.rewritten_path)
    examples, counts = align_lengths(tok, examples, s.gen_length, sft.overlong)
    log.info("SFT data: %s (overlong traces %s)", counts,
             "dropped" if sft.overlong == "drop" else "truncated")
    if jax.process_index() == 0:
        storage.makedirs(workdir)
        storage.write_text(os.path.join(workdir, "sft_data.json"), json.dumps(counts))
    prompts, attn = encode_prompts(tok, examples, s.prompt_len, c.data.system_prompt or None)
    targets = np.stack([tok.completion_ids(e.trace, s.gen_length) for e in examples])
    data_iter = index_iterator(len(examples), sft.batch_size, c.seed, jax.process_index(),
                               jax.process_count())
    ts = loop.start_training(c, workdir, parts.params, mesh, sft.num_steps, data_iter, 1,
                                   "sft")
    schedule, trainable, frozen, opt_state = ts.schedule, ts.trainable, ts.frozen, ts.opt_state
    writer, start = ts.writer, ts.start
    if sft.batch_size % sft.micro_batch_size:
        raise ValueError(f"sft.batch_size={sft.batch_size} must be a multiple of "
                         f"sft.micro_batch_size={sft.micro_batch_size}")
    step_fn = make_step(cfg, ts.tx, sft.batch_size // sft.micro_batch_size, sft.eps,
                        sft.t_sampling, trainable, opt_state, sft.mask, s.block_length)
    key = jax.random.fold_in(jax.random.key(c.seed), 12345)
    end = sft.num_steps if stop_after is None else min(sft.num_steps, start + stop_after)
    progress = Progress(sft.num_steps, "sft", start, position=position)
    t0 = time.time()

    def sft_step(trainable, opt_state, step):
        idx = np.asarray(next(data_iter))
        batch = shd.shard_batch(dict(prompt=prompts[idx], attn=attn[idx], target=targets[idx]),
                                mesh)
        trainable, opt_state, out = step_fn(trainable, opt_state, frozen, batch,
                                            jax.random.fold_in(key, step))
        skipped = optim.check_finite(
            opt_state, c.optim.max_nonfinite, "sft", step + 1,
            (step // c.checkpoint.every) * c.checkpoint.every or None)
        if (step + 1) % c.log_every and step + 1 != end:
            return trainable, opt_state, None
        m = SFTRecord(step=step + 1, stage="sft", loss=float(out["loss"]),
                      grad_norm=float(out["grad_norm"]), lr=float(schedule(step)),
                      skipped_updates=skipped, seconds=time.time() - t0)
        writer.write(m.to_json())
        progress.update(step + 1, loss=m.loss)
        return trainable, opt_state, m

    trainable, opt_state, m = loop.run(ts, sft_step, stage="sft", end=end,
                                       checkpoint_every=c.checkpoint.every, data_iter=data_iter)
    return {"steps": end, "last": m.to_json() if m is not None else {}, "data": counts,
            "params": {**frozen, **trainable}}
