"""Typed step records: what a training step writes to ``metrics.jsonl`` and what the
reports read back.

* :class:`RolloutRecord`: one RL rollout batch, as sampled and then augmented (IGPO's
  hinted completions, the resampling control's extra plain ones);
* :class:`UpdateRecord`: one RL update (``rl.num_iterations`` per rollout batch), with
  the rollout batch it trained on;
* :class:`SFTRecord`: one SFT step (every ``log_every`` steps and the last).

Each is written as one flat JSON object (``to_json``: the fields in declaration order,
the rollout's after the update's) and read back with ``from_json``, which fills the
defaults for keys that records of older versions lack.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from igpo_jax import storage
from igpo_jax.metrics import read_metrics


def _known(cls, row: Mapping[str, Any]) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in row.items() if k in names}


@dataclasses.dataclass(frozen=True)
class RolloutRecord:
    """One rollout batch of ``rl.prompts_per_step`` groups."""

    accuracy: float  # share of correct completions as sampled (before augmentation)
    reward_mean: float
    frac_all_wrong_groups: float  # groups with no correct completion, as sampled
    inpaint_triggered: int = 0  # all-wrong groups given extra (hinted) completions
    num_replaced: int = 0  # extra completions swapped into their groups
    hinted_accuracy: float | None = None  # share of the extra completions that are right
    hinted_samples: int = 0  # extra completions sampled
    hint_tokens: int = 0  # hint tokens in the batch after the swap
    all_wrong_rescued: int = 0  # triggered groups with at least one right extra completion
    hinted_by_meta: dict = dataclasses.field(default_factory=dict)  # meta -> [right, sampled]
    frac_all_wrong_after: float = 0.0  # all-wrong groups after the swap
    frac_zero_adv_groups: float = 0.0  # groups whose rewards are all equal (no signal)
    completion_tokens: float = 0.0  # mean completion length before EOS
    reward_failures: int = 0  # completions the grader could not grade (timeouts, crashes)
    rollout_mode: str = "exact"  # the sampler mode
    forward_passes: float = 0.0  # mean model calls per sampler call
    rollout_seconds: float = 0.0

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> "RolloutRecord":
        return cls(**_known(cls, row))


@dataclasses.dataclass(frozen=True, kw_only=True)
class UpdateRecord:
    """One RL update and the rollout batch it trained on. The defaults are what rows of
    older versions, which lack the key, are read with."""

    step: int  # optimiser steps done
    rollout_step: int  # rollout batches done
    inner_iter: int = 0  # which of the batch's rl.num_iterations updates
    stage: str  # the algorithm (grpo | igpo | resample)
    loss: float
    grad_norm: float
    clip_frac: float = 0.0  # share of loss tokens whose ratio was clipped
    kl: float = 0.0  # mean per-token KL to the reference policy
    loss_tokens: float = 0.0
    ratio_mean: float = 1.0
    clip_frac_gen: float = 0.0  # the same at generated tokens
    ratio_gen: float = 0.0
    clip_frac_hint: float | None = None  # and at hint tokens (None without any)
    ratio_hint: float | None = None
    lr: float
    skipped_updates: int = 0  # updates skipped so far for non-finite gradients
    hint_tokens_kept: float = 0.0  # hint tokens the entropy filter kept in the loss
    update_seconds: float = 0.0
    logprob_seconds: float = 0.0
    rollouts_per_step: int
    entropy_hint: float | None = None  # mean old-policy entropy at hint tokens
    entropy_gen: float | None = None  # and at generated tokens
    groups_per_step: int = 1
    rollout: RolloutRecord

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "rollout"}
        return {**out, **dataclasses.asdict(self.rollout)}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> "UpdateRecord":
        fields = _known(cls, row)
        fields.pop("rollout", None)
        return cls(**fields, rollout=RolloutRecord.from_json(row))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SFTRecord:
    """One SFT step (defaults: as for :class:`UpdateRecord`)."""

    step: int
    stage: str
    loss: float
    grad_norm: float
    lr: float
    skipped_updates: int = 0
    seconds: float = 0.0  # since this call started

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> "SFTRecord":
        return cls(**_known(cls, row))


def read_updates(path: str) -> list[UpdateRecord]:
    """The RL update records of a ``metrics.jsonl`` (none when it does not exist)."""
    if not storage.exists(path):
        return []
    return [UpdateRecord.from_json(r) for r in read_metrics(path) if "rollout_step" in r]
