"""Log-probability estimators (rl/estimators.py) against numpy re-derivations on tiny
models: the context each estimator scores a token in is written down here from its
definition (docs/ALGORITHM.md, "Log-probability estimators") and run through the float64
numpy forward of tests/reference.py; hand-built trajectories with hints and left-padded
prompts, both model families (Dream's shift), LoRA adapters, and sampler outputs (the
exact trajectory context is the one the sampler wrote each token in)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import sampling
from igpo_jax.models import lora, transformer
from igpo_jax.rl import estimators, logprobs
from tests import reference as ref

MASK, EOS = 63, 62
# 2 blocks of 4 tokens, 2 sampler steps per block (steps 0-1 in block 0, 2-3 in block 1)
GEO = dict(gen_length=8, block_length=4, steps=4)
PROMPT = np.array([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]], np.int32)
ATTN = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
COMP = np.array([[9, 10, 11, 12, 13, 62, 62, 62], [14, 15, 16, 17, 18, 19, 20, 62]], np.int32)
# row 0: no hints; row 1: hints at positions 1 and 5 (written before the first step)
ORDER = np.array([[1, 0, 0, 1, 2, 3, 2, 3], [0, -1, 1, 1, 3, -1, 2, 2]], np.int32)
HINT = ORDER == -1


@pytest.fixture(scope="module")
def llada_model(tmp_path_factory):
    return ref.random_model(tmp_path_factory.mktemp("llada"), seed=7)


@pytest.fixture(scope="module")
def dream_model(tmp_path_factory):
    from igpo_jax.models import hf_io
    c = ref.dream_hf_config()
    t = ref.random_dream_weights(c, seed=8)
    path = tmp_path_factory.mktemp("dream")
    ref.write_hf_checkpoint(path, c, t)
    return c, t, hf_io.load_hf_checkpoint(path)


def _np_scores(c, t, hide, prompt=PROMPT, attn=ATTN, comp=COMP, dream=False, lora_np=None):
    """float64 log-probs and entropies [B, C] of the completion tokens when the completion
    positions ``hide`` are masked (everything else as given)."""
    x = np.concatenate([prompt, np.where(hide, MASK, comp)], 1)
    full = np.concatenate([attn, np.ones(comp.shape, bool)], 1)
    if dream:
        lg = ref.dream_shift(ref.dream_numpy_forward(t, c, x, full))
    else:
        lg = ref.numpy_forward(t, c, x, full, lora=lora_np)
    lg = lg[:, prompt.shape[1]:]
    lz = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    logp = np.take_along_axis(lg, comp[..., None], -1)[..., 0] - lz
    p = np.exp(lg - lz[..., None])
    return logp, -(p * (lg - lz[..., None])).sum(-1), lg


def _np_trajectory(c, t, order, hint, passes_per_block, spb, **kw):
    """Each token written at step o: scored with the prompt, the hints and the tokens of
    earlier groups visible (a group: ``spb / passes_per_block`` consecutive steps of a
    block; one step each when exact); hints scored with the whole completion masked."""
    B, C = order.shape
    logp, ent = np.zeros((B, C)), np.zeros((B, C))
    for r in range(B):
        for j in range(C):
            if order[r, j] < 0:
                hide = np.ones((B, C), bool)
            else:
                o = order[r, j]
                grp = lambda s: (s // spb) * passes_per_block + (s % spb) * passes_per_block // spb  # noqa
                hide = np.ones((B, C), bool)
                for jj in range(C):
                    if hint[r, jj] or (order[r, jj] >= 0 and grp(order[r, jj]) < grp(o)):
                        hide[r, jj] = False
            lp, en, _ = _np_scores(c, t, hide, **kw)
            logp[r, j], ent[r, j] = lp[r, j], en[r, j]
    return logp, ent


def _estimate(model, est, order=ORDER, hint=HINT, keys=None, params=None, cfg=None):
    keys = jax.random.split(jax.random.key(0), order.shape[0]) if keys is None else keys
    return estimators.estimate(model.param_dict() if params is None else params,
                               model.config if cfg is None else cfg, est, jnp.asarray(PROMPT),
                               jnp.asarray(ATTN), None, jnp.asarray(COMP), jnp.asarray(order),
                               jnp.asarray(hint), keys)


@pytest.mark.parametrize("passes", [0, 1], ids=["exact", "one_pass_per_block"])
def test_trajectory_scores_each_token_in_its_sampler_context(llada_model, passes):
    c, t, model = llada_model
    est = estimators.EstimatorConfig("trajectory", trajectory_passes=passes, **GEO)
    assert est.forward_passes == (4 if passes == 0 else 2) + 1
    logp, ent = _estimate(model, est)
    want_lp, want_ent = _np_trajectory(c, t, ORDER, HINT, 2 if passes == 0 else 1, 2)
    tol = ref.f32_atol(c, 13, want_lp)
    np.testing.assert_allclose(np.asarray(logp), want_lp, atol=tol, rtol=0)
    np.testing.assert_allclose(np.asarray(ent), want_ent, atol=tol, rtol=0)
    # not the one-step numbers (the contexts differ), except where they coincide
    one, _ = logprobs.completion_logprobs(model.param_dict(), model.config, jnp.asarray(PROMPT),
                                          jnp.asarray(ATTN), jnp.asarray(COMP))
    # (the first group of a row without hints sees the prompt alone, as one_step does;
    # hints are scored in the one-step context)
    first = (ORDER == 0 if passes == 0 else (ORDER >= 0) & (ORDER < 2)) & ~HINT.any(1)[:, None]
    np.testing.assert_allclose(np.asarray(logp)[first | HINT], np.asarray(one)[first | HINT],
                               atol=tol, rtol=0)
    assert np.abs(np.asarray(logp) - np.asarray(one))[~first & ~HINT].min() > 1e-4


def test_trajectory_with_dream_shift(dream_model):
    c, t, model = dream_model
    est = estimators.EstimatorConfig("trajectory", **GEO)
    logp, ent = _estimate(model, est)
    want_lp, want_ent = _np_trajectory(c, t, ORDER, HINT, 2, 2, dream=True)
    tol = ref.f32_atol(ref.dream_path_config(c), 13, want_lp)
    np.testing.assert_allclose(np.asarray(logp), want_lp, atol=tol, rtol=0)
    np.testing.assert_allclose(np.asarray(ent), want_ent, atol=tol, rtol=0)


def _np_random_masks(c, t, est, keys, **kw):
    """block / elbo from their definitions, with the draws the estimator takes from the
    row keys (its randomness, not its arithmetic)."""
    B, C = COMP.shape
    width = est.block_length if est.name == "block" else C
    regions = C // width
    tt, u = (np.asarray(a, np.float64) for a in estimators._draws(keys, est, C, regions))
    val, ent_sum, cnt = np.zeros((B, C)), np.zeros((B, C)), np.zeros((B, C))
    for s in range(est.mc_samples):
        for r in range(regions):
            for comp in ((False, True) if est.coupled else (False,)):
                in_reg = (np.arange(C) // width == r)[None]
                drawn = u[:, s] < tt[:, s, r][:, None]
                masked = in_reg & (~drawn if comp else drawn)
                later = (np.arange(C) // width > r)[None] & ~HINT
                lp, en, _ = _np_scores(c, t, masked | later, **kw)
                ratio = (1 - tt[:, s, r] if comp else tt[:, s, r])[:, None]
                val += masked * lp / ratio
                ent_sum += masked * en
                cnt += masked
    return val / est.mc_samples, np.where(cnt > 0, ent_sum / np.maximum(cnt, 1), 0), cnt


@pytest.mark.parametrize("name,mc,coupled", [("block", 2, False), ("block", 1, True),
                                             ("elbo", 3, False), ("elbo", 2, True)])
def test_random_mask_estimators_match_their_definition(llada_model, name, mc, coupled):
    c, t, model = llada_model
    est = estimators.EstimatorConfig(name, mc_samples=mc, coupled=coupled, **GEO)
    keys = jax.random.split(jax.random.key(11), 2)
    logp, ent = _estimate(model, est, keys=keys)
    want, want_ent, cnt = _np_random_masks(c, t, est, keys)
    # 1/t weights scale the float32 error of a log-prob by up to 1/eps
    tol = ref.f32_atol(c, 13, want)
    np.testing.assert_allclose(np.asarray(logp), want, atol=tol, rtol=0)
    np.testing.assert_allclose(np.asarray(ent), want_ent,
                               atol=ref.f32_atol(c, 13, want_ent), rtol=0)
    if coupled:  # every token is masked exactly once per pair
        np.testing.assert_array_equal(cnt, mc)
    # the same keys give the same masks (old, new and reference of one iteration) ...
    again, _ = _estimate(model, est, keys=keys)
    np.testing.assert_array_equal(np.asarray(logp), np.asarray(again))
    # ... other keys other masks
    other, _ = _estimate(model, est, keys=jax.random.split(jax.random.key(12), 2))
    assert np.abs(np.asarray(other) - np.asarray(logp)).max() > 1e-3


def test_inverse_ratio_weights_average_to_one():
    """The 1/t weights make the random-ratio estimate unbiased for the sum of masked-token
    scores: E_t,u[1[u < t] / t] = 1 for t ~ U[eps, 1]. The mean over many draws of the
    estimator's own masks and ratios is 1 within 5 standard errors."""
    est = estimators.EstimatorConfig("elbo", mc_samples=4000, **GEO)
    t, u = estimators._draws(jax.random.split(jax.random.key(3), 2), est, 8, 1)
    w = (np.asarray(u) < np.asarray(t)) / np.asarray(t)
    # Var[1[u < t] / t] = E[1/t] - 1 = log(1/eps) / (1 - eps) - 1
    se = np.sqrt((np.log(1 / est.eps) / (1 - est.eps) - 1) / est.mc_samples)
    assert np.abs(w.mean(1) - 1).max() < 5 * se


