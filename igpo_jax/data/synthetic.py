"""The offline synthetic reasoning tasks (the embedded default).

Two tasks (``task``): ``sums`` and ``pointer``.

``pointer`` (pointer chasing): the question lists the successor of every node of
a random cycle over ``nodes`` letters, then a start node and a hop count; each
reasoning line copies the node reached so far and writes its successor, found by
content in the question (the question writes each node once in upper case, as the
source of its pair: the line ``f>b`` reads what follows the one ``F>`` there), and the
answer is the last node::

    question:  A>e B>d C>f ... G>b |c:3      (a->e, b->d, ...; start c, 3 hops)
    trace:     <reasoning>
               c>f
               f>b
               b>d
               </reasoning>
               <answer>
               \\boxed{d}
               </answer>

The graph is one cycle through every node, so a chain of fewer than ``nodes``
hops never revisits a node: each line needs exactly one lookup, and a chain's
difficulty grows with its length (errors compound, and hop counts past the
training mix are new to the model).

``sums``: running sums modulo ``modulus``: the question lists the terms, the reasoning
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
any seed; generation is deterministic by seed. The held-out split holds distinct
problems (no question twice), so accuracies and intervals count problems, not copies.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from igpo_jax.data import Example, format_trace
from igpo_jax.sections import Section, field


STYLES = ("sums", "steps", "chain")
TASKS = ("sums", "pointer")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclasses.dataclass(frozen=True)
class SyntheticConfig(Section):
    """The config's ``data.synthetic`` section: the keyword arguments of :func:`generate`
    (``num_train`` / ``num_test`` and the held-out length range are read by
    ``data.sources.load_examples``); :func:`generate` checks the values."""

    task: str = field(
        "sums", "sums: running sums mod `modulus` | pointer: follow a cycle of `nodes`")
    modulus: int = field(5, "running sums modulo this (2..10)")
    nodes: int = field(10, "task=pointer: letters on the cycle (3..26)")
    shuffle: bool = field(False, "task=pointer: list the pairs in random order (else a>, b>, ...)")
    min_terms: int = field(2, "fewest terms (sums) or hops (pointer) of a training problem")
    max_terms: int = field(6, "most terms (sums) or hops (pointer) of a training problem")
    num_train: int = field(2000, "training problems drawn")
    num_test: int = field(200, "held-out problems drawn")
    heldout_share: float = field(0.2, "share of all problems reserved for held-out (by hash)")
    test_min_terms: int = field(2, "fewest terms / hops of a held-out problem")
    test_max_terms: int = field(6, "most terms / hops of a held-out problem")
    width: int = field(0, ">0: pad questions to this many slots (fixed term positions)")
    style: str = field(
        "sums", "sums: running sums per line | steps: \"a+t=c\" | chain: \"+t=c\" per line")
    weights: tuple = field((), "training mix over term counts min..max (empty = uniform)")


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
    return _hash_share(" ".join(map(str, terms))) < heldout_share * 10_000


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
             weights: tuple[float, ...] | None = None, style: str = "sums", task: str = "sums",
             nodes: int = 10, shuffle: bool = False) -> list[Example]:
    """``num`` problems of the ``train`` or ``test`` split with lengths (terms of a sum,
    hops of a pointer chain) in ``[min_terms, max_terms]`` (uniform, or by ``weights``,
    one per length). Deterministic by (seed, split). The ``test`` split never repeats a
    problem; the ``train`` split may (it is sampled with replacement)."""
    if split not in ("train", "test"):
        raise ValueError(f"synthetic split={split!r}; expected 'train' or 'test'")
    if task not in TASKS:
        raise ValueError(f"synthetic task={task!r}; expected one of {TASKS}")
    if task == "pointer":
        return generate_pointer(num, split, seed, nodes, min_terms, max_terms, heldout_share,
                                weights, shuffle)
    if not 2 <= modulus <= 10:
        raise ValueError(f"synthetic modulus={modulus} must be in [2, 10] (one digit a term)")
    if not 2 <= min_terms <= max_terms:
        raise ValueError(f"synthetic terms need 2 <= min_terms <= max_terms, got "
                         f"{min_terms}, {max_terms}")
    if not 0 < heldout_share < 1:
        raise ValueError(f"synthetic heldout_share={heldout_share} must be in (0, 1)")
    if width and width < max_terms:
        raise ValueError(f"synthetic width={width} is smaller than max_terms={max_terms}")
    probs = _length_probs(weights, min_terms, max_terms)
    return _draw(num, split, seed, heldout_share, f"terms {min_terms}..{max_terms} mod {modulus}",
                 lambda rng: rng.integers(0, modulus, _length(rng, min_terms, max_terms,
                                                              probs)).tolist(),
                 lambda terms: " ".join(map(str, terms)),
                 lambda terms: make_example(terms, modulus, width, style))


def _length_probs(weights, lo: int, hi: int):
    if not weights:
        return None
    if len(weights) != hi - lo + 1 or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"synthetic weights={tuple(weights)} need one non-negative weight per "
                         f"length {lo}..{hi}")
    return np.asarray(weights, float) / sum(weights)


def _length(rng, lo: int, hi: int, probs) -> int:
    counts = np.arange(lo, hi + 1)
    return int(rng.choice(counts, p=probs)) if probs is not None else int(rng.choice(counts))


def _draw(num, split, seed, heldout_share, what, draw, key, make) -> list[Example]:
    """``num`` examples of ``split``: problems drawn by ``draw(rng)`` until enough fall on
    the split's side of the hash of ``key(problem)``; held-out problems are distinct."""
    want_heldout = split == "test"
    rng = np.random.default_rng([seed, int(want_heldout)])
    out: list[Example] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < num:
        tries += 1
        if tries > 100 * num + 1000:
            raise ValueError(f"could not draw {num} {'distinct ' * want_heldout}{split} "
                             f"problems with {what}; too few distinct ones")
        problem = draw(rng)
        k = key(problem)
        if _hash_share(k) < heldout_share * 10_000 and want_heldout:
            if k not in seen:
                seen.add(k)
                out.append(make(problem))
        elif _hash_share(k) >= heldout_share * 10_000 and not want_heldout:
            out.append(make(problem))
    return out


