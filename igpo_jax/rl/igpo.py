"""IGPO: inpainting-guided exploration (docs/ALGORITHM.md section 5), vectorised in jnp.

1. :func:`all_wrong_groups` finds groups in which no completion is correct.
2. :func:`build_hints` cuts each ground-truth trace into random chunks and
   reveals a random eta share of them at their own (or stretched) positions.
3. The sampler fills the gaps around the clamped hints (``sampling.generate``).
4. :func:`plan_replacements` picks at most floor(lambda G) correct hinted
   completions per group and the members they replace; :func:`mix_groups`
   applies the plan, after which advantages are recomputed on the mixed group.
5. :func:`entropy_filter` keeps the top tau share of hint tokens by the old
   policy's entropy in the loss mask; non-hint tokens are always kept.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from igpo_jax.sections import Section, check, field

POSITIONS = ("as_is", "stretch")


@dataclasses.dataclass(frozen=True)
class IgpoConfig(Section):
    """The config's ``igpo`` section: how hints are built (:func:`build_hints` reads the
    chunk, eta, reserve and position fields), the replacement cap ``lam`` and the entropy
    filter's ``tau``."""

    min_chunk: int = field(5, "smallest hint chunk in tokens (a shorter last piece is dropped)")
    max_chunk: int = field(10, "largest hint chunk in tokens")
    eta_low: float = field(
        0.2, "each hinted sample reveals a share eta ~ U[eta_low, eta_high] ...")
    eta_high: float = field(0.6, "... of the revealable chunks (1, 1: full hints)")
    reserve: int = field(30, "free positions at the end of the generation, never hinted")
    position: str = field("as_is", "as_is (paper) | stretch (reference code: gaps scaled, capped)")
    max_gap: int = field(100, "stretch: a gap between revealed chunks grows to at most this")
    max_stretch: float = field(
        1.5, "stretch: gaps scale by s = budget / trace length, clipped to [1, max_stretch]")
    reveal_last_chunk: bool = field(
        False, "reference code: always reveal the last chunk (can leak)")
    exclude_last_step: bool = field(
        False, "never reveal the last reasoning line (it states the answer)")
    lam: float = field(0.5, "at most floor(lam G) members of a group are replaced")
    tau: float = field(0.2, "keep the top tau share of hint tokens by entropy (1 = no filter)")

    def __post_init__(self):
        check(0 <= self.eta_low <= self.eta_high <= 1, "igpo.eta_low/eta_high",
              (self.eta_low, self.eta_high), "need 0 <= eta_low <= eta_high <= 1")
        check(0 < self.lam <= 1, "igpo.lam", self.lam, "need 0 < lambda <= 1")
        check(0 < self.tau <= 1, "igpo.tau", self.tau,
              "need 0 < tau <= 1 (1 = no entropy filter)")
        check(1 <= self.min_chunk <= self.max_chunk, "igpo.min_chunk/max_chunk",
              (self.min_chunk, self.max_chunk), "need 1 <= min_chunk <= max_chunk")
        check(self.reserve >= 0, "igpo.reserve", self.reserve, "must be >= 0")
        check(self.position in POSITIONS, "igpo.position", self.position,
              f"expected {POSITIONS}")
        check(self.max_gap >= 0, "igpo.max_gap", self.max_gap, "must be >= 0")
        check(self.max_stretch >= 1, "igpo.max_stretch", self.max_stretch, "must be >= 1")


def all_wrong_groups(correct: jax.Array, group_size: int) -> jax.Array:
    """bool ``[N / G]``: groups with no correct completion. ``correct [N]`` by groups
    (numpy in, numpy out: the host-side bookkeeping of a step stays on the host)."""
    return ~correct.reshape(-1, group_size).any(axis=1)


def sample_etas(key: jax.Array, num_groups: int, group_size: int, low: float,
                high: float) -> jax.Array:
    """``[num_groups * group_size]`` eta ~ U[low, high], sorted ascending within a group."""
    eta = jax.random.uniform(key, (num_groups, group_size), minval=low, maxval=high)
    return jnp.sort(eta, axis=1).reshape(-1)


