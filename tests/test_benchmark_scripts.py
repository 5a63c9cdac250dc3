"""The prepared accelerator benchmark runs end to end (here on CPU with a tiny model), so
that a session with a GPU only has to start it."""

import json
import os
import subprocess
import sys

import pytest

from tests.processes import TEST_XLA_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_gpu_8b_rl_script_runs_every_phase_tiny_on_cpu(tmp_path):
    out = tmp_path / "r.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": TEST_XLA_FLAGS}
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_8b_rl.py"),
                           "--tiny", "--out", str(out), "--estimator", "trajectory"],
                          cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    r = json.loads(out.read_text())
    assert set(r["phases"]) == {"rollout exact", "rollout dual", "old log-probs",
                                "ref log-probs", "update"}
    for name, p in r["phases"].items():
        assert p["seconds"] > 0 and p["flops"] > 0 and 0 < p["mfu"], (name, p)
        assert p["plan_program"] in r["plan"] and p["plan_peak_gib"] > 0
    # the dual cache does fewer FLOPs than the exact sampler for the same rows
    assert r["phases"]["rollout dual"]["flops"] < r["phases"]["rollout exact"]["flops"]
    assert r["config"]["lora_rank"] == 4 and r["matmul_tflops"] > 0
    # the log-prob estimator's passes (one per block + the hint pass) scale its FLOPs
    passes = r["config"]["estimator_forward_passes"]
    assert r["config"]["estimator"] == "trajectory" and passes > 1
    ratio = r["phases"]["update"]["flops"] / r["phases"]["old log-probs"]["flops"]
    assert ratio == pytest.approx(4 if r["config"]["remat"] else 3)  # both x passes
