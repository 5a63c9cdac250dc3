import jax
import jax.numpy as jnp
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from igpo_jax.rl import igpo

G = 64  # gen_length in these tests


def _hints(trace_len, revealable, eta, hc, seed=0, T=80):
    m = len(trace_len)
    trace = (np.arange(m * T).reshape(m, T) % 50 + 1).astype(np.int32)
    ids, mask = igpo.build_hints(jax.random.key(seed), jnp.asarray(trace),
                                 jnp.asarray(trace_len), jnp.asarray(revealable),
                                 jnp.asarray(eta, jnp.float32), G, hc)
    return trace, np.asarray(ids), np.asarray(mask)


def test_fixed_chunks_reveal_count_and_alignment():
    hc = igpo.IgpoConfig(min_chunk=5, max_chunk=5, reserve=10)
    # 40 revealable tokens -> 8 chunks; eta 0.5 hides int(8 * 0.5) = 4, reveals 4
    etas = [0.0, 0.25, 0.5, 0.6, 1.0]
    trace, ids, mask = _hints([50] * 5, [40] * 5, etas, hc)
    for row, eta in enumerate(etas):
        n_reveal = 8 - int(8 * (1 - eta) + 1e-6)
        assert mask[row].sum() == 5 * n_reveal
        chunks = mask[row, :40].reshape(8, 5)
        assert np.all(chunks.all(1) | ~chunks.any(1))  # whole chunks only
        assert not mask[row, 40:].any()  # answer span never revealed
        np.testing.assert_array_equal(ids[row][mask[row]], trace[row, :G][mask[row]])


def test_eta_one_reveals_everything_revealable():
    hc = igpo.IgpoConfig(min_chunk=3, max_chunk=7, reserve=10)
    trace, ids, mask = _hints([50, 50], [37, 20], [1.0, 1.0], hc, seed=3)
    for row, r in enumerate([37, 20]):
        e = mask[row].sum()
        assert mask[row, :e].all() and e <= r and e > r - 7  # a contiguous prefix


def test_budget_reserve_short_and_long_traces():
    hc = igpo.IgpoConfig(min_chunk=5, max_chunk=10, reserve=30, eta_low=1.0, eta_high=1.0)
    # budget = 34: a 80-token trace is cut there; a 4-token trace has no full chunk
    trace, ids, mask = _hints([80, 4, 0], [80, 4, 0], [1.0, 1.0, 1.0], hc, seed=1)
    assert not mask[:, 34:].any()
    assert mask[0].sum() >= 34 - 10 + 1 - 5
    assert not mask[1].any() and not mask[2].any()


def test_reveal_last_chunk_mode():
    hc = igpo.IgpoConfig(min_chunk=5, max_chunk=5, reserve=10, reveal_last_chunk=True)
    trace, ids, mask = _hints([30, 33], [0, 0], [0.0, 0.0], hc)
    np.testing.assert_array_equal(np.where(mask[0])[0], np.arange(25, 30))
    np.testing.assert_array_equal(np.where(mask[1])[0], np.arange(25, 30))  # 3 left over: dropped


def test_stretch_positions_keep_order_and_stay_in_budget():
    hc = igpo.IgpoConfig(min_chunk=4, max_chunk=6, reserve=8, position="stretch", max_gap=5)
    trace, ids, mask = _hints([30, 56], [30, 56], [1.0, 1.0], hc, seed=2)
    for row in range(2):
        assert not mask[row, G - 8:].any()
        # revealed tokens are the trace in order (positions only move right)
        got = ids[row][mask[row]]
        np.testing.assert_array_equal(got, trace[row, :len(got)])
    # every chunk revealed: no gaps to stretch and the first starts at 0, so the hint is
    # one contiguous run from position 0 (no holes inside contiguous hint text)
    pos = np.where(mask[0])[0]
    np.testing.assert_array_equal(pos, np.arange(len(pos)))


def _reference_stretch(chunks, length, budget, max_stretch, max_gap):
    """The reference code's placement, written as a plain loop (hand port; s as an exact
    fraction, where the reference's float product can round a whole number down)."""
    s = min(max(Fraction(budget, length), Fraction(1)), Fraction(max_stretch))
    out = []
    for i, (a, b) in enumerate(chunks):
        if i == 0:
            start = int(a * s)
        else:
            start = out[-1][1] + min(int((a - chunks[i - 1][1]) * s), max_gap)
        out.append((start, start + b - a))
    return out


def test_stretch_hand_worked():
    # y* of 20 tokens in chunks of 4, budget 30: s = 1.5. Revealed chunks 1, 2, 4:
    # [4,8) -> starts at floor(4 * 1.5) = 6; [8,12) is contiguous with it -> [10,14);
    # [16,20) has a gap of 4 -> 6 -> [20,24). With max_gap 5 the gap is 5 -> [19,23).
    starts = jnp.array([[0, 4, 8, 12, 16]])
    ends = starts + 4
    revealed = jnp.array([[False, True, True, False, True]])
    for gap_cap, want in ((100, [0, 2, 2, 0, 4]), (5, [0, 2, 2, 0, 3])):
        hc = igpo.IgpoConfig(position="stretch", max_gap=gap_cap)
        shift = igpo._stretch_shift(starts, ends, revealed, jnp.array([20]), 30, hc)
        np.testing.assert_array_equal(np.asarray(shift), [want])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=10), st.integers(0, 1023),
       st.integers(1, 120), st.integers(0, 12))
