"""The offline synthetic reasoning task (the embedded default).

Running sums modulo ``modulus``: the question lists the terms, the reasoning
writes the running sum after each term, one per line, and the answer is the
last one::

    question:  3 1 4 2
    trace:     <reasoning>
               3
               4
               3
               0
               </reasoning>
               <answer>
               \\boxed{0}
               </answer>

Questions and reasoning lines have the same stride (two characters), so the
k-th line needs the (k-1)-th line and the k-th term at fixed relative offsets,
plus one entry of a small addition table: a small model can learn a step, and
difficulty grows with the number of terms (errors compound), which gives solved
short chains and whole groups failing on long ones. Problems are split into
train and held-out sets by a hash of their terms, so the splits are disjoint for
any seed; generation is deterministic by seed.
"""

from __future__ import annotations

import hashlib

import numpy as np

from igpo_jax.data import Example, format_trace


STYLES = ("sums", "steps", "chain")


def solve(terms: list[int], modulus: int, style: str = "sums") -> tuple[list[str], int]:
    """Reasoning lines and the answer of a running sum mod ``modulus``.

    ``sums``: one line per term with the running sum (``3``, ``4``, ``3``);
    ``steps``: one line per addition with its operands (``3+1=4``, ``4+4=3``);
    ``chain``: the first term, then one ``+t=c`` line per addition (``3``, ``+1=4``,
    ``+4=3``): each result follows from the line above and the term beside it, and
    (unlike ``steps``) is not repeated at the start of the next line.
    """
    if style not in STYLES:
        raise ValueError(f"synthetic style={style!r}; expected one of {STYLES}")
    acc = terms[0] % modulus if style in ("steps", "chain") else 0
    lines = [str(acc)] if style == "chain" else []
    for t in (terms[1:] if style in ("steps", "chain") else terms):
        new = (acc + t) % modulus
        lines.append({"steps": f"{acc}+{t}={new}", "chain": f"+{t}={new}"}.get(style, str(new)))
        acc = new
    return lines, acc


def is_heldout(terms: list[int], heldout_share: float) -> bool:
    h = int.from_bytes(hashlib.sha256(" ".join(map(str, terms)).encode()).digest()[:8], "big")
    return (h % 10_000) < heldout_share * 10_000


def make_example(terms: list[int], modulus: int, width: int = 0, style: str = "sums"
                 ) -> Example:
    """``width`` > 0 pads the question with ``.`` to that many slots, so every
    prompt has the same length and the k-th term sits at a fixed position."""
    lines, ans = solve(terms, modulus, style)
    slots = list(map(str, terms)) + ["."] * max(0, width - len(terms))
    return Example(question=" ".join(slots), answer=str(ans),
                   trace=format_trace("\n".join(lines), str(ans)), meta=f"n_terms={len(terms)}")


def generate(num: int, split: str, seed: int = 0, modulus: int = 5, min_terms: int = 2,
             max_terms: int = 6, heldout_share: float = 0.2, width: int = 0,
             weights: tuple[float, ...] | None = None, style: str = "sums") -> list[Example]:
    """``num`` problems of the ``train`` or ``test`` split with term counts in
    ``[min_terms, max_terms]`` (uniform, or by ``weights``, one per count).
    Deterministic by (seed, split)."""
    if split not in ("train", "test"):
        raise ValueError(f"synthetic split={split!r}; expected 'train' or 'test'")
    if not 2 <= modulus <= 10:
        raise ValueError(f"synthetic modulus={modulus} must be in [2, 10] (one digit a term)")
    if not 2 <= min_terms <= max_terms:
        raise ValueError(f"synthetic terms need 2 <= min_terms <= max_terms, got "
                         f"{min_terms}, {max_terms}")
    if not 0 < heldout_share < 1:
        raise ValueError(f"synthetic heldout_share={heldout_share} must be in (0, 1)")
    if width and width < max_terms:
        raise ValueError(f"synthetic width={width} is smaller than max_terms={max_terms}")
    probs = None
    if weights:
        if len(weights) != max_terms - min_terms + 1 or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"synthetic weights={weights} need one non-negative weight per "
                             f"term count {min_terms}..{max_terms}")
        probs = np.asarray(weights, float) / sum(weights)
    want_heldout = split == "test"
    rng = np.random.default_rng([seed, int(want_heldout)])
    out: list[Example] = []
    tries = 0
    while len(out) < num:
        tries += 1
        if tries > 100 * num + 1000:
            raise ValueError(f"could not draw {num} {split} problems with terms "
                             f"{min_terms}..{max_terms} mod {modulus}; too few distinct ones")
        counts = np.arange(min_terms, max_terms + 1)
        n = int(rng.choice(counts, p=probs)) if probs is not None else int(rng.choice(counts))
        terms = rng.integers(0, modulus, n).tolist()
        if is_heldout(terms, heldout_share) == want_heldout:
            out.append(make_example(terms, modulus, width, style))
    return out


def tokenizer_corpus() -> list[str]:
    """Texts the shipped character tokenizer is trained on."""
    exs = generate(200, "train", modulus=10, min_terms=2, max_terms=8)
    return [e.question for e in exs] + [e.trace for e in exs]
