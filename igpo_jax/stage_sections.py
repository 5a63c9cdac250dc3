"""The config sections of the two stages that read the whole run config: ``sft`` and
``eval``.

They live here rather than in ``sft.py`` and ``evaluate.py`` so that ``configlib``,
which assembles ``RunConfig`` from every section, imports neither stage module, and
the stage modules can name ``RunConfig`` without an import circle. ``sft`` and
``evaluate`` re-export them.
"""

from __future__ import annotations

import dataclasses

from igpo_jax import protocols
from igpo_jax.sections import Section, check, field

MASK_MODES = ("iid", "block", "mixed")
T_SAMPLING = ("uniform", "stratified")
OVERLONG = ("drop", "truncate")


@dataclasses.dataclass(frozen=True)
class SFTConfig(Section):
    """The config's ``sft`` section."""

    num_steps: int = field(100, "optimiser steps")
    batch_size: int = field(32, "examples per step")
    micro_batch_size: int = field(32, "examples per forward/backward (divides batch_size)")
    eps: float = field(0.001, "masking probability p = (1 - eps) t + eps")
    t_sampling: str = field("uniform", "uniform | stratified (t in equal strata across the batch)")
    mask: str = field(
        "iid",
        "which response tokens are masked: iid (LLaDA) | block (as the block sampler sees them: "
        "earlier blocks clean, later ones masked) | mixed (half of each)")
    overlong: str = field("drop", "traces longer than gen_length: drop | truncate")
    rewritten_path: str = field(
        "", "JSONL {\"question\", \"trace\"}: length-aligned traces to train on")

    def __post_init__(self):
        check(self.num_steps >= 0 and self.batch_size >= 1, "sft.num_steps/batch_size",
              (self.num_steps, self.batch_size), "need num_steps >= 0 and batch_size >= 1")
        check(self.micro_batch_size >= 1 and self.batch_size % self.micro_batch_size == 0,
              "sft.micro_batch_size", self.micro_batch_size,
              f"must divide sft.batch_size={self.batch_size}")
        check(self.t_sampling in T_SAMPLING, "sft.t_sampling", self.t_sampling,
              f"expected one of {T_SAMPLING}")
        check(self.mask in MASK_MODES, "sft.mask", self.mask, f"expected one of {MASK_MODES}")
        check(self.overlong in OVERLONG, "sft.overlong", self.overlong,
              f"expected one of {OVERLONG}")
        check(0 < self.eps < 1, "sft.eps", self.eps, "must be in (0, 1)")


@dataclasses.dataclass(frozen=True)
class EvalConfig(Section):
    """The config's ``eval`` section."""

    split: str = field("test", "test | train")
    num_examples: int = field(0, "0 = all")
    k: int = field(1, "samples per problem: pass@1 at temperature 0, avg@k above it")
    temperature: float = field(0.0, "0 = greedy")
    batch_size: int = field(32, "problems per sampler call")
    every: int = field(
        0, "RL: evaluate every this many steps on eval.during_examples (0 = off)")
    during_examples: int = field(64, "held-out problems of the periodic evaluations")
    after_train: bool = field(False, "RL/SFT: evaluate on the held-out split when training ends")
    exact_sampler: bool = field(
        False, "evaluate with cache=none, unmask=fixed whatever sampler says")
    protocol: str = field(
        "", "a published evaluation protocol (igpo_jax/protocols.py: "
        f"{' | '.join(sorted(protocols.PROTOCOLS))}): its prompt, problems and grader; the "
        "sampler settings come from the recipe (configs/eval_protocols.py)")

    def __post_init__(self):
        check(self.k >= 1 and self.batch_size >= 1, "eval.k/batch_size",
              (self.k, self.batch_size), "must be >= 1")
        check(self.temperature > 0 or self.k == 1, "eval.k", self.k,
              "avg@k with k > 1 needs eval.temperature > 0 (temperature 0 repeats one answer)")
        check(self.split in ("train", "test"), "eval.split", self.split, "expected train|test")
        check(not self.protocol or self.protocol in protocols.PROTOCOLS, "eval.protocol",
              self.protocol, f"expected one of {sorted(protocols.PROTOCOLS)}")