def test_stretch_matches_reference_loop(sizes, bits, budget, max_gap):
    ends = np.cumsum(sizes)
    starts = ends - np.asarray(sizes)
    revealed = np.array([(bits >> i) & 1 for i in range(len(sizes))], bool)
    length = int(ends[-1])
    hc = igpo.IgpoConfig(position="stretch", max_gap=max_gap)
    shift = np.asarray(igpo._stretch_shift(jnp.asarray(starts[None]), jnp.asarray(ends[None]),
                                           jnp.asarray(revealed[None]), jnp.array([length]),
                                           budget, hc))[0]
    chunks = [(int(a), int(b)) for a, b, r in zip(starts, ends, revealed) if r]
    want = _reference_stretch(chunks, length, budget, 1.5, max_gap)
    got = [(int(a + d), int(b + d)) for a, b, d, r in zip(starts, ends, shift, revealed) if r]
    assert got == want


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 80), st.integers(0, 80), st.floats(0, 1), st.integers(1, 6),
       st.integers(0, 6), st.integers(0, 40), st.sampled_from(igpo.POSITIONS),
       st.booleans(), st.integers(0, 1000))
def test_hint_properties(tlen, rlen, eta, min_c, extra, reserve, position, last, seed):
    hc = igpo.IgpoConfig(min_chunk=min_c, max_chunk=min_c + extra, reserve=reserve,
                         position=position, reveal_last_chunk=last)
    trace, ids, mask = _hints([tlen], [min(rlen, tlen)], [eta], hc, seed=seed)
    assert not mask[0, G - reserve:].any()
    assert mask[0].sum() <= min(tlen, G - reserve)
    assert (ids[0][~mask[0]] == 0).all()
    got = ids[0][mask[0]]
    np.testing.assert_array_equal(got, trace[0, np.where(mask[0])[0]] if position == "as_is"
                                  else got)
    if position == "as_is" and not last:
        assert not mask[0, min(rlen, tlen):].any()


def test_sample_etas_sorted_in_groups():
    eta = np.asarray(igpo.sample_etas(jax.random.key(0), 3, 8, 0.2, 0.6)).reshape(3, 8)
    assert (np.diff(eta, axis=1) >= 0).all() and eta.min() >= 0.2 and eta.max() <= 0.6


def test_all_wrong_groups():
    correct = jnp.array([0, 0, 0, 1, 0, 0, 0, 0], bool)
    np.testing.assert_array_equal(igpo.all_wrong_groups(correct, 4), [False, True])


@pytest.mark.parametrize("lam", [0.5, 0.25, 1.0])
def test_replacement_plan(lam):
    rng = np.random.default_rng(0)
    hinted_correct = rng.random((50, 8)) < 0.4
    hinted_correct[0] = False
    hinted_correct[1] = True
    take = np.asarray(igpo.plan_replacements(jax.random.key(1), jnp.asarray(hinted_correct), lam))
    k_max = int(lam * 8)
    for g in range(50):
        used = take[g][take[g] >= 0]
        assert len(used) == min(hinted_correct[g].sum(), k_max)
        assert len(set(used)) == len(used)
        assert hinted_correct[g][used].all()  # only correct hinted samples swapped in
    assert (take[0] == -1).all()
    # random choice of members: over many groups every member slot gets replaced
    assert len(set(np.where(take >= 0)[1])) == 8


def test_mix_groups():
    take = jnp.array([[-1, 2, -1, -1], [0, -1, -1, 3]])
    orig = {"ids": jnp.arange(8)[:, None] * jnp.ones((1, 3), jnp.int32), "r": jnp.zeros(8)}
    hinted = {"ids": 100 + orig["ids"], "r": jnp.ones(8)}
    out = igpo.mix_groups(take, orig, hinted)
    np.testing.assert_array_equal(out["ids"][:, 0], [0, 102, 2, 3, 104, 5, 6, 107])
    np.testing.assert_array_equal(out["r"], [0, 1, 0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(out["replaced"], [0, 1, 0, 0, 1, 0, 0, 1])


@pytest.mark.parametrize("tau", [0.2, 0.5, 1.0, 0.01])
def test_entropy_filter_against_numpy(tau):
    rng = np.random.default_rng(2)
    ent = rng.random((5, 30))
    hint = rng.random((5, 30)) < 0.5
    hint[3] = False
    keep = np.asarray(igpo.entropy_filter(jnp.asarray(ent), jnp.asarray(hint), tau))
    for r in range(5):
        assert keep[r][~hint[r]].all()  # non-hint tokens are never filtered
        n = hint[r].sum()
        if n == 0:
            continue
        k = max(1, int(np.floor(tau * n + 1e-6)))
        top = np.argsort(-np.where(hint[r], ent[r], -np.inf))[:k]
        want = ~hint[r]
        want[top] = True
        np.testing.assert_array_equal(keep[r], want)
