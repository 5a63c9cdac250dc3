"""Helpers of the tests that run the command line in a subprocess: the 5-step tiny RL
command, its environment (the same 8 simulated devices as the test process, so numerics
match exactly), a SIGTERM sent when a condition holds, and records without timings."""

import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The suite's XLA setting (tests/conftest.py), passed on to every subprocess: LLVM's
# optimisation of the compiled CPU code off. Compiling, not running, is most of the
# suite's time on tiny models; the programs and their float arithmetic are the same (the
# optimiser does not reorder float operations), only slower to run.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
TIMING = {"rollout_seconds", "update_seconds", "logprob_seconds"}


def tiny_rl_cmd(workdir, *extra):
    return [sys.executable, "-m", "igpo_jax.main", "--config", "configs/tiny.py:rl",
            "--workdir", str(workdir), "--config.rl.num_steps=5", "--config.eval.every=0",
            "--config.checkpoint.every=100", *extra]


def subprocess_env():
    # the same 8 simulated devices as this test process, so numerics match exactly
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count=8 {TEST_XLA_FLAGS}"}


def sigterm_when(run, ready, timeout: float, poll: float, env=None):
    """Starts the 5-step run in ``run``, waits until ``ready()`` (or ``timeout`` s, or the
    process ending), sends SIGTERM; returns (exit code, output)."""
    proc = subprocess.Popen(tiny_rl_cmd(run), cwd=ROOT, env=env or subprocess_env(),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(poll)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out


def strip_timings(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