def test_estimators_with_lora_adapters_match_the_numpy_adapted_forward(llada_model):
    c, t, model = llada_model
    targets = ("q_proj", "v_proj", "up_proj")
    lc = lora.LoraConfig(rank=2, alpha=4.0, targets=targets)
    cfg = model.config.replace(lora=lc)
    params = dict(model.param_dict(), **transformer.init_adapters(cfg, 1))
    rng = np.random.default_rng(4)
    params = {k: (jnp.asarray(rng.standard_normal(v.shape).astype(np.float32) * 0.3)
                  if lora.is_adapter(k) else v) for k, v in params.items()}
    lora_np = {n: (np.asarray(params[f"blocks/{n}_lora_a"]),
                   np.asarray(params[f"blocks/{n}_lora_b"]), 2.0) for n in targets}
    est = estimators.EstimatorConfig("trajectory", trajectory_passes=1, **GEO)
    logp, _ = _estimate(model, est, params=params, cfg=cfg)
    want, _ = _np_trajectory(c, t, ORDER, HINT, 1, 2, lora_np=lora_np)
    base, _ = _np_trajectory(c, t, ORDER, HINT, 1, 2)
    assert np.abs(want - base).max() > 1e-2  # the adapters matter here
    np.testing.assert_allclose(np.asarray(logp), want, atol=ref.f32_atol(c, 13, want), rtol=0)
    # gradients reach the adapters through every pass
    g = jax.grad(lambda a: _estimate(model, est, params={**params, **a}, cfg=cfg)[0].sum())(
        {k: v for k, v in params.items() if lora.is_adapter(k)})
    assert all(float(jnp.abs(v).max()) > 0 for v in g.values())