def _rank(values: jax.Array) -> jax.Array:
    """Rank of each entry along the last axis in ascending order (ties by index)."""
    order = jnp.argsort(values, axis=-1, stable=True)
    return jnp.argsort(order, axis=-1, stable=True)


def build_hints(key: jax.Array, trace_ids: jax.Array, trace_len: jax.Array,
                revealable_len: jax.Array, eta: jax.Array, gen_length: int,
                hc: IgpoConfig) -> tuple[jax.Array, jax.Array]:
    """Hints over the generation positions from ground-truth traces.

    Args:
      trace_ids: int32 ``[M, T]`` tokenised ground-truth completions (padded).
      trace_len: ``[M]`` real lengths.
      revealable_len: ``[M]`` tokens ``[0, R)`` that may be revealed (the answer span,
        and optionally the last step, lie after R).
      eta: ``[M]`` share of chunks to reveal.
    Returns:
      ``hint_ids`` int32 ``[M, gen_length]`` and ``hint_mask`` bool ``[M, gen_length]``.
    """
    m, t = trace_ids.shape
    budget = gen_length - hc.reserve
    if budget <= 0:
        raise ValueError(f"hint reserve {hc.reserve} leaves no room in gen_length {gen_length}")
    k_size, k_pick = jax.random.split(key)
    length = jnp.minimum(trace_len, budget)  # y* kept within gen_length - reserve
    max_chunks = -(-t // hc.min_chunk)
    sizes = jax.random.randint(k_size, (m, max_chunks), hc.min_chunk, hc.max_chunk + 1)
    ends = jnp.cumsum(sizes, axis=1)
    starts = ends - sizes
    ends_c = jnp.minimum(ends, length[:, None])
    valid = (starts < length[:, None]) & (ends_c - starts >= hc.min_chunk)
    n_valid = valid.sum(axis=1)
    idx = jnp.arange(max_chunks)[None, :]
    if hc.reveal_last_chunk:
        forced = valid & (idx == n_valid[:, None] - 1)
        candidate = valid & ~forced
    else:
        forced = jnp.zeros_like(valid)
        candidate = valid & (ends_c <= revealable_len[:, None])
    n_cand = candidate.sum(axis=1)
    # reference: hide int(n (1 - eta)) chunks, reveal the rest
    n_hide = jnp.floor(n_cand * (1.0 - eta) + 1e-6).astype(jnp.int32)
    n_reveal = n_cand - n_hide
    prio = jnp.where(candidate, jax.random.uniform(k_pick, (m, max_chunks)), jnp.inf)
    revealed = forced | (candidate & (_rank(prio) < n_reveal[:, None]))

    if hc.position == "stretch":
        shift = _stretch_shift(starts, ends_c, revealed, length, budget, hc)
    else:
        shift = jnp.zeros_like(starts)

    pos = jnp.arange(t)[None, :]
    chunk = jnp.clip(jax.vmap(lambda e: jnp.searchsorted(e, jnp.arange(t), side="right"))(ends),
                     0, max_chunks - 1)
    tok_revealed = (jnp.take_along_axis(revealed, chunk, axis=1)
                    & (pos < jnp.take_along_axis(ends_c, chunk, axis=1)))
    target = pos + jnp.take_along_axis(shift, chunk, axis=1)
    # never in the reserved tail (a chunk pushed past it is cut there, as the reference does)
    target = jnp.where(tok_revealed & (target < budget), target, gen_length)  # -> dropped
    rows = jnp.arange(m)[:, None]
    hint_ids = jnp.zeros((m, gen_length), jnp.int32).at[rows, target].set(trace_ids, mode="drop")
    hint_mask = jnp.zeros((m, gen_length), bool).at[rows, target].set(True, mode="drop")
    return hint_ids, hint_mask


def _stretch_shift(starts, ends, revealed, length, budget: int, hc: IgpoConfig) -> jax.Array:
    """Per chunk, how far the reference code's stretched placement moves it right.

    With s = clip(budget / |y*|, 1, max_stretch): the first revealed chunk starts at
    floor(start * s); every later one starts where the previous revealed chunk ends
    plus the gap between them in y*, scaled by s and capped at ``max_gap``. Contiguous
    revealed chunks stay contiguous. Integer arithmetic (floor(a * budget / length))
    so that no float rounding moves a chunk.
    """
    length = jnp.maximum(length, 1)[:, None]
    lo = budget <= length  # s clipped at 1
    hi = budget > hc.max_stretch * length  # s clipped at max_stretch

    def scale(x):  # floor(x * s); exact for s = budget / length and dyadic max_stretch
        top = jnp.floor(x * hc.max_stretch).astype(x.dtype)
        return jnp.where(lo, x, jnp.where(hi, top, (x * budget) // length))

    rev = revealed.astype(starts.dtype)
    prev_end = jax.lax.cummax(jnp.where(revealed, ends, -1), axis=1)
    prev_end = jnp.concatenate([jnp.full_like(prev_end[:, :1], -1), prev_end[:, :-1]], axis=1)
    first = revealed & (prev_end < 0)
    gap = jnp.minimum(scale(jnp.maximum(starts - prev_end, 0)), hc.max_gap)
    step = jnp.where(first, scale(starts), gap) * rev
    lens = (ends - starts) * rev
    new_start = jnp.cumsum(step, axis=1) + jnp.cumsum(lens, axis=1) - lens
    return jnp.where(revealed, new_start - starts, 0)


def plan_replacements(key: jax.Array, hinted_correct: jax.Array, lam: float) -> jax.Array:
    """Which hinted completion replaces which group member.

    Args:
      hinted_correct: bool ``[g, G]`` correctness of the G hinted samples per group.
      lam: at most floor(lam G) members are replaced.
    Returns:
      int32 ``[g, G]``: for each member, the index of the correct hinted completion
      that replaces it, or -1 (keep). K = min(#correct, floor(lam G)) per group,
      hinted completions and members both drawn at random.
    """
    g, size = hinted_correct.shape
    k_max = int(lam * size + 1e-9)
    k = jnp.minimum(hinted_correct.sum(axis=1), k_max)
    k_hint, k_member = jax.random.split(key)
    prio = jnp.where(hinted_correct, jax.random.uniform(k_hint, (g, size)), jnp.inf)
    hint_order = jnp.argsort(prio, axis=1)  # correct ones first, random order
    member_order = jnp.argsort(jax.random.uniform(k_member, (g, size)), axis=1)
    slot = jnp.arange(size)[None, :]
    source = jnp.where(slot < k[:, None], hint_order, -1)
    rows = jnp.arange(g)[:, None]
    return jnp.full((g, size), -1, jnp.int32).at[rows, member_order].set(source.astype(jnp.int32))


def mix_groups(take: jax.Array, original: dict, hinted: dict) -> dict:
    """Applies a replacement plan to per-sample arrays of the triggered groups.

    ``take [g, G]`` from :func:`plan_replacements`; ``original`` and ``hinted`` are
    dicts of arrays with leading dimension ``g * G`` and the same keys. Returns the
    mixed dict plus ``replaced`` (bool ``[g * G]``).
    """
    xp = np if isinstance(take, np.ndarray) else jnp  # host arrays stay on the host
    flat_take = take.reshape(-1)
    g, size = take.shape
    source = (xp.arange(g)[:, None] * size + xp.maximum(take, 0)).reshape(-1)
    replaced = flat_take >= 0
    out = {}
    for name, orig in original.items():
        new = hinted[name][source]
        sel = replaced.reshape((-1,) + (1,) * (orig.ndim - 1))
        out[name] = xp.where(sel, new, orig)
    out["replaced"] = replaced
    return out


def entropy_filter(entropy: jax.Array, hint_mask: jax.Array, tau: float) -> jax.Array:
    """bool ``[B, C]`` loss mask: all non-hint tokens, plus per row the top tau share
    (at least one) of hint tokens by entropy."""
    n = hint_mask.sum(axis=1)
    k = jnp.where(n > 0, jnp.maximum(1, jnp.floor(tau * n + 1e-6).astype(jnp.int32)), 0)
    score = jnp.where(hint_mask, entropy, -jnp.inf)
    top = _rank(-score) < k[:, None]
    return ~hint_mask | (top & hint_mask)
