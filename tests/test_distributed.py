"""Multi-process runs (igpo_jax/distributed.py): what a lost process does to a two-process
run (jax.distributed on localhost, the command line as users run it): SIGTERM of one
process only, then SIGKILL of one process, then a re-run of both that resumes and ends
with the record of an uninterrupted run."""

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.processes import TEST_XLA_FLAGS, strip_timings

from igpo_jax import distributed, preemption
from igpo_jax.checkpoint import Checkpointer
from igpo_jax.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEARTBEAT_S = 5
STEPS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(workdir, port, only=(0, 1), extra=()):
    """The two processes of one run (process 0 first; ``only``: the ones started)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))
           or k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}  # (conftest)
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, XLA_FLAGS=TEST_XLA_FLAGS)
    procs = []
    for pid in only:
        cmd = [sys.executable, "-m", "igpo_jax.main", "--config", "configs/tiny.py:rl",
               "--workdir", str(workdir), f"--config.rl.num_steps={STEPS}",
               "--config.eval.every=0", "--config.checkpoint.every=2",
               "--config.distributed.mode=on",
               f"--config.distributed.coordinator_address=127.0.0.1:{port}",
               "--config.distributed.num_processes=2", f"--config.distributed.process_id={pid}",
               f"--config.distributed.heartbeat_timeout_s={HEARTBEAT_S}", *extra]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def _finish(procs, timeout=300):
    """(exit codes, outputs); no process is left behind."""
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [p.returncode for p in procs], outs


def _last_step(workdir) -> int:
    """The highest rollout step of the records written so far (0 before the first); the
    checkpoints count rollout steps."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    return max((r.get("rollout_step", 0) for r in read_metrics(path)), default=0)


def _wait_for_step(procs, workdir, n, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if _last_step(workdir) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"the run did not reach step {n}: "
                         f"{[p.poll() for p in procs]}, {_finish(procs, 5)[1]}")


def _record(workdir):
    return strip_timings(read_metrics(os.path.join(workdir, "metrics.jsonl")))


def test_single_process_answers_without_collectives():
    assert distributed.any_process(True) is True and distributed.any_process(False) is False
    assert distributed.lost_processes() is None


def test_timeouts_below_one_second_are_refused_before_start():
    d = distributed.DistributedConfig(mode="on", coordinator_address="127.0.0.1:1",
                                      num_processes=2, process_id=0, heartbeat_timeout_s=0)
    with pytest.raises(ValueError, match="heartbeat_timeout_s=0"):
        distributed.initialize(d)
    with pytest.raises(ValueError, match="init_timeout_s=0 must be >= 1"):
        distributed.initialize(dataclasses.replace(d, heartbeat_timeout_s=5, init_timeout_s=0))


@pytest.mark.slow
def test_a_process_that_never_connects_ends_the_others_after_the_start_up_bound(tmp_path):
    """Process 1 of 2 never starts (or dies before it connects): process 0 waits for it
    distributed.init_timeout_s, not JAX's 300 s, then stops with JAX's own message; it
    has said how long it waits."""
    procs = _start(tmp_path / "run", _free_port(), only=(0,),
                   extra=("--config.distributed.init_timeout_s=3",))
    started = time.time()
    codes, outs = _finish(procs, timeout=120)
    took = time.time() - started
    assert codes[0] == -signal.SIGABRT, (codes, outs[0][-2000:])  # JAX's runtime aborts it
    assert "waiting up to 3 s for every process to connect" in outs[0], outs[0][-2000:]
    assert "DEADLINE_EXCEEDED" in outs[0] and "RegisterTask" in outs[0], outs[0][-2000:]
    assert took < 100, took  # start-up (imports) + 3 s, far below JAX's default 300 s
    assert not (tmp_path / "run").exists()  # stopped before the workdir was made
    print(f"process 0 stopped {took:.1f} s after its launch (bound 3 s)")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The record of the same run, never interrupted."""
    workdir = tmp_path_factory.mktemp("straight")
    codes, outs = _finish(_start(workdir, _free_port()))
    assert codes == [0, 0], outs[0][-3000:]
    return _record(workdir)


@pytest.mark.slow
def test_sigterm_then_sigkill_of_one_process_then_a_rerun_ends_with_the_straight_record(
        tmp_path, straight):
    """One run through both faults (one sequence: with the uninterrupted run, the suite
    starts the two processes four times rather than five):

    1. SIGTERM to process 1 only: both processes stop with the preemption code at the
       same checkpoint, saved although not due.
    2. The re-run resumes from it; SIGKILL of process 1 (no handler runs, no checkpoint)
       ends the survivor within the heartbeat bound, naming the lost process.
    3. A re-run of both resumes and ends with the record of the uninterrupted run."""
    workdir = tmp_path / "run"
    procs = _start(workdir, _free_port())
    _wait_for_step(procs, workdir, 1)
    procs[1].send_signal(signal.SIGTERM)  # process 1 only
    codes, outs = _finish(procs)
    assert codes == [preemption.EXIT_PREEMPTED] * 2, (codes, outs[0][-2000:], outs[1][-2000:])
    assert "a stop signal on another process" in outs[0]
    stopped = Checkpointer(str(workdir / "checkpoints")).latest_step()
    # saved although not due, with steps left for the kill after the resume
    assert stopped is not None and 1 <= stopped <= STEPS - 3

    procs = _start(workdir, _free_port())
    _wait_for_step(procs, workdir, stopped + 1)  # resumed, and one step further
    procs[1].kill()  # SIGKILL
    killed_at = time.time()
    procs[0].wait(timeout=HEARTBEAT_S + 60)  # a hang fails here
    took = time.time() - killed_at
    codes, outs = _finish(procs)
    assert "resum" in outs[0].lower()
    assert codes[1] == -signal.SIGKILL
    assert codes[0] != 0, outs[0][-3000:]
    # the survivor names the lost process: ours (exit 76) or, when the runtime's
    # heartbeat check fires first, JAX's own fatal message
    ours = "lost contact with process(es) [1]" in outs[0]
    jaxs = "stopped sending heartbeats" in outs[0] and "Terminating process" in outs[0]
    assert ours or jaxs, outs[0][-3000:]
    if ours:
        assert codes[0] == distributed.EXIT_LOST_PROCESS
    print(f"survivor exited {took:.1f} s after the SIGKILL (heartbeat {HEARTBEAT_S} s), "
          f"code {codes[0]}; latest checkpoint after the kill:",
          Checkpointer(str(workdir / "checkpoints")).latest_step())

    codes, outs = _finish(_start(workdir, _free_port()))
    assert codes == [0, 0], outs[0][-3000:]
    assert "resum" in outs[0].lower()
    assert _record(workdir) == straight
