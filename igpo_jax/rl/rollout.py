"""Rollouts: sample G completions per prompt and score them; then the run's
augmentation (``rl/augment.py``: GRPO, IGPO or the resampling control) turns the
scored batch into the batch trained on.

Sampling runs in chunks of ``rollout_batch_size`` rows (one compiled shape for
plain and hinted generation alike); rewards are computed on the host.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import jax
import numpy as np

from igpo_jax import rewards as rewards_lib
from igpo_jax import sampling
from igpo_jax.data import Example
from igpo_jax.data.batches import encode_prompts
from igpo_jax.distributed import to_host
from igpo_jax.models import lora, transformer
from igpo_jax.rl import igpo
from igpo_jax.records import RolloutRecord
from igpo_jax.rl.augment import Augmentation, ScoredBatch
from igpo_jax.tokenizers import Tokenizer


# key derivations as device programs (their integers are constants, not transfers)
_split5 = jax.jit(lambda key: tuple(jax.random.split(key, 5)))
_chunk_keys = jax.jit(lambda key, n, chunk: tuple(jax.random.fold_in(key, i)
                                                  for i in range(0, n, chunk)),
                      static_argnums=(1, 2))


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    group_size: int
    prompt_len: int
    chunk: int  # rows per sampler call
    system_prompt: str | None = None


class RolloutWorker:
    def __init__(self, model_cfg: transformer.TransformerConfig, sampler_cfg: sampling.SamplerConfig,
                 rollout_cfg: RolloutConfig, augmentation: Augmentation, tok: Tokenizer,
                 reward_fn: rewards_lib.MathReward, mesh: jax.sharding.Mesh | None = None):
        self.model_cfg, self.sc, self.rollout_cfg = model_cfg, sampler_cfg, rollout_cfg
        self.augmentation = augmentation
        self.tok, self.reward_fn, self.mesh = tok, reward_fn, mesh
        self.reward_failures = 0  # this step's reward checks that crashed or timed out
        self.forward_passes: list[int] = []  # this step's model calls per sampler call

    def generate(self, params, prompt_ids: np.ndarray, prompt_attn: np.ndarray, key,
                 hint_ids: np.ndarray | None = None, hint_mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Completions ``[N, gen_length]`` and the sampler step that wrote each position
        (``Sample.order``, -1 for hints), sampled in chunks of ``rollout_cfg.chunk`` rows."""
        n, g = prompt_ids.shape[0], self.sc.gen_length
        if hint_ids is None:
            hint_ids = np.zeros((n, g), np.int32)
            hint_mask = np.zeros((n, g), bool)
        chunk = self.rollout_cfg.chunk
        pad = (-n) % chunk
        arrays = [np.concatenate([a, np.repeat(a[:1], pad, 0)]) if pad else a
                  for a in (prompt_ids, prompt_attn, np.asarray(hint_ids), np.asarray(hint_mask))]
        outs = []
        keys = _chunk_keys(key, n + pad, chunk)
        for c, i in enumerate(range(0, n + pad, chunk)):
            p, a, hi, hm = (x[i:i + chunk] for x in arrays)
            out = sampling.generate_params(params, self.model_cfg, p, self.sc,
                                           keys[c], attention_mask=a,
                                           hint_ids=hi, hint_mask=hm, mesh=self.mesh)
            outs.append(out)
        # the tokens, write orders and model-call counts of every chunk, back in one transfer
        host = [(to_host(o.tokens), to_host(o.order), int(o.nfe)) for o in outs] \
            if jax.process_count() > 1 else jax.device_get([(o.tokens, o.order, o.nfe)
                                                            for o in outs])
        self.forward_passes += [int(nfe) for _, _, nfe in host]
        return (np.concatenate([tok[:, prompt_ids.shape[1]:] for tok, _, _ in host])[:n],
                np.concatenate([order for _, order, _ in host])[:n])

    def score(self, completions: np.ndarray, golds: Sequence[str]):
        texts = [self.tok.decode_completion(c) for c in completions]
        r, ok, failed = self.reward_fn.batch(texts, list(golds))
        self.reward_failures += failed
        return np.asarray(r, np.float32), np.asarray(ok, bool), texts

    def __call__(self, params, examples: Sequence[Example], key) -> ScoredBatch:
        t0 = time.time()
        params = lora.merge_for_sampling(params, self.model_cfg.lora)  # once for every chunk
        self.reward_failures = 0
        self.forward_passes = []
        G = self.rollout_cfg.group_size
        k_sample, k_eta, k_hint, k_gen, k_plan = _split5(key)
        p_ids, p_attn = encode_prompts(self.tok, examples, self.rollout_cfg.prompt_len,
                                       self.rollout_cfg.system_prompt)
        p_ids, p_attn = np.repeat(p_ids, G, 0), np.repeat(p_attn, G, 0)
        golds = [e.answer for e in examples for _ in range(G)]
        comp, order = self.generate(params, p_ids, p_attn, k_sample)
        rew, ok, texts = self.score(comp, golds)
        wrong = igpo.all_wrong_groups(ok, G)
        sampled = dict(accuracy=float(ok.mean()), reward_mean=float(rew.mean()),
                       frac_all_wrong_groups=float(wrong.mean()))
        batch = ScoredBatch(p_ids, p_attn, comp, order, rew, ok, np.zeros(comp.shape, bool),
                            texts, golds, None)

        def sample(prompt_ids, prompt_attn, k, hint_ids=None, hint_mask=None):
            return self.generate(params, prompt_ids, prompt_attn, k, hint_ids, hint_mask)
        augmented = self.augmentation(batch, examples, sample, self.score,
                                      (k_eta, k_hint, k_gen, k_plan))
        after = igpo.all_wrong_groups(batch.correct, G)
        same = np.ptp(batch.rewards.reshape(-1, G), axis=1) == 0
        batch.stats = RolloutRecord(
            **sampled, **augmented, frac_all_wrong_after=float(after.mean()),
            frac_zero_adv_groups=float(same.mean()),
            completion_tokens=float((batch.completion_ids != self.tok.eos_id).sum(1).mean()),
            reward_failures=self.reward_failures, rollout_mode=self.sc.mode,
            forward_passes=float(np.mean(self.forward_passes)),
            rollout_seconds=time.time() - t0)
        return batch
