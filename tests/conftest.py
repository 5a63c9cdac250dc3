"""Test setup: 8 simulated CPU devices for the sharding tests (set before JAX starts), and
one persistent compilation cache for the session.

Most of the suite's time is XLA compiling the same tiny programs again: every
``trainer.train`` or ``sft.train`` builds fresh jitted closures, which JAX's in-memory
cache does not share across calls. The persistent cache is keyed by the lowered
program, so identical programs compile once per session (the cached executable is the
same binary: results are unchanged). It lives in a fresh temporary folder, or in
``IGPO_TEST_COMPILATION_CACHE`` when set (reused across runs). The settings are passed
as environment variables so the suite's subprocesses (the CLI, multi-process runs)
share it. XLA compiles with LLVM's optimisation off (``processes.TEST_XLA_FLAGS``), which
cuts the compile time by about a third; unset by ``IGPO_TEST_XLA_OPTIMISE=1``.
"""

import gc
import os
import tempfile

from tests.processes import TEST_XLA_FLAGS  # noqa: E402

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if os.environ.get("IGPO_TEST_XLA_OPTIMISE") != "1" and \
        TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAGS).strip()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ.get(
    "IGPO_TEST_COMPILATION_CACHE") or tempfile.mkdtemp(prefix="igpo-jax-test-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop the in-memory executables after each test module: a whole-suite run in one
    process otherwise grows past this machine's memory. Later modules that need the same
    programs load them from the persistent cache."""
    yield
    jax.clear_caches()
    gc.collect()


# xdist groups (pytest.ini: --dist loadgroup): the users of an expensive shared fixture
# carry pytest.mark.xdist_group(NAME), so that one test process builds it, once
STRAIGHT_RL = "straight_rl"  # straight_tiny_rl_metrics
LORA_SFT = "lora_sft"  # lora_sft_run


@pytest.fixture(scope="session")
def straight_tiny_rl_metrics(tmp_path_factory):
    """The metrics of an uninterrupted 5-step run of configs/tiny.py:rl (eval off, no
    periodic checkpoint): what every interrupted-and-resumed twin must reproduce. Run
    once per session for all the resume tests that compare with it (marked
    ``xdist_group(STRAIGHT_RL)``)."""
    from configs import tiny
    from igpo_jax.configlib import typed
    from igpo_jax.metrics import read_metrics
    from igpo_jax.rl import trainer
    c = tiny.get_config("rl")
    c.rl.num_steps, c.eval.every, c.checkpoint.every = 5, 0, 100
    workdir = tmp_path_factory.mktemp("straight")
    trainer.train(typed(c), str(workdir))
    return read_metrics(str(workdir / "metrics.jsonl"))


@pytest.fixture(scope="session")
def lora_sft_run(tmp_path_factory):
    """A 2-step SFT run of configs/tiny.py with LoRA adapters (rank 4, alpha 8, on
    q/k/v/up): an adapters-only workdir for the export and the stages built on it (its
    users are marked ``xdist_group(LORA_SFT)``)."""
    import numpy as np
    from configs import tiny
    from igpo_jax import experiment, sft
    from igpo_jax.configlib import typed
    c = tiny.get_config("rl")
    c.mode, c.eval.every = "sft", 0
    c.model.lora.update(rank=4, alpha=8.0, dropout=0.1, targets="q_proj,k_proj,v_proj,up_proj")
    c.sft.num_steps = 2
    root = tmp_path_factory.mktemp("lora_sft")
    res = sft.train(typed(c), str(root / "sft"))
    cfg = experiment.model_config(typed(c))
    initial = experiment.initial_params(typed(c), cfg, experiment.build_mesh(typed(c)))
    return dict(c=c, cfg=cfg, workdir=root / "sft",
                params={k: np.asarray(v) for k, v in res["params"].items()},
                initial={k: np.asarray(v) for k, v in initial.items()})
