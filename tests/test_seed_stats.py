import math

import numpy as np
import pytest

from igpo_jax import seed_stats


def test_t_interval_hand_worked():
    # values 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), t_{0.975,4} = 2.776
    ci = seed_stats.t_interval([1, 2, 3, 4, 5])
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert ci["mean"] == 3 and ci["n"] == 5
    assert ci["lo"] == pytest.approx(3 - half, abs=1e-12)
    assert ci["hi"] == pytest.approx(3 + half, abs=1e-12)
    assert seed_stats.t_interval([0.4])["lo"] is None  # one seed: no interval


def test_paired_and_bootstrap():
    a = {1: 0.50, 2: 0.60, 3: 0.55}
    b = {1: 0.45, 2: 0.50, 3: 0.55, 9: 0.1}  # seed 9 has no partner: ignored
    p = seed_stats.paired(a, b)
    assert p["seeds"] == [1, 2, 3] and p["wins"] == 2
    assert p["mean"] == pytest.approx((0.05 + 0.10 + 0.0) / 3)
    # the same difference on every problem (k=2 samples each: 1.0 vs 0.5): every
    # bootstrap draw gives that mean
    pa = {s: np.ones(10) for s in (1, 2, 3)}
    pb = {s: np.full(10, 0.5) for s in (1, 2, 3)}
    bs = seed_stats.hierarchical_bootstrap(pa, pb, reps=200)
    assert bs["lo"] == pytest.approx(0.5) and bs["hi"] == pytest.approx(0.5)
    # noisy differences: the interval contains the observed mean and has width
    rng = np.random.default_rng(0)
    pa = {s: (rng.random(200) < 0.6).astype(float) for s in range(5)}
    pb = {s: (rng.random(200) < 0.5).astype(float) for s in range(5)}
    bs = seed_stats.hierarchical_bootstrap(pa, pb, reps=500)
    assert bs["lo"] < bs["mean"] < bs["hi"] and bs["hi"] - bs["lo"] > 0.02
    with pytest.raises(ValueError, match="differ in shape"):
        seed_stats.hierarchical_bootstrap({1: np.ones(3)}, {1: np.ones(4)})


def test_split_member():
    assert seed_stats.split_member("igpo@101") == ("igpo", 101)
    assert seed_stats.split_member("eta=1.0@3") == ("eta=1.0", 3)
    assert seed_stats.split_member("sft") is None and seed_stats.split_member("a@b") is None
