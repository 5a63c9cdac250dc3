"""Extending igpo_jax from your own file: a reward, a policy loss and a log-probability
estimator, each one definition plus one registry line, then selected by name from the
config like the built-in ones (``reward.name``, ``rl.loss``, ``rl.estimator``).

    python examples/extending.py            # one tiny RL step with all three

A model family is the same: a file ending in one ``Family`` and
``family.register(FAMILY)`` (README, "Adding a model family").
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile

import jax.numpy as jnp

from igpo_jax import configlib, rewards
from igpo_jax.data import answers
from igpo_jax.rl import estimators, grpo, logprobs


# ---- a reward: the answer's text must equal the gold answer exactly (no symbolic check)
@dataclasses.dataclass(frozen=True)
class ExactAnswer(rewards.MathReward):
    def score(self, completion: str, gold: str) -> tuple[float, bool, bool]:
        got = answers.extract_answer(completion)  # None: no answer
        ok = got is not None and got.strip() == gold.strip()
        return self.correct_weight * ok + self.format_weight * rewards.format_reward(completion), \
            ok, False


rewards.REWARDS["exact"] = ExactAnswer.from_config


# ---- a policy loss: REINFORCE with the group advantage, every loss token weighted the same
# (no ratio: old_logp is not read; no KL: run it with rl.beta = 0)
def reinforce(logp, old_logp, ref_logp, advantages, loss_mask, *, hint_mask=None, **_):
    m = loss_mask.astype(jnp.float32)
    loss_sum = -(advantages[:, None] * logp * m).sum()
    return loss_sum, m.sum(), grpo.plain_stats(m, hint_mask)


grpo.POLICY_LOSSES["reinforce"] = reinforce


# ---- an estimator: block b wholly masked (its hints too, so that every token gets a
# prediction), the earlier blocks clean, the later ones masked but for their hints: the
# block decoder's view of a block before its first step (one forward pass per block)
def block_prefix(params, cfg, est, prompt_ids, prompt_attn, masked_prompt, completion_ids,
                 order, hint_mask, keys, *, with_entropy=True, dropout_rng=None):
    block = jnp.arange(completion_ids.shape[1]) // est.block_length  # [C]
    logp = ent = jnp.zeros(completion_ids.shape, jnp.float32)
    for b in range(est.num_blocks):
        hide = (block == b)[None, :] | ((block > b)[None, :] & ~hint_mask)
        lp, en = logprobs.masked_logprobs(params, cfg, prompt_ids, prompt_attn,
                                          completion_ids, hide, masked_prompt, dropout_rng)
        logp = jnp.where(block == b, lp, logp)
        ent = jnp.where(block == b, en, ent)
    return logp, (ent if with_entropy else None)


block_prefix.forward_passes = lambda est: est.num_blocks  # what the dry run and FLOPs count
estimators.ESTIMATORS["block_prefix"] = block_prefix


def main(workdir: str | None = None) -> dict:
    """One RL step of configs/tiny.py with the three additions; returns its summary."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from configs import tiny  # (the repository's configs/ folder)
    from igpo_jax.rl import trainer
    c = tiny.get_config("rl")
    c.rl.update(algo="grpo", num_steps=1, num_iterations=1, loss="reinforce",
                estimator="block_prefix", beta=0.0)
    c.reward.name = "exact"
    c.eval.every = 0
    workdir = workdir or os.path.join(tempfile.mkdtemp(prefix="igpo-extending-"), "run")
    out = trainer.train(configlib.validate(c), workdir)
    print(f"one step with reward.name=exact, rl.loss=reinforce, rl.estimator=block_prefix: "
          f"{workdir}")
    return out


if __name__ == "__main__":
    main()
