"""Rollouts: sample G completions per prompt, score them, and (IGPO) inpaint the
all-wrong groups, swap correct hinted completions in, and mark their hint tokens.

Sampling runs in chunks of ``rollout_batch_size`` rows (one compiled shape for
plain and hinted generation alike); rewards are computed on the host.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from igpo_jax import rewards as rewards_lib
from igpo_jax import sampling
from igpo_jax.data import Example
from igpo_jax.distributed import to_host
from igpo_jax.data.pipeline import encode_prompts, encode_traces
from igpo_jax.models import llada
from igpo_jax.rl import igpo
from igpo_jax.tokenizers import Tokenizer

# the rollout augmentations the trainer switches between (rl.algo)
ALGORITHMS = ("grpo", "igpo", "resample")

_build_hints = jax.jit(igpo.build_hints, static_argnames=("gen_length", "hc"))
_plan = jax.jit(igpo.plan_replacements, static_argnames=("lam",))


@dataclasses.dataclass
class RolloutBatch:
    """Host arrays of one batch of groups (rows grouped consecutively)."""

    prompt_ids: np.ndarray  # int32 [N, P]
    prompt_attn: np.ndarray  # bool [N, P]
    completion_ids: np.ndarray  # int32 [N, C]
    rewards: np.ndarray  # float32 [N]
    correct: np.ndarray  # bool [N]
    hint_mask: np.ndarray  # bool [N, C]; True at hint tokens of swapped-in completions
    texts: list[str]
    stats: dict


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    group_size: int
    prompt_len: int
    chunk: int  # rows per sampler call
    algo: str = "grpo"
    lam: float = 0.5
    exclude_last_step: bool = False
    system_prompt: str | None = None


class RolloutWorker:
    def __init__(self, model_cfg: llada.LLaDAConfig, sampler_cfg: sampling.SamplerConfig,
                 rc: RolloutConfig, hints: igpo.HintConfig, tok: Tokenizer,
                 reward_fn: rewards_lib.MathReward, mesh: jax.sharding.Mesh | None = None):
        self.model_cfg, self.sc, self.rc, self.hints = model_cfg, sampler_cfg, rc, hints
        self.tok, self.reward_fn, self.mesh = tok, reward_fn, mesh
        self.reward_failures = 0  # this step's reward checks that crashed or timed out
        self.forward_passes: list[int] = []  # this step's model calls per sampler call

    def generate(self, params, prompt_ids: np.ndarray, prompt_attn: np.ndarray, key,
                 hint_ids: np.ndarray | None = None, hint_mask: np.ndarray | None = None
                 ) -> np.ndarray:
        """Completions ``[N, gen_length]``, sampled in chunks of ``rc.chunk`` rows."""
        n, g = prompt_ids.shape[0], self.sc.gen_length
        if hint_ids is None:
            hint_ids = np.zeros((n, g), np.int32)
            hint_mask = np.zeros((n, g), bool)
        chunk = self.rc.chunk
        pad = (-n) % chunk
        arrays = [np.concatenate([a, np.repeat(a[:1], pad, 0)]) if pad else a
                  for a in (prompt_ids, prompt_attn, np.asarray(hint_ids), np.asarray(hint_mask))]
        outs = []
        for i in range(0, n + pad, chunk):
            p, a, hi, hm = (x[i:i + chunk] for x in arrays)
            out = sampling.generate_params(params, self.model_cfg, p, self.sc,
                                           jax.random.fold_in(key, i), attention_mask=a,
                                           hint_ids=hi, hint_mask=hm, mesh=self.mesh)
            self.forward_passes.append(out.forward_passes)
            outs.append(to_host(out.tokens)[:, p.shape[1]:])
        return np.concatenate(outs)[:n]

    def score(self, completions: np.ndarray, golds: Sequence[str]):
        texts = [self.tok.decode_completion(c) for c in completions]
        r, ok, failed = self.reward_fn.batch(texts, list(golds))
        self.reward_failures += failed
        return np.asarray(r, np.float32), np.asarray(ok, bool), texts

    def _augment(self, params, examples, groups, p_ids, p_attn, golds, comp, rew, ok,
                 hint_mask, texts, keys) -> dict:
        """Extra completions for the all-wrong ``groups`` (hinted for IGPO, plain for the
        resampling control); correct ones replace up to floor(lambda G) members of their
        group. Updates ``comp, rew, ok, hint_mask, texts`` in place; returns stats."""
        k_eta, k_hint, k_gen, k_plan = keys
        G, g_len = self.rc.group_size, self.sc.gen_length
        rows = np.concatenate([np.arange(g * G, (g + 1) * G) for g in groups])
        if self.rc.algo == "igpo":
            t_ids, t_len, t_rev = encode_traces(self.tok, [examples[g] for g in groups
                                                           for _ in range(G)], g_len,
                                                self.rc.exclude_last_step)
            eta = igpo.sample_etas(k_eta, len(groups), G, self.hints.eta_low,
                                   self.hints.eta_high)
            h_ids, h_mask = _build_hints(k_hint, jnp.asarray(t_ids), jnp.asarray(t_len),
                                         jnp.asarray(t_rev), eta, gen_length=g_len,
                                         hc=self.hints)
            h_ids, h_mask = np.asarray(h_ids), np.asarray(h_mask)
        else:
            h_ids = h_mask = None
        h_comp = self.generate(params, p_ids[rows], p_attn[rows], k_gen, h_ids, h_mask)
        h_mask = np.zeros(h_comp.shape, bool) if h_mask is None else h_mask
        h_rew, h_ok, h_texts = self.score(h_comp, [golds[r] for r in rows])
        take = _plan(k_plan, jnp.asarray(h_ok.reshape(len(groups), G)), lam=self.rc.lam)
        mixed = igpo.mix_groups(
            take, dict(comp=comp[rows], rew=rew[rows], ok=ok[rows], hm=hint_mask[rows],
                       idx=np.arange(len(rows))),
            dict(comp=h_comp, rew=h_rew, ok=h_ok, hm=h_mask, idx=np.arange(len(rows))))
        mixed = {k: np.asarray(v) for k, v in mixed.items()}
        comp[rows], rew[rows], ok[rows], hint_mask[rows] = (mixed["comp"], mixed["rew"],
                                                            mixed["ok"], mixed["hm"])
        for j, r in enumerate(rows):
            if mixed["replaced"][j]:
                texts[r] = h_texts[int(mixed["idx"][j])]
        by_meta: dict[str, list[int]] = {}
        for gi, g in enumerate(groups):
            c_t = by_meta.setdefault(examples[g].meta or "all", [0, 0])
            c_t[0] += int(h_ok[gi * G:(gi + 1) * G].sum())
            c_t[1] += G
        return dict(inpaint_triggered=len(groups), num_replaced=int(mixed["replaced"].sum()),
                    hinted_accuracy=float(h_ok.mean()), hinted_samples=len(rows),
                    hint_tokens=int(hint_mask.sum()),
                    all_wrong_rescued=int(h_ok.reshape(len(groups), G).any(1).sum()),
                    hinted_by_meta=by_meta)

    def __call__(self, params, examples: Sequence[Example], key) -> RolloutBatch:
        t0 = time.time()
        params = sampling.merge_adapters(params, self.model_cfg)  # once for every chunk
        self.reward_failures = 0
        self.forward_passes = []
        G, g_len = self.rc.group_size, self.sc.gen_length
        k_sample, k_eta, k_hint, k_gen, k_plan = jax.random.split(key, 5)
        p_ids, p_attn = encode_prompts(self.tok, examples, self.rc.prompt_len,
                                       self.rc.system_prompt)
        p_ids, p_attn = np.repeat(p_ids, G, 0), np.repeat(p_attn, G, 0)
        golds = [e.answer for e in examples for _ in range(G)]
        comp = self.generate(params, p_ids, p_attn, k_sample)
        rew, ok, texts = self.score(comp, golds)
        hint_mask = np.zeros(comp.shape, bool)
        wrong = np.asarray(igpo.all_wrong_groups(jnp.asarray(ok), G))
        stats = dict(accuracy=float(ok.mean()), reward_mean=float(rew.mean()),
                     frac_all_wrong_groups=float(wrong.mean()), inpaint_triggered=0,
                     num_replaced=0, hinted_accuracy=None, hinted_samples=0,
                     hint_tokens=0, all_wrong_rescued=0, hinted_by_meta={})
        if self.rc.algo in ("igpo", "resample"):
            # IGPO: hinted completions for every all-wrong group with a trace. The
            # compute-matched control samples as many extra completions for the same
            # groups without hints and swaps correct ones in the same way.
            groups = [g for g in np.where(wrong)[0] if examples[g].trace]
            if groups:
                stats.update(self._augment(params, examples, groups, p_ids, p_attn, golds,
                                           comp, rew, ok, hint_mask, texts,
                                           (k_eta, k_hint, k_gen, k_plan)))
        after = np.asarray(igpo.all_wrong_groups(jnp.asarray(ok), G))
        same = np.ptp(rew.reshape(-1, G), axis=1) == 0
        stats.update(frac_all_wrong_after=float(after.mean()),
                     frac_zero_adv_groups=float(same.mean()),
                     completion_tokens=float((comp != self.tok.eos_id).sum(1).mean()),
                     reward_failures=self.reward_failures,
                     rollout_mode=self.sc.mode,
                     forward_passes=float(np.mean(self.forward_passes)),
                     rollout_seconds=time.time() - t0)
        return RolloutBatch(p_ids, p_attn, comp, rew, ok, hint_mask, texts, stats)
