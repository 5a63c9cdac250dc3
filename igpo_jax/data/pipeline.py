"""grain pipelines and tokenisation of batches.

The grain dataset runs over example indices (shuffled by seed, reshuffled every
epoch, sharded by process, batched); its iterator state is a small dict saved
in every checkpoint. Tokenisation happens on the host per batch.
"""

from __future__ import annotations

from typing import Sequence

import grain
import numpy as np

from igpo_jax.data import Example, split_trace
from igpo_jax.sampling import left_pad
from igpo_jax.tokenizers import Tokenizer


def index_iterator(num_examples: int, batch_size: int, seed: int, process_index: int = 0,
                   process_count: int = 1):
    """An endless grain iterator of int arrays ``[batch_size]`` of example indices."""
    ds = grain.MapDataset.range(num_examples)[process_index::process_count]
    if len(ds) < batch_size:
        raise ValueError(f"{len(ds)} examples on this process are fewer than the batch size "
                         f"{batch_size}")
    return iter(ds.shuffle(seed=seed).repeat().batch(batch_size, drop_remainder=True))


def encode_prompts(tok: Tokenizer, examples: Sequence[Example], prompt_len: int,
                   system_prompt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded prompt ids and attention mask ``[B, prompt_len]``."""
    prompts = [tok.prompt_ids(e.question, system_prompt) for e in examples]
    too_long = [(e.meta or e.question[:40], len(p)) for e, p in zip(examples, prompts)
                if len(p) > prompt_len]
    if too_long:
        raise ValueError(f"{len(too_long)} prompts are longer than prompt_len={prompt_len} "
                         f"tokens (e.g. {too_long[0]}); raise sampler.prompt_len or filter them")
    return left_pad(prompts, tok.pad_id, prompt_len)


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
