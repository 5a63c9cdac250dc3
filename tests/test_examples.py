"""The README's Python examples run and do what they say; the tests it names exist."""

import glob
import os
import re
import runpy

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_generate_and_score_example():
    mod = runpy.run_path(os.path.join(ROOT, "examples", "generate_and_score.py"))
    out = mod["main"](num_problems=3)
    assert len(out["plain"]) == len(out["hinted"]) == 3
    # hints are clamped: the hinted completions hold the hint tokens where the mask says
    m = out["hint_mask"]
    assert m.any(axis=1).all()
    np.testing.assert_array_equal(out["hinted_tokens"][m], out["hint_ids"][m])
    from igpo_jax import rewards
    from igpo_jax.data import answers
    for text, ans, (r, ok) in zip(out["plain_texts"], out["answers"], out["plain"]):
        assert ok == rewards.is_equiv(answers.extract_answer(text), ans)
        assert r == 3.0 * ok + rewards.format_reward(text)


@pytest.fixture
def extending():
    """examples/extending.py run; its registry entries are taken out after the test (the
    registries are changed in place: other modules hold references to them)."""
    from igpo_jax import rewards
    from igpo_jax.rl import estimators, grpo
    registries = (rewards.REWARDS, grpo.POLICY_LOSSES, estimators.ESTIMATORS)
    saved = [dict(r) for r in registries]
    try:
        yield runpy.run_path(os.path.join(ROOT, "examples", "extending.py"))
    finally:
        for r, before in zip(registries, saved):
            r.clear()
            r.update(before)


def test_extending_example_registers_a_reward_a_loss_and_an_estimator(extending, tmp_path):
    import jax
    import jax.numpy as jnp

    from igpo_jax import rewards
    from igpo_jax.rl import estimators, grpo
    from tests import reference as ref
    from tests.rl.test_estimators import ATTN, COMP, GEO, HINT, ORDER, PROMPT, _np_scores
    # the reward: the answer's text exactly (MathReward also accepts an equal number)
    exact, math = rewards.REWARDS["exact"](rewards.RewardConfig()), rewards.MathReward()
    assert exact.score("<answer>\n3\n</answer>", "3")[1]
    assert not exact.score("<answer>\n3.0\n</answer>", "3")[1]
    assert math.score("<answer>\n3.0\n</answer>", "3")[1]
    # the loss, against numpy: -sum(A * logp * m) over sum(m)
    rng = np.random.default_rng(0)
    logp, adv = rng.normal(size=(3, 5)), rng.normal(size=3)
    m = rng.random((3, 5)) < 0.6
    s, d, stats = grpo.POLICY_LOSSES["reinforce"](jnp.asarray(logp, jnp.float32), None, None,
                                                   jnp.asarray(adv, jnp.float32),
                                                   jnp.asarray(m))
    np.testing.assert_allclose(float(s), -(adv[:, None] * logp * m).sum(), rtol=1e-5)
    assert float(d) == m.sum() and float(stats["token_count"]) == m.sum()
    # the estimator, against the float64 numpy forward: block b masked (hints too), the
    # earlier blocks clean, the later ones masked but for their hints
    c, t, model = ref.random_model(tmp_path / "m", seed=7)
    est = estimators.EstimatorConfig("block_prefix", **GEO)
    assert est.forward_passes == 2  # its own count (2 blocks)
    keys = jax.random.split(jax.random.key(0), 2)
    got, ent = estimators.estimate(model.param_dict(), model.config, est, jnp.asarray(PROMPT),
                                   jnp.asarray(ATTN), None, jnp.asarray(COMP),
                                   jnp.asarray(ORDER), jnp.asarray(HINT), keys)
    block = np.arange(COMP.shape[1]) // GEO["block_length"]
    want, want_ent = np.zeros(COMP.shape), np.zeros(COMP.shape)
    for b in range(2):
        lp, en, _ = _np_scores(c, t, (block == b)[None, :] | ((block > b)[None, :] & ~HINT))
        want[:, block == b], want_ent[:, block == b] = lp[:, block == b], en[:, block == b]
    tol = ref.f32_atol(c, PROMPT.shape[1] + COMP.shape[1], want)
    np.testing.assert_allclose(np.asarray(got), want, atol=tol, rtol=0)
    np.testing.assert_allclose(np.asarray(ent), want_ent, atol=tol, rtol=0)


@pytest.mark.slow
def test_extending_example_trains_one_step_with_its_additions(extending, tmp_path):
    """The run reaches the three additions through their config names (each wrapped here
    to count its calls; the estimator and loss are called when traced)."""
    from igpo_jax import rewards
    from igpo_jax.metrics import read_metrics
    from igpo_jax.rl import estimators, grpo
    calls = {"exact": 0, "reinforce": 0, "block_prefix": 0}

    def counted(registry, name):
        fn = registry[name]

        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        wrapper.__dict__.update(fn.__dict__)  # (the estimator's forward_passes)
        registry[name] = wrapper
    for registry, name in ((rewards.REWARDS, "exact"), (grpo.POLICY_LOSSES, "reinforce"),
                           (estimators.ESTIMATORS, "block_prefix")):
        counted(registry, name)
    extending["main"](str(tmp_path / "run"))
    assert all(n >= 1 for n in calls.values()), calls
    rows = read_metrics(str(tmp_path / "run" / "metrics.jsonl"))
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"]) and rows[0]["grad_norm"] > 0


def test_the_readme_and_docs_name_only_tests_that_exist():
    """Every ``file.py::test_name`` the README or docs/ cite as evidence is a test of that
    file (a renamed or merged test must be renamed there too)."""
    cited = []
    for doc in [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md")):
        text = open(doc, encoding="utf-8").read()
        cited += re.findall(r"((?:tests/)?[\w/]*test_\w+\.py)::(\w+)", text)
    assert len(cited) > 10
    for path, name in cited:
        file = os.path.join(ROOT, path if path.startswith("tests/") else "tests/" + path)
        assert os.path.exists(file), path
        assert re.search(rf"def {name}\b", open(file, encoding="utf-8").read()), (path, name)