def _hash_share(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 10_000


def pointer_question(succ: dict[str, str], order: list[str], start: str, hops: int) -> str:
    return " ".join(f"{a.upper()}>{succ[a]}" for a in order) + f" |{start}:{hops}"


def solve_pointer(succ: dict[str, str], start: str, hops: int) -> list[str]:
    """The nodes visited after ``start``, one per hop."""
    out, node = [], start
    for _ in range(hops):
        node = succ[node]
        out.append(node)
    return out


def make_pointer_example(succ: dict[str, str], order: list[str], start: str, hops: int
                         ) -> Example:
    nodes = [start] + solve_pointer(succ, start, hops)
    lines = [f"{a}>{b}" for a, b in zip(nodes, nodes[1:])]
    return Example(question=pointer_question(succ, order, start, hops), answer=nodes[-1],
                   trace=format_trace("\n".join(lines), nodes[-1]), meta=f"hops={hops}")


def generate_pointer(num: int, split: str, seed: int = 0, nodes: int = 10, min_hops: int = 1,
                     max_hops: int = 6, heldout_share: float = 0.2,
                     weights: tuple[float, ...] | None = None, shuffle: bool = False
                     ) -> list[Example]:
    """Pointer-chasing problems over a random cycle of ``nodes`` letters, with hop
    counts in ``[min_hops, max_hops]`` (uniform, or by ``weights``). The question lists
    the pairs by their first letter (``a>.. b>.. c>..``), or in a random order with
    ``shuffle`` (then the step is a lookup by content alone)."""
    if not 3 <= nodes <= len(LETTERS):
        raise ValueError(f"synthetic nodes={nodes} must be in [3, {len(LETTERS)}]")
    if not 1 <= min_hops <= max_hops <= min(nodes - 1, 9):
        raise ValueError(f"synthetic pointer hops need 1 <= min_terms <= max_terms <= "
                         f"{min(nodes - 1, 9)} (nodes - 1, one digit), got {min_hops}, {max_hops}")
    if not 0 < heldout_share < 1:
        raise ValueError(f"synthetic heldout_share={heldout_share} must be in (0, 1)")
    probs = _length_probs(weights, min_hops, max_hops)
    names = list(LETTERS[:nodes])

    def draw(rng):
        cycle = [names[i] for i in rng.permutation(nodes)]
        succ = {a: cycle[(i + 1) % nodes] for i, a in enumerate(cycle)}
        order = [names[i] for i in rng.permutation(nodes)] if shuffle else list(names)
        return succ, order, names[int(rng.integers(nodes))], _length(rng, min_hops, max_hops,
                                                                      probs)
    return _draw(num, split, seed, heldout_share, f"{nodes} nodes, hops {min_hops}..{max_hops}",
                 draw, lambda p: pointer_question(*p), lambda p: make_pointer_example(*p))


def tokenizer_corpus() -> list[str]:
    """Texts the shipped character tokenizer is trained on."""
    exs = generate(200, "train", modulus=10, min_terms=2, max_terms=8)
    return [e.question for e in exs] + [e.trace for e in exs]
