"""The rollout augmentations the trainer switches between, one object each.

A rollout worker samples and scores G completions per prompt; an augmentation then
turns that scored batch into the batch trained on, and says which completion tokens
count in the loss:

- ``grpo``: nothing (the batch as sampled; every completion token counts).
- ``igpo``: for every all-wrong group with a reference trace, G hinted completions
  (chunks of the trace clamped in place, ``rl/igpo.py``), correct ones swapped in
  for at most floor(lambda G) members, their hint tokens marked; in the loss, hint
  tokens only where the old policy's entropy is in the top tau share.
- ``resample``: the compute-matched control: the same groups get as many extra
  completions without hints, swapped in the same way (no hint tokens).

Adding an algorithm: a subclass of :class:`Augmentation` and one line in
:data:`AUGMENTATIONS`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from igpo_jax.data import Example
from igpo_jax.data.batches import encode_traces
from igpo_jax.records import RolloutRecord
from igpo_jax.rl import igpo

_build_hints = jax.jit(igpo.build_hints, static_argnames=("gen_length", "hc"))
_plan = jax.jit(igpo.plan_replacements, static_argnames=("lam",))


@dataclasses.dataclass
class ScoredBatch:
    """Host arrays of one batch of groups (rows grouped consecutively)."""

    prompt_ids: np.ndarray  # int32 [N, P]
    prompt_attn: np.ndarray  # bool [N, P]
    completion_ids: np.ndarray  # int32 [N, C]
    order: np.ndarray  # int32 [N, C]: the sampler step that wrote each token (-1: hint)
    rewards: np.ndarray  # float32 [N]
    correct: np.ndarray  # bool [N]
    hint_mask: np.ndarray  # bool [N, C]; True at hint tokens of swapped-in completions
    texts: list[str]
    golds: list[str]
    stats: RolloutRecord | None  # set by the rollout worker once the batch is augmented


# (prompt_ids, prompt_attn, key, hint_ids | None, hint_mask | None)
#   -> (completions [n, C], write order [n, C])
Sampler = Callable[..., np.ndarray]
# (completions, golds) -> (rewards, correct, texts)
Scorer = Callable[[np.ndarray, Sequence[str]], tuple]

EMPTY_STATS = dict(inpaint_triggered=0, num_replaced=0, hinted_accuracy=None,
                   hinted_samples=0, hint_tokens=0, all_wrong_rescued=0, hinted_by_meta={})


class Augmentation:
    """What an RL algorithm does between the scored rollouts and the update. This base
    changes nothing (the batch as sampled; every completion token counts in the loss):
    subclasses override what differs."""

    name = ""

    def __init__(self, group_size: int, **_):
        self.group_size = group_size

    def __call__(self, batch: ScoredBatch, examples: Sequence[Example], sample: Sampler,
                 score: Scorer, keys) -> dict:
        """Augments ``batch`` in place; returns the step's statistics (the augmentation
        fields of ``records.RolloutRecord``)."""
        return dict(EMPTY_STATS)

    def loss_mask(self, entropy: jax.Array, hint_mask: jax.Array) -> jax.Array:
        """bool ``[N, C]``: which completion positions may count in the loss."""
        return jnp.ones_like(hint_mask)


class Grpo(Augmentation):
    """GRPO: the batch as sampled; every completion token counts in the loss."""

    name = "grpo"


class Resample(Augmentation):
    """The compute-matched control: extra plain completions for the all-wrong groups
    that IGPO would inpaint, swapped in exactly as IGPO swaps hinted ones."""

    name = "resample"

    def __init__(self, group_size: int, lam: float = 0.5, **_):
        super().__init__(group_size)
        self.lam = lam

    def hints(self, examples: Sequence[Example], groups: list[int], key_eta, key_hint,
              gen_length: int):
        return None, None

    def __call__(self, batch, examples, sample, score, keys) -> dict:
        G = self.group_size
        stats = dict(EMPTY_STATS)
        wrong = igpo.all_wrong_groups(batch.correct, G)
        groups = [g for g in np.where(wrong)[0] if examples[g].trace]
        if not groups:
            return stats
        k_eta, k_hint, k_gen, k_plan = keys
        rows = np.concatenate([np.arange(g * G, (g + 1) * G) for g in groups])
        h_ids, h_mask = self.hints(examples, groups, k_eta, k_hint,
                                   batch.completion_ids.shape[1])
        h_comp, h_order = sample(batch.prompt_ids[rows], batch.prompt_attn[rows], k_gen, h_ids,
                                 h_mask)
        h_mask = np.zeros(h_comp.shape, bool) if h_mask is None else h_mask
        h_rew, h_ok, h_texts = score(h_comp, [batch.golds[r] for r in rows])
        # the plan is drawn on the device: one transfer there, one back
        take = jax.device_get(_plan(k_plan, jax.device_put(h_ok.reshape(len(groups), G)),
                                    lam=self.lam))
        b = batch
        mixed = igpo.mix_groups(
            take, dict(comp=b.completion_ids[rows], order=b.order[rows], rew=b.rewards[rows],
                       ok=b.correct[rows], hm=b.hint_mask[rows], idx=np.arange(len(rows))),
            dict(comp=h_comp, order=h_order, rew=h_rew, ok=h_ok, hm=h_mask,
                 idx=np.arange(len(rows))))
        mixed = {k: np.asarray(v) for k, v in mixed.items()}
        (b.completion_ids[rows], b.order[rows], b.rewards[rows], b.correct[rows],
         b.hint_mask[rows]) = (mixed["comp"], mixed["order"], mixed["rew"], mixed["ok"],
                               mixed["hm"])
        for j, r in enumerate(rows):
            if mixed["replaced"][j]:
                b.texts[r] = h_texts[int(mixed["idx"][j])]
        by_meta: dict[str, list[int]] = {}
        for gi, g in enumerate(groups):
            c_t = by_meta.setdefault(examples[g].meta or "all", [0, 0])
            c_t[0] += int(h_ok[gi * G:(gi + 1) * G].sum())
            c_t[1] += G
        return dict(inpaint_triggered=len(groups), num_replaced=int(mixed["replaced"].sum()),
                    hinted_accuracy=float(h_ok.mean()), hinted_samples=len(rows),
                    hint_tokens=int(b.hint_mask.sum()),
                    all_wrong_rescued=int(h_ok.reshape(len(groups), G).any(1).sum()),
                    hinted_by_meta=by_meta)


class Igpo(Resample):
    """IGPO: the extra completions of the all-wrong groups are hinted (inpainted), and
    only the most uncertain hint tokens count in the loss (the entropy filter)."""

    name = "igpo"

    def __init__(self, group_size: int, lam: float = 0.5, *, hints: igpo.IgpoConfig,
                 tau: float, tokenizer, exclude_last_step: bool = False, **_):
        super().__init__(group_size, lam)
        self.hint_cfg, self.tau, self.tok = hints, tau, tokenizer
        self.exclude_last_step = exclude_last_step
        self._eta_bounds = None

    def hints(self, examples, groups, key_eta, key_hint, gen_length):
        G = self.group_size
        t_ids, t_len, t_rev = encode_traces(self.tok, [examples[g] for g in groups
                                                       for _ in range(G)], gen_length,
                                            self.exclude_last_step)
        if self._eta_bounds is None:  # on the device once, not per step
            self._eta_bounds = jax.device_put((self.hint_cfg.eta_low, self.hint_cfg.eta_high))
        eta = igpo.sample_etas(key_eta, len(groups), G, *self._eta_bounds)
        # the encoded traces go to the device in one transfer, the hints come back in one
        t_ids, t_len, t_rev = jax.device_put((t_ids, t_len, t_rev))
        return jax.device_get(_build_hints(key_hint, t_ids, t_len, t_rev, eta,
                                           gen_length=gen_length, hc=self.hint_cfg))

    def loss_mask(self, entropy, hint_mask):
        return igpo.entropy_filter(entropy, hint_mask, self.tau)


AUGMENTATIONS: dict[str, type[Augmentation]] = {
    "grpo": Grpo, "igpo": Igpo, "resample": Resample}


def algorithms() -> tuple[str, ...]:
    """The valid ``rl.algo`` names: :data:`AUGMENTATIONS` as it is now (entries added
    from a user's file count)."""
    return tuple(AUGMENTATIONS)


def make(algo: str, **kw) -> Augmentation:
    """The augmentation named ``algo`` (``rl.algo``) with its settings."""
    if algo not in AUGMENTATIONS:
        raise ValueError(f"rl.algo={algo!r}; expected one of {algorithms()}")
    return AUGMENTATIONS[algo](**kw)
