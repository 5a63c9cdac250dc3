"""GRPO's losses and advantages (rl/grpo.py): the policy loss against numpy, the
reference switches, SPG's and wd1's objectives on hand-worked cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax.models import transformer
from igpo_jax.rl import grpo, logprobs


def np_loss(logp, old, refl, adv, mask, ratio, el, eh, beta, agg):
    """docs/ALGORITHM.md section 4, written out in numpy with loops."""
    B, C = logp.shape
    per = np.zeros((B, C))
    for i in range(B):
        idx = np.where(mask[i])[0]
        seq_rho = np.exp(np.mean(logp[i, idx] - old[i, idx])) if len(idx) else 1.0
        for j in range(C):
            rho = np.exp(logp[i, j] - old[i, j]) if ratio == "token" else seq_rho
            v = -min(rho * adv[i], np.clip(rho, 1 - el, 1 + eh) * adv[i])
            if refl is not None:
                d = refl[i, j] - logp[i, j]
                v += beta * (np.exp(d) - d - 1)
            per[i, j] = v
    if agg == "token":
        return (per * mask).sum() / mask.sum()
    rows = [(per[i] * mask[i]).sum() / mask[i].sum() for i in range(B) if mask[i].any()]
    return np.mean(rows)


@pytest.mark.parametrize("ratio", ["token", "sequence"])
@pytest.mark.parametrize("agg", ["token", "sequence"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_policy_loss_matches_numpy(ratio, agg, beta):
    rng = np.random.default_rng(0)
    B, C = 6, 9
    logp = rng.normal(-2, 0.5, (B, C))
    old = logp + rng.normal(0, 0.3, (B, C))
    refl = logp + rng.normal(0, 0.2, (B, C))
    adv = rng.normal(0, 1, B)
    mask = rng.random((B, C)) < 0.7
    mask[2] = False  # an empty row
    want = np_loss(logp, old, refl if beta else None, adv, mask, ratio, 0.2, 0.28, beta, agg)
    s, d, stats = grpo.policy_loss(jnp.asarray(logp), jnp.asarray(old),
                                   jnp.asarray(refl) if beta else None, jnp.asarray(adv),
                                   jnp.asarray(mask), ratio=ratio, eps_low=0.2, eps_high=0.28,
                                   beta=beta, aggregation=agg)
    np.testing.assert_allclose(float(s / d), want, rtol=1e-5)
    # micro-batches accumulate exactly with the batch denominator
    den = grpo.loss_denominator(jnp.asarray(mask), agg)
    parts = [grpo.policy_loss(jnp.asarray(logp[a:b]), jnp.asarray(old[a:b]),
                              jnp.asarray(refl[a:b]) if beta else None, jnp.asarray(adv[a:b]),
                              jnp.asarray(mask[a:b]), ratio=ratio, eps_low=0.2, eps_high=0.28,
                              beta=beta, aggregation=agg)[0] for a, b in [(0, 2), (2, 5), (5, 6)]]
    np.testing.assert_allclose(float(sum(parts) / den), want, rtol=1e-5)
    # clip fraction counts tokens outside the trust region in the direction of A
    rho = np.exp(logp - old) if ratio == "token" else None
    if ratio == "token":
        clipped = ((rho < 0.8) & (adv[:, None] < 0)) | ((rho > 1.28) & (adv[:, None] > 0))
        assert float(stats["clip_count"]) == (clipped & mask).sum()


def test_advantages():
    r = jnp.array([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(grpo.advantages_mean(r, 4), [-2, -1, 0, 3, 0, 0, 0, 0])
    std = np.std([1, 2, 3, 6], ddof=1)
    np.testing.assert_allclose(grpo.advantages_std(r, 4)[:4],
                               (np.array([1, 2, 3, 6]) - 3) / (std + 1e-4), rtol=1e-6)
    np.testing.assert_allclose(grpo.advantages_std(r, 4)[4:], 0)


def test_all_equal_group_has_zero_gradient():
    cfg = transformer.TransformerConfig.tiny()
    params = transformer.init_params(cfg, 1)
    prompt = jnp.arange(12, dtype=jnp.int32).reshape(2, 6)
    attn = jnp.ones((2, 6), bool)
    comp = (jnp.arange(16, dtype=jnp.int32).reshape(2, 8) + 20) % 60
    old, _ = logprobs.completion_logprobs(params, cfg, prompt, attn, comp)

    def loss(p, rewards):
        logp, _ = logprobs.completion_logprobs(p, cfg, prompt, attn, comp)
        adv = grpo.advantages_mean(rewards, 2)
        s, d, _ = grpo.policy_loss(logp, jax.lax.stop_gradient(old), None, adv,
                                   jnp.ones((2, 8), bool))
        return s / d

    g0 = jax.grad(loss)(params, jnp.array([0.0, 0.0]))
    assert all(float(jnp.abs(v).max()) == 0.0 for v in g0.values())
    g1 = jax.grad(loss)(params, jnp.array([3.0, 0.0]))
    assert max(float(jnp.abs(v).max()) for v in g1.values()) > 0


@pytest.mark.parametrize("agg", ["token", "sequence"])
def test_reference_switches_match_their_formulas(agg):
    """The reference code's sequence ratio (log-ratio averaged over every completion
    position, filtered hint tokens and padding included) and its per-micro-batch loss
    normalisation, each against a direct numpy re-derivation."""
    rng = np.random.default_rng(1)
    B, C = 6, 7
    logp = rng.normal(-2, 0.5, (B, C))
    old = logp + rng.normal(0, 0.3, (B, C))
    adv = rng.normal(0, 1, B)
    mask = rng.random((B, C)) < 0.6
    mask[:, 0] = True
    hint = rng.random((B, C)) < 0.3
    # ratio over every position: rho_i = exp(mean_j (logp - old)), the loss over the mask
    rho = np.exp((logp - old).mean(axis=1))
    per = -np.minimum(rho[:, None] * adv[:, None],
                      np.clip(rho, 0.8, 1.2)[:, None] * adv[:, None]) * np.ones((B, C))
    row_mean = [(per[i] * mask[i]).sum() / mask[i].sum() for i in range(B)]
    want = ((per * mask).sum() / mask.sum()) if agg == "token" else np.mean(row_mean)
    args = dict(ratio="sequence", eps_low=0.2, eps_high=0.2, beta=0.0, aggregation=agg)
    s, d, st = grpo.policy_loss(jnp.asarray(logp), jnp.asarray(old), None, jnp.asarray(adv),
                                jnp.asarray(mask), ratio_mask=jnp.ones((B, C), bool),
                                hint_mask=jnp.asarray(hint), **args)
    np.testing.assert_allclose(float(s / d), want, rtol=1e-5)
    s_default, d_default, _ = grpo.policy_loss(jnp.asarray(logp), jnp.asarray(old), None,
                                               jnp.asarray(adv), jnp.asarray(mask), **args)
    assert abs(float(s_default / d_default) - want) > 1e-4  # the switch changes the loss
    # hint / generated split of the stats
    assert float(st["hint_token_count"]) == (hint & mask).sum()
    np.testing.assert_allclose(float(st["hint_ratio_sum"]),
                               (rho[:, None] * (hint & mask)).sum(), rtol=1e-5)
    # per-micro-batch normalisation: mean over micro-batches of each one's own mean
    splits = [(0, 2), (2, 4), (4, 6)]
    parts = []
    for a, b in splits:
        s_mb, d_mb, _ = grpo.policy_loss(jnp.asarray(logp[a:b]), jnp.asarray(old[a:b]), None,
                                         jnp.asarray(adv[a:b]), jnp.asarray(mask[a:b]), **args)
        parts.append(float(grpo.normalise(s_mb, d_mb, jnp.float32(-1), 3, "micro_batch")))
    # (these parts use the default ratio over the loss mask)
    rho_d = np.exp(np.array([(logp[i] - old[i])[mask[i]].mean() for i in range(B)]))
    per_d = -np.minimum(rho_d * adv, np.clip(rho_d, 0.8, 1.2) * adv)[:, None] * np.ones((B, C))
    if agg == "token":
        mb_want = np.mean([(per_d[a:b] * mask[a:b]).sum() / mask[a:b].sum() for a, b in splits])
    else:
        mb_want = np.mean([np.mean([(per_d[i] * mask[i]).sum() / mask[i].sum()
                                    for i in range(a, b)]) for a, b in splits])
    np.testing.assert_allclose(sum(parts), mb_want, rtol=1e-5)


def test_spg_loss_matches_a_hand_worked_case():
    """SPG: positive advantages train the lower bound, negative ones the mix of upper and
    lower; sequences weigh by their token count; no ratio."""
    lower = np.array([[-1.0, -2.0, 0.0], [-0.5, -1.5, -3.0]])
    upper = np.array([[-0.8, -1.0, 0.0], [-0.2, -1.0, -2.0]])
    mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    adv = np.array([2.0, -1.0])
    # row 0 (A > 0): -2 * (-1 - 2) = 6; row 1 (A < 0), mix 0.25:
    # bound = 0.25 * upper + 0.75 * lower = [-0.425, -1.375, -2.75]; -(-1) * sum = -4.55
    s, d, st = grpo.spg_loss(jnp.asarray(lower), None, None, jnp.asarray(adv),
                             jnp.asarray(mask), upper=jnp.asarray(upper), eubo_mix=0.25)
    np.testing.assert_allclose(float(s), 6.0 - 4.55, rtol=1e-6)
    assert float(d) == 5 and float(st["clip_count"]) == 0
    assert float(grpo.loss_denominator(jnp.asarray(mask), "sequence", "spg")) == 5


def test_wd1_weights_and_loss_match_a_hand_worked_case():
    adv = jnp.array([1.0, -1.0, 0.0, 0.0])  # two groups of 2
    w = np.asarray(grpo.wd1_weights(adv, 2))
    e = np.exp([1.0, -1.0])
    sp, sn = e / e.sum(), e[::-1] / e.sum()  # softmax(A), softmax(-A) of group 1
    np.testing.assert_allclose(w[:2], sp - sn, rtol=1e-6)
    np.testing.assert_allclose(w[2:], 0, atol=1e-7)  # equal advantages: no signal
    logp = jnp.array([[-1.0, -2.0], [-3.0, -1.0], [-1.0, -1.0], [-2.0, -2.0]])
    mask = jnp.array([[1, 1], [1, 0], [1, 1], [0, 0]], bool)
    s, d, _ = grpo.wd1_loss(logp, None, None, jnp.asarray(w), mask)
    want = -(w[0] * -3.0 + w[1] * -3.0 + w[2] * -2.0)
    np.testing.assert_allclose(float(s), want, rtol=1e-6)
    assert float(d) == 3 == float(grpo.loss_denominator(mask, "token", "wd1"))
