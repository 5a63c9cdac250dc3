"""The README's Python example runs and does what it says."""

import os
import runpy

import numpy as np

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
