"""LoRA in RL training: only adapters train and are checkpointed, the reference policy
is the base, runs resume exactly. (Later stages and the Hugging Face export that merge
the adapters into the base: tests/test_experiment.py, tests/test_export.py.)"""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from igpo_jax import experiment
from igpo_jax.metrics import read_metrics
from igpo_jax.models import lora
from igpo_jax.rl import trainer
from igpo_jax.configlib import typed

# whole training runs; one test process builds the module's runs (pytest.ini: loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lora_rl")]


def tiny_lora(**rl):
    from configs import tiny
    c = tiny.get_config("rl")
    c.eval.every = 0
    c.model.lora.update(rank=4, alpha=8.0, dropout=0.1, targets="q_proj,k_proj,v_proj,up_proj")
    c.rl.update(**{"num_steps": 3, "num_iterations": 2, **rl})
    return c


def _np(tree):
    return {k: np.asarray(v) for k, v in tree.items()}


@pytest.fixture(scope="module")
def rl_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_rl")
    c = tiny_lora(algo="igpo", beta=0.01)
    cfg = experiment.model_config(typed(c))
    initial = _np(experiment.initial_params(typed(c), cfg, experiment.build_mesh(typed(c))))
    full = trainer.train(typed(c), str(root / "full"))
    part = trainer.train(typed(c), str(root / "part"), stop_after=2)
    resumed = trainer.train(typed(c), str(root / "part"))
    return dict(c=c, cfg=cfg, root=root, initial=initial, full=_np(full["params"]),
                part_steps=part["steps"], resumed=_np(resumed["params"]))


def test_only_adapters_train_and_the_reference_is_the_base(rl_runs):
    initial, full = rl_runs["initial"], rl_runs["full"]
    assert set(full) == set(initial) and any(lora.is_adapter(k) for k in full)
    for k in full:
        if lora.is_adapter(k):
            if k.endswith("_lora_b"):
                assert not initial[k].any() and np.abs(full[k]).max() > 0, k
        else:
            np.testing.assert_array_equal(full[k], initial[k])  # the base never moves
    rows = read_metrics(os.path.join(rl_runs["root"], "full", "metrics.jsonl"))
    # fresh adapters (B = 0) are the base exactly: zero KL to the reference policy
    # (the base with adapters off) before the first update, non-zero after it
    assert rows[0]["kl"] == 0.0
    assert all(r["kl"] > 0 for r in rows[1:])


def test_checkpoints_hold_adapters_and_optimizer_state_only(rl_runs):
    ckpt_dir = os.path.join(rl_runs["root"], "full", "checkpoints")
    mgr = ocp.CheckpointManager(ckpt_dir)
    restored = mgr.restore(mgr.latest_step())
    mgr.close()
    adapters = {k for k in rl_runs["full"] if lora.is_adapter(k)}
    assert set(restored["params"]) == adapters
    moments = [x for x in jax.tree.leaves(restored["opt_state"]) if getattr(x, "ndim", 0) >= 2]
    assert moments and all(x.shape in {rl_runs["full"][k].shape for k in adapters}
                           for x in moments)
    meta = dict(restored["meta"])
    assert meta["lora"]["rank"] == 4 and meta["init"]["seed"] == rl_runs["c"].seed


def test_lora_run_resumes_exactly(rl_runs):
    assert rl_runs["part_steps"] == 2
    for k, v in rl_runs["full"].items():
        np.testing.assert_array_equal(v, rl_runs["resumed"][k])
    drop = {"rollout_seconds", "update_seconds", "logprob_seconds"}
    a, b = (read_metrics(os.path.join(rl_runs["root"], d, "metrics.jsonl"))
            for d in ("full", "part"))
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
        [{k: v for k, v in r.items() if k not in drop} for r in b]
