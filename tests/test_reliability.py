"""Regression tests of the failures fault injection found (records, locks, data)."""

import json
import logging
import os
import subprocess
import sys

import pytest

from igpo_jax import configlib, run, workdir_lock
from igpo_jax.metrics import MetricsWriter, read_metrics
from igpo_jax.configlib import typed


def _write(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(lines))


def test_half_written_last_record_is_dropped_with_a_warning(tmp_path, caplog):
    p = tmp_path / "metrics.jsonl"
    _write(p, ['{"step": 1}\n', '{"step": 2}\n', '{"step": 3, "loss": 0.'])
    with caplog.at_level(logging.WARNING):
        assert read_metrics(str(p)) == [{"step": 1}, {"step": 2}]
    assert "metrics.jsonl:3" in caplog.text and "unfinished last record" in caplog.text


def test_bad_record_before_the_last_names_file_and_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    _write(p, ['{"step": 1}\n', 'garbage\n', '{"step": 3}\n'])
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON record"):
        read_metrics(str(p))


def test_fresh_start_starts_a_fresh_record(tmp_path, caplog):
    """A run killed before its first checkpoint left rows; the rerun starts at step 0
    and its record must not keep them (steps would read 1, 2, 1, 2, 3, ...)."""
    _write(tmp_path / "metrics.jsonl", ['{"step": 1}\n', '{"step": 2}\n'])
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    with caplog.at_level(logging.WARNING):
        w.truncate_after(0)
    assert "dropping the 2 records" in caplog.text
    w.write({"step": 1, "loss": 1.0})
    assert [r["step"] for r in read_metrics(str(tmp_path / "metrics.jsonl"))] == [1]


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


def test_long_prompts_are_found_when_the_data_is_loaded(tmp_path, capsys):
    """A prompt longer than prompt_len stops the run before any step, with the count
    and file:line (not when its batch is drawn); skip_bad_rows drops it."""
    from configs import tiny
    from igpo_jax.rl import trainer
    rows = [{"question": "1 2", "answer": "3"}] * 6 + [{"question": "1 2 3 4 5 6 7 8 9", "answer": "0"}]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    c = tiny.get_config("rl")
    c.eval.every = 0
    c.rl.update(num_steps=1, algo="grpo", prompts_per_step=2)
    c.data.update(source="jsonl", train_path=str(path), test_path=str(path))
    with pytest.raises(ValueError, match=r"1 prompts longer than sampler.prompt_len=12 .*"
                                         r"train.jsonl:7"):
        trainer.train(typed(c), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken
    c.data.skip_bad_rows = True
    trainer.train(typed(c), str(tmp_path / "run"))
    assert {r["rollout_step"] for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl"))} == {1}


def test_binary_data_file_is_named(tmp_path):
    from igpo_jax.data.sources import DataError, load_file
    p = tmp_path / "train.jsonl"
    p.write_bytes(b'{"question": "1", "answer": "1"}\n\x1f\x8b\x08\x00\xff\xfe binary')
    with pytest.raises(DataError, match=r"train.jsonl:2: not UTF-8 text at byte"):
        load_file("jsonl", str(p))