def test_exact_trajectory_context_is_the_samplers(llada_model):
    """On a greedy exact sampler run with hints, every written token is the argmax of the
    logits in the context the trajectory estimator rebuilds from ``Sample.order``."""
    c, t, model = llada_model
    hint_ids = np.zeros((2, 8), np.int32)
    hint_ids[1, [1, 5]] = [30, 31]
    hint_mask = hint_ids > 0
    sc = sampling.SamplerConfig(gen_length=8, block_length=4, steps=4, temperature=0.0)
    out = sampling.generate_params(model.param_dict(), model.config, PROMPT, sc,
                                   jax.random.key(0), attention_mask=ATTN, hint_ids=hint_ids,
                                   hint_mask=hint_mask)
    comp = np.asarray(out.completions())
    order = np.asarray(out.order)
    np.testing.assert_array_equal(order == -1, hint_mask)
    assert sorted(set(order[0].tolist())) == [0, 1, 2, 3]
    for r in range(2):
        for j in np.where(order[r] >= 0)[0]:
            hide = np.ones((2, 8), bool)
            hide[r] = ~(hint_mask[r] | ((order[r] >= 0) & (order[r] < order[r, j])))
            _, _, lg = _np_scores(c, t, hide, comp=comp)
            lg[..., MASK] = -np.inf
            assert lg[r, j].argmax() == comp[r, j], (r, j)
    # and the estimator's log-prob of each written token is the log of its top probability
    est = estimators.EstimatorConfig("trajectory", **GEO)
    logp, _ = estimators.estimate(model.param_dict(), model.config, est, jnp.asarray(PROMPT),
                                  jnp.asarray(ATTN), None, jnp.asarray(comp), jnp.asarray(order),
                                  jnp.asarray(hint_mask), jax.random.split(jax.random.key(0), 2))
    want, _ = _np_trajectory(c, t, order, hint_mask, 2, 2, comp=comp)
    np.testing.assert_allclose(np.asarray(logp), want, atol=ref.f32_atol(c, 13, want), rtol=0)


