"""The workdir lock (igpo_jax/workdir_lock.py): a second run on a workdir refuses, a dead
holder's lock is taken over, another host's is not guessed at."""

import json
import logging
import os
import subprocess
import sys

import pytest

from igpo_jax import configlib, run, workdir_lock


def test_second_run_on_a_workdir_refuses_with_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open(tmp_path / workdir_lock.LOCK_NAME, "w") as f:
            json.dump({"pid": holder.pid, "host": __import__("socket").gethostname(),
                       "since": "then"}, f)
        with pytest.raises(workdir_lock.WorkdirBusy, match=f"PID {holder.pid} on"):
            workdir_lock.acquire(str(tmp_path))
        from configs import tiny
        with pytest.raises(configlib.ConfigError, match=f"in use by another run: PID {holder.pid}"):
            run.run(tiny.get_config("rl"), str(tmp_path))
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open(tmp_path / workdir_lock.LOCK_NAME, "w") as f:
        json.dump({"pid": dead.pid, "host": __import__("socket").gethostname()}, f)
    with caplog.at_level(logging.WARNING):
        path = workdir_lock.acquire(str(tmp_path))
    assert "stale lock" in caplog.text
    assert json.load(open(path))["pid"] == os.getpid()
    workdir_lock.release(str(tmp_path))
    assert not os.path.exists(path)


def test_lock_on_another_host_is_not_guessed_at(tmp_path):
    with open(tmp_path / workdir_lock.LOCK_NAME, "w") as f:
        json.dump({"pid": 1, "host": "some-other-host"}, f)
    with pytest.raises(workdir_lock.WorkdirBusy, match="some-other-host"):
        workdir_lock.acquire(str(tmp_path))
