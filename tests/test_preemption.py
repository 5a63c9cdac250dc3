"""Stop signals (igpo_jax/preemption.py): SIGTERM during and before training exits 75 and
the same command resumes exactly."""

import os
import subprocess
import sys

import pytest

from igpo_jax import preemption
from igpo_jax.checkpoint import Checkpointer
from igpo_jax.metrics import read_metrics
from tests.conftest import STRAIGHT_RL
from tests.processes import ROOT, sigterm_when, strip_timings, subprocess_env, tiny_rl_cmd


@pytest.mark.slow
@pytest.mark.xdist_group(STRAIGHT_RL)
def test_sigterm_checkpoints_exits_75_and_resumes_exactly(tmp_path, straight_tiny_rl_metrics):
    run = tmp_path / "interrupted"
    code, out = sigterm_when(run, lambda: (run / "metrics.jsonl").exists()
                              and (run / "metrics.jsonl").read_text(), 240, 0.2)
    assert code == preemption.EXIT_PREEMPTED, out[-2000:]
    assert "re-run the same command to resume" in out
    stopped = Checkpointer(str(run / "checkpoints")).latest_step()
    assert stopped is not None and 1 <= stopped < 5  # saved although checkpoint.every=100
    done = subprocess.run(tiny_rl_cmd(run), cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (strip_timings(read_metrics(run / "metrics.jsonl"))
            == strip_timings(straight_tiny_rl_metrics))


def test_sigterm_before_the_training_loop_exits_75_with_a_message(tmp_path):
    """A scheduler that waits for exit code 75 must see it also when the stop comes
    during start-up or compilation, before any step."""
    run = tmp_path / "early"
    seen = {}

    def started():  # config.json is written after the handler; no step has run yet
        seen["metrics_before"] = (run / "metrics.jsonl").exists()
        return (run / "config.json").exists()
    code, out = sigterm_when(run, started, 120, 0.05)
    assert seen["metrics_before"] is False
    assert code == preemption.EXIT_PREEMPTED, out[-2000:]
    assert "re-run the same command to resume" in out


def test_a_stop_that_surfaces_as_another_exception_still_exits_75(tmp_path):
    """The exception raised from the SIGTERM handler can come back replaced (seen: raised
    while JAX filters a traceback, it surfaced as that filter's TypeError, and the run
    exited 1); the command line still exits 75 with the stop's message."""
    script = tmp_path / "stop.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from absl import app\n"
        "from igpo_jax import main, preemption, run\n"
        "def fake_run(*a, **k):\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(5)\n"
        "    except preemption.StoppedOutsideLoop:\n"
        "        raise TypeError(\"'NoneType' object cannot be interpreted as an integer\")\n"
        "run.run = fake_run\n"
        "sys.argv = ['igpo_jax.main', '--config', 'configs/tiny.py:rl', '--workdir', "
        f"{str(tmp_path / 'w')!r}]\n"
        "app.run(main.main, flags_parser=main.parse_flags)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True,
                       text=True, timeout=120,
                       # the script is outside the repository: import the package from it
                       env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join(
                           [root] + [p for p in [os.environ.get("PYTHONPATH")] if p])})
    assert r.returncode == preemption.EXIT_PREEMPTED, r.stdout[-1000:] + r.stderr[-2000:]
    assert "re-run the same command to resume" in r.stderr