def test_one_step_is_the_d1_estimator(llada_model):
    _, _, model = llada_model
    est = estimators.EstimatorConfig("one_step", **GEO)
    got, ent = _estimate(model, est)
    want, want_ent = logprobs.completion_logprobs(model.param_dict(), model.config,
                                                  jnp.asarray(PROMPT), jnp.asarray(ATTN),
                                                  jnp.asarray(COMP))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(ent), np.asarray(want_ent))


def test_estimator_settings_are_checked():
    with pytest.raises(ValueError, match="rl.estimator"):
        estimators.EstimatorConfig("nope")
    with pytest.raises(ValueError, match="trajectory_passes"):
        estimators.EstimatorConfig("trajectory", trajectory_passes=-1, **GEO)
    assert estimators.EstimatorConfig("trajectory", trajectory_passes=9, **GEO).passes_per_block == 2
    assert estimators.EstimatorConfig("block", mc_samples=2, coupled=True,
                                      **GEO).forward_passes == 8


def test_config_names_a_bad_estimator_setting():
    from igpo_jax import configlib
    c = configlib.base_config()
    c.rl.estimator = "trajectroy"
    with pytest.raises(configlib.ConfigError, match="rl.estimator"):
        configlib.validate(c)
    c.rl.estimator, c.rl.coupled = "trajectory", True
    with pytest.raises(configlib.ConfigError, match="rl.coupled"):
        configlib.validate(c)
    c.rl.coupled, c.rl.mc_samples = False, 0
    with pytest.raises(configlib.ConfigError, match="rl.mc_samples"):
        configlib.validate(c)


def test_spg_upper_bound_terms_match_their_definition(llada_model):
    c, t, model = llada_model
    est = estimators.EstimatorConfig("block", mc_samples=2, **GEO)
    keys = jax.random.split(jax.random.key(5), 2)
    args = (model.param_dict(), model.config, est, jnp.asarray(PROMPT), jnp.asarray(ATTN), None,
            jnp.asarray(COMP), jnp.asarray(ORDER), jnp.asarray(HINT), keys)
    lower, upper = estimators.bounds(*args, beta=1.5)
    np.testing.assert_array_equal(np.asarray(lower), np.asarray(estimators.estimate(*args)[0]))
    # numpy: (1/beta) log((1/S) sum_s 1[masked_s] p_s^beta / t_s)
    B, C = COMP.shape
    tt, u = (np.asarray(a, np.float64) for a in estimators._draws(keys, est, C, 2))
    acc = np.zeros((B, C))
    for s in range(2):
        for r in range(2):
            in_reg = (np.arange(C) // 4 == r)[None]
            masked = in_reg & (u[:, s] < tt[:, s, r][:, None])
            later = (np.arange(C) // 4 > r)[None] & ~HINT
            lp, _, _ = _np_scores(c, t, masked | later)
            acc += masked * np.exp(1.5 * lp) / tt[:, s, r][:, None]
    want = np.where(acc > 0, np.log(np.where(acc > 0, acc, 1) / 2) / 1.5, 0)
    np.testing.assert_allclose(np.asarray(upper), want, atol=ref.f32_atol(c, 13, want), rtol=0)
    with pytest.raises(ValueError, match="block or elbo"):
        estimators.bounds(model.param_dict(), model.config,
                          estimators.EstimatorConfig("trajectory", **GEO), *args[3:], beta=1.0)
