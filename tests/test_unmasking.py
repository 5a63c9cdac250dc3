"""What a denoising step unmasks (igpo_jax/unmasking.py): the even and Dream schedules
hand-worked, the nucleus filter against Dream's top_p_logits in numpy, the top-k
selection's ties; the sampler's use of them: test_sampling.py, test_fast_sampling.py."""

import jax.numpy as jnp
import numpy as np

from igpo_jax import unmasking
from tests import reference as ref


def test_transfer_schedule_hand_worked():
    # 7 masked over 3 steps -> 3, 2, 2;  6 -> 2, 2, 2;  1 -> 1, 0, 0;  0 -> 0, 0, 0
    got = unmasking.num_transfer_tokens(jnp.array([7, 6, 1, 0]), 3)
    np.testing.assert_array_equal(got, [[3, 2, 2], [2, 2, 2], [1, 0, 0], [0, 0, 0]])


def test_dream_schedule_hand_worked():
    # t = linspace(1, 1e-3, 5) = 1, .75025, .5005, .25075, .001.  4 masked: 4 * .24975
    # = .999 -> 0; 4 * (1 - .5005 / .75025) = 1.33 -> 1; 3 * (1 - .25075 / .5005) = 1.50
    # -> 1; the last step takes the 2 left.  3 masked: .749 -> 0, .999 -> 0 (float32:
    # 3 * (1 - .5005 / .75025) = 0.9985), 1.497 -> 1, then 2
    got = unmasking.dream_transfer_tokens(jnp.array([4, 3, 0]), 4)
    np.testing.assert_array_equal(got, [[0, 1, 1, 2], [0, 0, 1, 2], [0, 0, 0, 0]])
    # one step per token (Dream's evaluation): none at the first step, one per step after,
    # the last catches up; the count is Dream's step-by-step loop's
    for n in (256, 512):
        counts = np.asarray(unmasking.dream_transfer_tokens(jnp.array([n]), n))[0]
        np.testing.assert_array_equal(counts, ref.dream_counts(n, n))
        assert counts.sum() == n and counts[0] == 0 and counts[-1] == 2


def test_top_p_keeps_dreams_nucleus():
    logits = np.random.default_rng(4).normal(0, 2, (3, 5, 64)).astype(np.float32)
    logits[0, 0, 7] = 9.0  # one dominant token: alone in any nucleus below its mass
    for top_p in (0.05, 0.5, 0.9, 0.999):
        got = np.asarray(unmasking.top_p_logits(jnp.asarray(logits), top_p))
        want = ref.dream_top_p(logits, top_p)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        np.testing.assert_array_equal(got[~np.isinf(got)], logits[~np.isinf(want)])
    assert np.isfinite(np.asarray(unmasking.top_p_logits(jnp.asarray(logits), 0.5))[0, 0]).sum() == 1


def test_select_top_ties_and_inf():
    conf = jnp.array([[0.5, -jnp.inf, 0.5, 0.9, 0.1], [0.2, 0.2, 0.2, -jnp.inf, -jnp.inf]])
    sel = unmasking.select_top(conf, jnp.array([2, 3]))
    np.testing.assert_array_equal(sel, [[True, False, False, True, False],
                                        [True, True, True, False, False]])
