"""Two CPU processes on localhost (jax.distributed, coordinator 127.0.0.1) end two IGPO
steps with the same parameters as one process with two simulated devices."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.processes import TEST_XLA_FLAGS

pytestmark = pytest.mark.slow  # processes / whole training runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, out, n, pid, port, devices, lora_rank):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))
           or k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}  # (conftest)
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, XLA_FLAGS=TEST_XLA_FLAGS)
    return subprocess.Popen([sys.executable, "-m", "tests.multiprocess_worker", str(workdir),
                             str(out), str(n), str(pid), str(port), str(devices),
                             str(lora_rank)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(procs):
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT)[0])
    finally:
        for p in procs:  # never leave a worker behind (e.g. one blocked on its peer)
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]


def _load(path):
    z = np.load(path)
    params = {k: z[k] for k in z.files if k not in ("metrics", "process_count")}
    return params, json.loads(str(z["metrics"])), int(z["process_count"])


@pytest.mark.parametrize("lora_rank", [0, 4], ids=["full", "lora"])
def test_two_processes_match_one_process_with_two_devices(tmp_path, lora_rank):
    port = _free_port()
    two = [_launch(tmp_path / "two", tmp_path / "two.npz", 2, pid, port, 1, lora_rank)
           for pid in (0, 1)]
    _wait(two)
    _wait([_launch(tmp_path / "one", tmp_path / "one.npz", 1, 0, 0, 2, lora_rank)])
    p2, m2, n2 = _load(tmp_path / "two.npz")
    p1, m1, n1 = _load(tmp_path / "one.npz")
    assert (n2, n1) == (2, 1)
    assert p1.keys() == p2.keys() and len(p1) > 5
    # same data, rollouts, rewards, all-wrong groups and replacements on both layouts
    keys = ("reward_mean", "frac_all_wrong_groups", "inpaint_triggered", "num_replaced",
            "hint_tokens")
    assert [[r[k] for k in keys] for r in m2] == [[r[k] for k in keys] for r in m1]
    assert len(m1) == 4  # 2 steps x num_iterations 2
    for k in p1:
        np.testing.assert_allclose(p2[k], p1[k], atol=1e-6, rtol=0, err_msg=k)
    # training moved the parameters (the comparison is not of two untouched inits)
    assert any(abs(r["grad_norm"]) > 0 for r in m1)
    # only process 0 wrote metrics; both took part in the checkpoint
    assert sorted(os.listdir(tmp_path / "two" / "checkpoints"))
    # the export gathered every parameter from both processes; process 0 wrote it
    e2 = load_file(str(tmp_path / "two" / "hf" / "model.safetensors"))
    e1 = load_file(str(tmp_path / "one" / "hf" / "model.safetensors"))
    assert e1.keys() == e2.keys() and len(e1) == 3 + 9 * 2
    for k in e1:
        np.testing.assert_allclose(e2[k], e1[k], atol=1e-6, rtol=0, err_msg=k)
    if lora_rank:
        assert any(k.endswith("_lora_b") for k in p1)
        assert not any("lora" in k for k in e1)  # merged
