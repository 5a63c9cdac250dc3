"""The augmentations (rl/augment.py): what GRPO and the resampling control do to a scored
batch, checked with a fake sampler and scorer whose every output is known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax.data import Example
from igpo_jax.rl import augment

G, P, C = 4, 3, 5


def _batch():
    """Two groups of G: group 0 all wrong (with a trace), group 1 with one right."""
    n = 2 * G
    correct = np.array([False] * G + [True, False, False, False])
    return augment.ScoredBatch(
        prompt_ids=np.arange(n * P, dtype=np.int32).reshape(n, P),
        prompt_attn=np.ones((n, P), bool),
        completion_ids=np.full((n, C), 7, np.int32), order=np.tile(np.arange(C), (n, 1)),
        rewards=correct.astype(np.float32), correct=correct,
        hint_mask=np.zeros((n, C), bool), texts=[f"old{i}" for i in range(n)],
        golds=[f"g{i // G}" for i in range(n)], stats=None)


def _examples(trace0="t"):
    return [Example("q0", "g0", trace0, "hops=2"), Example("q1", "g1", "t", "hops=3")]


def _fakes(right):
    """A sampler writing row j of its call as the completion ``[100 + j] * C`` and a
    scorer that calls the rows in ``right`` correct; both record their calls."""
    calls = {}

    def sample(prompt_ids, prompt_attn, key, h_ids, h_mask):
        calls["prompts"] = prompt_ids.copy()
        rows = len(prompt_ids)
        return (np.repeat(100 + np.arange(rows, dtype=np.int32)[:, None], C, 1),
                np.tile(np.arange(C, dtype=np.int32)[::-1], (rows, 1)))

    def score(comp, golds):
        calls["golds"] = list(golds)
        ok = np.isin(np.arange(len(comp)), right)
        return ok.astype(np.float32) * 2.0, ok, [f"new{j}" for j in range(len(comp))]
    return sample, score, calls


def _keys():
    return tuple(jax.random.split(jax.random.key(0), 4))


def test_grpo_leaves_the_batch_as_sampled():
    b, before = _batch(), _batch()
    sample, score, calls = _fakes([])
    stats = augment.make("grpo", group_size=G)(b, _examples(), sample, score, _keys())
    assert stats == augment.EMPTY_STATS and not calls
    np.testing.assert_array_equal(b.completion_ids, before.completion_ids)
    mask = augment.make("grpo", group_size=G).loss_mask(jnp.zeros((2, C)), jnp.ones((2, C), bool))
    assert bool(mask.all())


@pytest.mark.parametrize("right,lam,replaced", [([0, 2, 3], 0.5, 2), ([1], 0.5, 1),
                                                ([0, 1, 2, 3], 1.0, 4), ([], 0.5, 0)])
def test_resample_swaps_right_extra_completions_into_the_all_wrong_group(right, lam,
                                                                         replaced):
    b, before = _batch(), _batch()
    sample, score, calls = _fakes(right)
    stats = augment.make("resample", group_size=G, lam=lam)(b, _examples(), sample, score,
                                                            _keys())
    # only group 0 was resampled: its G prompts, its gold
    np.testing.assert_array_equal(calls["prompts"], before.prompt_ids[:G])
    assert calls["golds"] == ["g0"] * G
    # K = min(#right, floor(lam G)) members replaced, each by a distinct right completion
    swapped = [i for i in range(G) if b.completion_ids[i, 0] != 7]
    assert len(swapped) == replaced == stats["num_replaced"]
    sources = sorted(int(b.completion_ids[i, 0]) - 100 for i in swapped)
    assert len(set(sources)) == replaced and set(sources) <= set(right)
    for i in swapped:
        j = int(b.completion_ids[i, 0]) - 100
        assert b.correct[i] and b.rewards[i] == 2.0 and b.texts[i] == f"new{j}"
        np.testing.assert_array_equal(b.order[i], np.arange(C)[::-1])
    for i in set(range(G)) - set(swapped):  # kept members are untouched
        assert b.texts[i] == f"old{i}" and not b.correct[i]
    # group 1 (not all wrong) is untouched; no hint tokens without hints
    np.testing.assert_array_equal(b.completion_ids[G:], before.completion_ids[G:])
    assert b.texts[G:] == before.texts[G:] and not b.hint_mask.any()
    assert stats["inpaint_triggered"] == 1 and stats["hinted_samples"] == G
    assert stats["hinted_accuracy"] == pytest.approx(len(right) / G)
    assert stats["all_wrong_rescued"] == int(bool(right))
    assert stats["hinted_by_meta"] == {"hops=2": [len(right), G]}


def test_groups_without_a_trace_are_not_resampled():
    b = _batch()
    sample, score, calls = _fakes([0])
    stats = augment.make("resample", group_size=G)(b, _examples(trace0=""), sample, score,
                                                   _keys())
    assert stats == augment.EMPTY_STATS and not calls


def test_unknown_algorithm_is_named():
    with pytest.raises(ValueError, match=r"rl.algo='ppo'; expected one of \('grpo', 'igpo', "
                                         r"'resample'\)"):
        augment.make("ppo", group_size=G)
