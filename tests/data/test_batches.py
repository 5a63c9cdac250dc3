"""Batches (data/batches.py): the grain iterator's state and process sharding,
encoded traces and what hints may reveal."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import tokenizers
from igpo_jax.configlib import typed
from igpo_jax.data import Example, batches, format_trace, split_trace, synthetic
from igpo_jax.metrics import read_metrics


def test_grain_iterator_state_and_process_sharding():
    it = batches.index_iterator(10, 4, seed=1)
    first = [next(it).tolist() for _ in range(2)]
    state = it.get_state()
    nxt = next(it).tolist()
    it2 = batches.index_iterator(10, 4, seed=1)
    it2.set_state(state)
    assert next(it2).tolist() == nxt
    seen = [x for b in first for x in b]
    assert len(set(seen)) == 8
    # two processes read disjoint halves of the same global batch, in process order
    shard0 = next(batches.local_index_iterator(10, 4, 1, 0, 2)).tolist()
    shard1 = next(batches.local_index_iterator(10, 4, 1, 1, 2)).tolist()
    assert shard0 + shard1 == first[0]
    with pytest.raises(ValueError, match="does not divide over 3 processes"):
        batches.local_index_iterator(10, 4, 1, 0, 3)


def test_encode_traces_revealable():
    tok = tokenizers.SentencePieceTokenizer()
    e = synthetic.make_example([1, 2, 3], 5)
    ids, lens, rev = batches.encode_traces(tok, [e], 64, exclude_last_step=True)
    assert tok.decode(ids[0, :lens[0]]) == e.trace
    assert tok.decode(ids[0, :rev[0]]) == "<reasoning>\n1\n3\n"
    with pytest.raises(ValueError, match="prompt_len=2"):
        batches.encode_prompts(tok, [e], 2)


def test_hints_never_reveal_answer_markers_in_math_style_traces():
    """MATH / MetaMathQA reasoning boxes results before the answer span: nothing from
    the first marker on is revealable, so even full hints cannot state the answer."""
    from igpo_jax.rl import igpo
    sol = ("Let $a = 2$. Then $a^2 = \\boxed{4}$ and so the sum is 4 + 3 = 7. "
           "The answer is: 7")
    t = format_trace(sol, "7")
    rev, rest = split_trace(t)
    assert rev == "<reasoning>\nLet $a = 2$. Then $a^2 = " and rest.startswith("\\boxed{4}")
    tok = tokenizers.SentencePieceTokenizer()
    ids, lens, revl = batches.encode_traces(tok, [Example("q", "7", t)] * 4, 128)
    hc = igpo.IgpoConfig(min_chunk=1, max_chunk=3, reserve=0)
    for position in igpo.POSITIONS:
        h_ids, h_mask = igpo.build_hints(jax.random.key(0), jnp.asarray(ids), jnp.asarray(lens),
                                         jnp.asarray(revl), jnp.ones(4), 128,
                                         dataclasses.replace(hc, position=position))
        for row in range(4):
            shown = tok.decode(np.asarray(h_ids)[row][np.asarray(h_mask)[row]])
            assert shown and "boxed" not in shown and "answer" not in shown and "7" not in shown


def test_long_prompts_are_found_when_the_data_is_loaded(tmp_path, capsys):
    """A prompt longer than prompt_len stops the run before any step, with the count
    and file:line (not when its batch is drawn); skip_bad_rows drops it."""
    from configs import tiny
    from igpo_jax.rl import trainer
    rows = [{"question": "1 2", "answer": "3"}] * 6 + [{"question": "1 2 3 4 5 6 7 8 9", "answer": "0"}]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    c = tiny.get_config("rl")
    c.eval.every = 0
    c.rl.update(num_steps=1, algo="grpo", prompts_per_step=2)
    c.data.update(source="jsonl", train_path=str(path), test_path=str(path))
    with pytest.raises(ValueError, match=r"1 prompts longer than sampler.prompt_len=12 .*"
                                         r"train.jsonl:7"):
        trainer.train(typed(c), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken
    c.data.skip_bad_rows = True
    trainer.train(typed(c), str(tmp_path / "run"))
    assert {r["rollout_step"] for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl"))} == {1}
