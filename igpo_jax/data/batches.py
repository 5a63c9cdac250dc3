"""Batches: the grain index pipeline and the tokenisation of prompts, traces and hints.

The grain dataset runs over example indices (shuffled by seed, reshuffled every
epoch, sharded by process, batched); its iterator state is a small dict saved
in every checkpoint. Tokenisation happens on the host per batch.
"""

from __future__ import annotations

from typing import Sequence

import grain
import numpy as np

from igpo_jax.data import Example, split_trace
from igpo_jax.tokenizers import Tokenizer


def left_pad(prompts: list[list[int]], pad_id: int, length: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Token lists -> (ids int32 ``[B, P]``, attention mask bool ``[B, P]``), left-padded."""
    length = max(len(p) for p in prompts) if length is None else length
    ids = np.full((len(prompts), length), pad_id, np.int32)
    mask = np.zeros((len(prompts), length), bool)
    for i, p in enumerate(prompts):
        if len(p) > length:
            raise ValueError(f"prompt {i} has {len(p)} tokens, more than the length {length}")
        if p:
            ids[i, length - len(p):] = p
            mask[i, length - len(p):] = True
    return ids, mask


def local_index_iterator(num_examples: int, batch_size: int, seed: int, process_index: int = 0,
                         process_count: int = 1):
    """An endless grain iterator of this process's slice ``[batch_size / process_count]``
    of every global batch of example indices (shuffled by seed, reshuffled per epoch)."""
    if num_examples < batch_size:
        raise ValueError(f"{num_examples} examples are fewer than the batch size {batch_size}")
    if batch_size % process_count:
        raise ValueError(f"the global batch of {batch_size} does not divide over "
                         f"{process_count} processes")
    k = batch_size // process_count
    ds = grain.MapDataset.range(num_examples).shuffle(seed=seed).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    return iter(ds.map(lambda b: b[process_index * k:(process_index + 1) * k]))


class index_iterator:  # noqa: N801 (used like the grain iterator it wraps)
    """Global batches of example indices ``[batch_size]``, the same on every process:
    each process reads its own slice (:func:`local_index_iterator`) and the slices
    are all-gathered. ``get_state`` / ``set_state`` are the grain iterator's."""

    def __init__(self, num_examples: int, batch_size: int, seed: int, process_index: int = 0,
                 process_count: int = 1):
        self._it = local_index_iterator(num_examples, batch_size, seed, process_index,
                                        process_count)

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        from igpo_jax.distributed import gather_slices
        return gather_slices(np.asarray(next(self._it)))

    def get_state(self):
        return self._it.get_state()

    def set_state(self, state) -> None:
        self._it.set_state(state)


def prompt_ids(tok: Tokenizer, e: Example, system_prompt: str | None = None,
               protocol=None) -> list[int]:
    """A problem's prompt: the chat template over the question (and system prompt), or
    as an evaluation ``protocol`` (igpo_jax/protocols.py) builds it."""
    return protocol.prompt_ids(tok, e) if protocol else tok.prompt_ids(e.question, system_prompt)


def encode_prompts(tok: Tokenizer, examples: Sequence[Example], prompt_len: int,
                   system_prompt: str | None = None, protocol=None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded prompt ids and attention mask ``[B, prompt_len]``."""
    prompts = [prompt_ids(tok, e, system_prompt, protocol) for e in examples]
    too_long = [(e.meta or e.question[:40], len(p)) for e, p in zip(examples, prompts)
                if len(p) > prompt_len]
    if too_long:
        raise ValueError(f"{len(too_long)} prompts are longer than prompt_len={prompt_len} "
                         f"tokens (e.g. {too_long[0]}); raise sampler.prompt_len or filter them")
    return left_pad(prompts, tok.pad_id, prompt_len)


def check_lengths(tok: Tokenizer, examples: Sequence[Example], prompt_len: int,
                  gen_length: int | None = None, system_prompt: str | None = None,
                  skip_bad_rows: bool = False, label: str = "data",
                  protocol=None) -> list[Example]:
    """Every prompt against ``prompt_len`` tokens (and, with ``gen_length``, every
    trace against the generation budget: a longer one would be cut in hints), when the
    data is loaded rather than when a batch happens to draw the row. Stops with the
    counts and the first few rows (file:line for file sources); with
    ``skip_bad_rows`` drops them with a warning instead."""
    import logging
    log = logging.getLogger(__name__)
    bad_prompt, bad_trace, keep = [], [], []
    for i, e in enumerate(examples):
        n_p = len(prompt_ids(tok, e, system_prompt, protocol))
        n_t = len(tok.encode(e.trace)) if (gen_length and e.trace) else 0
        if n_p > prompt_len:
            bad_prompt.append((e.meta or f"row {i}", n_p))
        elif gen_length and n_t > gen_length:
            bad_trace.append((e.meta or f"row {i}", n_t))
        else:
            keep.append(e)
    if not bad_prompt and not bad_trace:
        return list(examples)
    parts = []
    if bad_prompt:
        parts.append(f"{len(bad_prompt)} prompts longer than sampler.prompt_len={prompt_len} "
                     f"tokens (e.g. {', '.join(f'{w}: {n}' for w, n in bad_prompt[:3])})")
    if bad_trace:
        parts.append(f"{len(bad_trace)} reasoning traces longer than sampler.gen_length="
                     f"{gen_length} tokens (e.g. {', '.join(f'{w}: {n}' for w, n in bad_trace[:3])})")
    msg = f"{label}: {len(examples)} rows, " + "; ".join(parts)
    if not skip_bad_rows:
        raise ValueError(msg + ". Raise the lengths, filter the data, or set "
                         "data.skip_bad_rows=True to drop these rows")
    if not keep:
        raise ValueError(msg + ": no row is left")
    log.warning("%s; dropped (data.skip_bad_rows=True)", msg)
    return keep


def encode_traces(tok: Tokenizer, examples: Sequence[Example], length: int,
                  exclude_last_step: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground-truth traces for hints: ids ``[B, length]`` (0-padded, truncated), the
    real lengths ``[B]`` and the revealable lengths ``[B]``."""
    ids = np.zeros((len(examples), length), np.int32)
    lens = np.zeros(len(examples), np.int32)
    revealable = np.zeros(len(examples), np.int32)
    for i, e in enumerate(examples):
        prefix, rest = split_trace(e.trace, exclude_last_step)
        p_ids, r_ids = tok.encode(prefix), tok.encode(rest)
        seq = (p_ids + r_ids)[:length]
        ids[i, :len(seq)] = seq
        lens[i] = len(seq)
        revealable[i] = min(len(p_ids), len(seq))
    return ids, lens, revealable
