"""Test setup: 8 simulated CPU devices for the sharding tests (set before JAX starts)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def straight_tiny_rl_metrics(tmp_path_factory):
    """The metrics of an uninterrupted 5-step run of configs/tiny.py:rl (eval off, no
    periodic checkpoint): what every interrupted-and-resumed twin must reproduce. Run
    once per session for all the resume tests that compare with it."""
    from configs import tiny
    from igpo_jax.configlib import typed
    from igpo_jax.metrics import read_metrics
    from igpo_jax.rl import trainer
    c = tiny.get_config("rl")
    c.rl.num_steps, c.eval.every, c.checkpoint.every = 5, 0, 100
    workdir = tmp_path_factory.mktemp("straight")
    trainer.train(typed(c), str(workdir))
    return read_metrics(str(workdir / "metrics.jsonl"))
