"""The config's ``sampler`` section: the settings of the block-denoising sampler
(igpo_jax/sampling.py), validated once; also the static settings of one compiled
sampler program."""

from __future__ import annotations

import dataclasses

from igpo_jax.sections import Section, check, field

REMASKING = ("low_confidence", "random", "entropy")
SCHEDULES = ("even", "dream")
CACHE_MODES = ("none", "prefix", "dual")
UNMASK_MODES = ("fixed", "threshold")


class BlockGeometry:
    """The block layout of a generation: ``gen_length`` tokens in blocks of
    ``block_length``, ``steps`` denoising steps spread evenly over the blocks (the
    sampler's settings and the estimators' view of them). A mixin: the dataclass that
    uses it declares the three fields."""

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks


@dataclasses.dataclass(frozen=True)
class SamplerConfig(Section, BlockGeometry):
    """The config's ``sampler`` section, and the static settings of one compiled sampler
    program (``prompt_len`` and ``rollout_batch_size`` are the rollouts' input shape)."""

    prompt_len: int = field(16, "prompt tokens (left-padded); longer prompts stop at load time")
    gen_length: int = field(64, "generated tokens per completion")
    block_length: int = field(16, "semi-autoregressive block size (divides gen_length)")
    steps: int = field(32, "denoising steps in all (a multiple of the number of blocks)")
    temperature: float = field(
        1.2, "rollout sampling temperature (eval.temperature for evaluation)")
    remasking: str = field(
        "low_confidence",
        "low_confidence (LLaDA) | random | entropy (Dream's alg=entropy: lowest entropy of the "
        "tempered, top_p-filtered distribution first): which positions to unmask")
    top_p: float = field(1.0, "nucleus sampling: keep the most likely tokens up to this mass "
                              "(1 = off; applied after the temperature, as Dream does)")
    schedule: str = field(
        "even",
        "even (a block's masked tokens spread evenly over its steps, LLaDA) | dream (Dream's "
        "count per step: floor(masked * (1 - s/t)) on linspace(1, 1e-3), the rest at the last "
        "step)")
    cfg_scale: float = field(0.0, "classifier-free guidance scale (0 = off)")
    early_stop: bool = field(False, "fill with EOS once every row's current block is all EOS")
    rollout_batch_size: int = field(32, "rows per sampler call (rollouts are chunked to this)")
    cache: str = field(
        "none",
        "none (exact) | prefix | dual: reuse keys/values within a block (fast decoding: README "
        "\"Fast rollouts\")")
    unmask: str = field("fixed", "fixed (steps schedule) | threshold (confidence > threshold)")
    threshold: float = field(0.9, 'unmask="threshold" only')

    def __post_init__(self):
        for k in ("prompt_len", "gen_length", "block_length", "steps", "rollout_batch_size"):
            check(getattr(self, k) > 0, f"sampler.{k}", getattr(self, k), "must be positive")
        check(self.gen_length % self.block_length == 0, "sampler.gen_length", self.gen_length,
              f"must be a multiple of sampler.block_length={self.block_length}")
        nb = self.gen_length // self.block_length
        check(self.steps % nb == 0, "sampler.steps", self.steps,
              f"must be a multiple of the number of blocks gen_length/block_length={nb}")
        check(self.remasking in REMASKING, "sampler.remasking", self.remasking,
              f"expected {REMASKING}")
        check(self.temperature >= 0, "sampler.temperature", self.temperature, "must be >= 0")
        check(0 < self.top_p <= 1, "sampler.top_p", self.top_p, "must be in (0, 1]")
        check(self.schedule in SCHEDULES, "sampler.schedule", self.schedule,
              f"expected one of {SCHEDULES}")
        check(self.schedule == "even" or self.unmask == "fixed", "sampler.schedule",
              self.schedule, 'the dream schedule is a fixed schedule: it needs unmask="fixed"')
        check(self.cfg_scale >= 0, "sampler.cfg_scale", self.cfg_scale, "must be >= 0")
        check(self.cache in CACHE_MODES, "sampler.cache", self.cache,
              f"expected one of {CACHE_MODES}")
        check(self.unmask in UNMASK_MODES, "sampler.unmask", self.unmask,
              f"expected one of {UNMASK_MODES}")
        check(0 <= self.threshold <= 1, "sampler.threshold", self.threshold,
              "must be in [0, 1]")
        check(self.unmask == "fixed" or self.remasking == "low_confidence", "sampler.unmask",
              self.unmask,
              "threshold unmasking compares confidences: it needs remasking=low_confidence")

    @classmethod
    def from_config(cls, s, temperature: float | None = None) -> "SamplerConfig":
        """From a config's ``sampler`` section (``temperature`` overrides its own)."""
        sc = super().from_config(s)
        return sc if temperature is None else sc.replace(temperature=float(temperature))

    @property
    def mode(self) -> str:
        """A short name of the decoding mode, recorded in metrics and results."""
        if self.cache == "none" and self.unmask == "fixed":
            return "exact"
        unmask = f"threshold{self.threshold:g}" if self.unmask == "threshold" else "fixed"
        return f"cache={self.cache},unmask={unmask}"
