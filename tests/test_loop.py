"""The training loop (igpo_jax/loop.py): resume equals an uninterrupted run."""

import numpy as np
import pytest

from igpo_jax.configlib import typed
from igpo_jax.metrics import read_metrics


@pytest.mark.slow
def test_sft_resume_equals_uninterrupted(tmp_path):
    from configs import tiny

    from igpo_jax import sft
    c = tiny.get_config("rl")
    c.mode = "sft"
    c.sft.num_steps = 4
    full = sft.train(typed(c), str(tmp_path / "full"))
    sft.train(typed(c), str(tmp_path / "part"), stop_after=2)
    resumed = sft.train(typed(c), str(tmp_path / "part"))
    for k in full["params"]:
        np.testing.assert_array_equal(np.asarray(full["params"][k]),
                                      np.asarray(resumed["params"][k]))


def test_rerun_without_checkpoint_keeps_one_record(tmp_path):
    """End to end: an RL run whose checkpoints were deleted reruns from step 0 and its
    metrics hold each step once."""
    import shutil

    from configs import tiny
    from igpo_jax.rl import trainer
    c = tiny.get_config("rl")
    c.eval.every = 0
    c.rl.update(num_steps=2, num_iterations=1)
    trainer.train(typed(c), str(tmp_path))
    shutil.rmtree(tmp_path / "checkpoints")
    trainer.train(typed(c), str(tmp_path))
    steps = [r["step"] for r in read_metrics(str(tmp_path / "metrics.jsonl"))]
    assert steps == [1, 2]
