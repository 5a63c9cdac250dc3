"""The synthetic tasks (data/synthetic.py): traces, disjoint splits, distinct held-out
problems, the pointer task."""

import pytest

from igpo_jax import rewards
from igpo_jax.data import answers
from igpo_jax.data import synthetic


def _parse_pointer(question):
    pairs, query = question.split(" |")
    succ = {a.lower(): b for a, b in (p.split(">") for p in pairs.split())}
    assert all(p[0].isupper() and p[2].islower() for p in pairs.split())
    start, hops = query.split(":")
    return succ, start, int(hops)


def test_synthetic_traces_are_correct_and_deterministic():
    exs = synthetic.generate(300, "train", seed=3, modulus=7, min_terms=2, max_terms=8)
    assert exs == synthetic.generate(300, "train", seed=3, modulus=7, min_terms=2, max_terms=8)
    assert exs != synthetic.generate(300, "train", seed=4, modulus=7, min_terms=2, max_terms=8)
    for e in exs:
        terms = [int(t) for t in e.question.split()]
        assert 2 <= len(terms) <= 8 and all(0 <= t < 7 for t in terms)
        lines = e.trace.split("<reasoning>\n")[1].split("\n</reasoning>")[0].split("\n")
        assert [int(x) for x in lines] == [sum(terms[:k + 1]) % 7 for k in range(len(terms))]
        assert e.answer == str(sum(terms) % 7)
        assert answers.extract_boxed(e.trace) == e.answer
        assert rewards.format_reward(e.trace) == 0.75


def test_synthetic_splits_are_disjoint():
    train = {e.question for e in synthetic.generate(2000, "train", modulus=5, max_terms=5)}
    test = {e.question for e in synthetic.generate(300, "test", modulus=5, max_terms=5)}
    assert train and test and not train & test
    with pytest.raises(ValueError, match="modulus"):
        synthetic.generate(10, "train", modulus=11)


def test_heldout_problems_are_distinct():
    """A held-out set counts problems, not copies: 2-term sums mod 5 have 25 problems in
    all, so a draw of 300 held-out rows must still hold 300 different questions."""
    test = synthetic.generate(300, "test", modulus=5, min_terms=2, max_terms=5)
    assert len({e.question for e in test}) == 300
    with pytest.raises(ValueError, match="distinct"):
        synthetic.generate(50, "test", modulus=2, min_terms=2, max_terms=2)


def test_pointer_task_traces_follow_the_cycle():
    exs = synthetic.generate(400, "train", seed=2, task="pointer", nodes=8, min_terms=1,
                             max_terms=7, weights=(1, 1, 1, 1, 1, 1, 1))
    assert exs == synthetic.generate(400, "train", seed=2, task="pointer", nodes=8,
                                     min_terms=1, max_terms=7, weights=(1, 1, 1, 1, 1, 1, 1))
    hops_seen = set()
    for e in exs:
        succ, start, hops = _parse_pointer(e.question)
        assert sorted(succ) == sorted(succ.values()) == list("abcdefgh")
        # one cycle through every node: 8 steps from any node return to it, fewer never do
        node, seen = start, []
        for _ in range(8):
            node = succ[node]
            seen.append(node)
        assert seen[-1] == start and len(set(seen)) == 8
        lines = e.trace.split("<reasoning>\n")[1].split("\n</reasoning>")[0].split("\n")
        assert lines == [f"{a}>{b}" for a, b in zip([start] + seen, seen[:hops])]
        assert e.answer == seen[hops - 1]
        assert e.meta == f"hops={hops}" and answers.extract_boxed(e.trace) == e.answer
        hops_seen.add(hops)
    assert hops_seen == set(range(1, 8))
    test = synthetic.generate(300, "test", task="pointer", nodes=8, min_terms=2, max_terms=7)
    assert len({e.question for e in test}) == 300
    assert not {e.question for e in test} & {e.question for e in exs}
    # pairs listed a>, b>, ... unless shuffled
    assert all([p[0] for p in e.question.split(" |")[0].split()] == list("ABCDEFGH")
               for e in exs)
    shuffled = synthetic.generate(50, "train", task="pointer", nodes=8, shuffle=True)
    assert any([p[0] for p in e.question.split(" |")[0].split()] != list("ABCDEFGH")
               for e in shuffled)
    with pytest.raises(ValueError, match="hops"):
        synthetic.generate(5, "train", task="pointer", nodes=8, min_terms=1, max_terms=8)
    with pytest.raises(ValueError, match="task"):
        synthetic.generate(5, "train", task="nope")


def test_the_old_heldout_draw_held_679_distinct_problems():
    """The README's re-reading of the running-sum sweep rests on this count: its 1,000
    held-out rows (drawn before held-out sets were made distinct) were 679 problems."""
    from benchmarks.distinct_reanalysis import old_heldout_rows
    rows = old_heldout_rows()
    assert len(rows) == 1000 and len(set(rows)) == 679
    two = [r for r in rows if len(r) == 2]
    assert len(two) == 117 and len(set(two)) == 4
    # the generator now draws distinct held-out problems from the same stream
    new = synthetic.generate(1000, "test", modulus=5, min_terms=2, max_terms=8)
    assert len({e.question for e in new}) == 1000
