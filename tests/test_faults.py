"""Interruptions and numerical faults: SIGTERM, SIGKILL mid-write, corruption, NaNs."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import optim, preemption
from igpo_jax.checkpoint import Checkpointer, CorruptCheckpointError
from igpo_jax.metrics import read_metrics
from igpo_jax.rl import grpo, trainer
from igpo_jax.configlib import typed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = {"rollout_seconds", "update_seconds", "logprob_seconds"}


def _cmd(workdir, *extra):
    return [sys.executable, "-m", "igpo_jax.main", "--config", "configs/tiny.py:rl",
            "--workdir", str(workdir), "--config.rl.num_steps=5", "--config.eval.every=0",
            "--config.checkpoint.every=100", *extra]


def _env():
    # the same 8 simulated devices as this test process, so numerics match exactly
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
            "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def _sigterm_when(run, ready, timeout: float, poll: float, env=None):
    """Starts the 5-step run in ``run``, waits until ``ready()`` (or ``timeout`` s, or the
    process ending), sends SIGTERM; returns (exit code, output)."""
    proc = subprocess.Popen(_cmd(run), cwd=ROOT, env=env or _env(), stdout=subprocess.PIPE,
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


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.slow
def test_sigterm_checkpoints_exits_75_and_resumes_exactly(tmp_path, straight_tiny_rl_metrics):
    run = tmp_path / "interrupted"
    code, out = _sigterm_when(run, lambda: (run / "metrics.jsonl").exists()
                              and (run / "metrics.jsonl").read_text(), 240, 0.2)
    assert code == preemption.EXIT_PREEMPTED, out[-2000:]
    assert "re-run the same command to resume" in out
    stopped = Checkpointer(str(run / "checkpoints")).latest_step()
    assert stopped is not None and 1 <= stopped < 5  # saved although checkpoint.every=100
    done = subprocess.run(_cmd(run), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert _strip(read_metrics(run / "metrics.jsonl")) == _strip(straight_tiny_rl_metrics)


SAVER = textwrap.dedent("""
    import sys, numpy as np, jax.numpy as jnp
    from igpo_jax.checkpoint import Checkpointer, CorruptCheckpointError
    ck = Checkpointer(sys.argv[1], keep=100)
    for step in range(1, 1000):
        big = {"w": jnp.full((1500, 1500), float(step)), "v": jnp.full((700,), float(step))}
        ck.save(step, big, None, {"step": step}, force=True)
        print(step, flush=True)
""")


def test_sigkill_during_checkpoint_write_never_becomes_restore_point(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ck")], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # one complete checkpoint exists
    assert first.strip() == "1"
    time.sleep(random.uniform(0.3, 2.0))
    proc.kill()
    proc.wait()
    template = {"w": jnp.zeros((1500, 1500)), "v": jnp.zeros((700,))}
    ck = Checkpointer(str(tmp_path / "ck"), keep=100)
    params, _, meta = ck.restore(None, template)
    step = meta["step"]
    assert step >= 1
    np.testing.assert_array_equal(np.asarray(params["w"])[::300, ::300], float(step))
    np.testing.assert_array_equal(np.asarray(params["v"]), float(step))


def test_corrupted_latest_checkpoint_falls_back_with_warning(tmp_path, caplog):
    ck = Checkpointer(str(tmp_path), keep=5)
    for step in (1, 2):
        ck.save(step, {"w": jnp.full((4, 4), float(step))}, None, {"step": step}, force=True)
    ck.wait()
    # damage every data file of step 2
    for root, _, files in os.walk(tmp_path / "2"):
        for f in files:
            if "params" in root:
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"garbage")
    ck2 = Checkpointer(str(tmp_path), keep=5)
    with caplog.at_level("WARNING"):
        params, _, meta = ck2.restore(None, {"w": jnp.zeros((4, 4))})
    assert meta["step"] == 1 and float(params["w"][0, 0]) == 1.0
    assert "cannot be restored" in caplog.text
    assert "does not match the model" not in caplog.text  # damage is not a config mismatch
    # the corrupted step is kept aside, and the recomputed step 2 can be saved again
    assert (tmp_path / "corrupted" / "2").is_dir() and not (tmp_path / "2").exists()
    assert ck2.save(2, {"w": jnp.full((4, 4), 2.0)}, None, {"step": 2}, force=True)
    ck2.wait()
    assert ck2.restore(None, {"w": jnp.zeros((4, 4))})[2]["step"] == 2
    # every checkpoint corrupted: one error that says so, not a raw TensorStore trace
    for root, _, files in os.walk(tmp_path):
        rel = os.path.relpath(root, tmp_path)
        for f in files:
            if "params" in rel and not rel.startswith("corrupted"):
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"garbage")
    with pytest.raises(CorruptCheckpointError, match="no checkpoint in .* can be restored"):
        Checkpointer(str(tmp_path), keep=5).restore(None, {"w": jnp.zeros((4, 4))})


def test_mismatched_checkpoint_names_the_problem(tmp_path):
    ck = Checkpointer(str(tmp_path))
    ck.save(1, {"w": jnp.zeros((4, 4))}, None, {"step": 1}, force=True)
    ck.wait()
    with pytest.raises(Exception, match="(does not match|shape)"):
        Checkpointer(str(tmp_path)).restore(1, {"w": jnp.zeros((5, 4))})


def test_nonfinite_gradients_skip_the_update():
    tx, _ = optim.make_optimizer(dict(lr=0.1, warmup_steps=0, schedule="constant", b1=0.9,
                                      b2=0.99, weight_decay=0.0, grad_clip=1.0), 10)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    bad = {"w": jnp.array([1.0, jnp.nan, 0.0])}
    updates, state = tx.update(bad, state, params)
    assert float(jnp.abs(updates["w"]).max()) == 0.0
    assert optim.nonfinite_counts(state) == (1, 1)
    updates, state = tx.update({"w": jnp.ones(3)}, state, params)
    assert float(jnp.abs(updates["w"]).max()) > 0 and optim.nonfinite_counts(state) == (0, 1)
    with pytest.raises(optim.NonFiniteError, match="in a row"):
        for _ in range(3):
            _, state = tx.update(bad, state, params)
        optim.check_finite(state, 3, "rl", 5, 4)


def test_nan_loss_in_training_is_skipped_then_stops(tmp_path, monkeypatch):
    from configs import tiny
    c = tiny.get_config("rl")
    c.rl.num_steps, c.rl.num_iterations, c.eval.every, c.optim.max_nonfinite = 3, 1, 0, 2
    real = grpo.policy_loss

    def nan_loss(*a, **k):
        s, d, st = real(*a, **k)
        return s * jnp.nan, d, st
    monkeypatch.setitem(grpo.POLICY_LOSSES, "clipped_surrogate", nan_loss)
    with pytest.raises(optim.NonFiniteError, match="last good checkpoint"):
        trainer.train(typed(c), str(tmp_path))
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[0]["skipped_updates"] == 1
    assert Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 1


def test_unfinished_write_is_ignored_with_warning(tmp_path, caplog):
    ck = Checkpointer(str(tmp_path), keep=5)
    ck.save(1, {"w": jnp.ones((2,))}, None, {"step": 1}, force=True)
    ck.wait()
    (tmp_path / "2.orbax-checkpoint-tmp-1234").mkdir()  # what a killed write leaves
    with caplog.at_level("WARNING"):
        _, _, meta = Checkpointer(str(tmp_path), keep=5).restore(None, {"w": jnp.zeros((2,))})
    assert meta["step"] == 1
    assert "unfinished checkpoint writes" in caplog.text


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


def test_reward_crash_scores_zero_and_is_counted(monkeypatch):
    from igpo_jax import rewards

    # a grading process that starts, then dies on its first check (as one killed by the
    # out-of-memory killer would)
    dying = rewards._Grader([sys.executable, "-c", "print('\"ready\"', flush=True)"])
    monkeypatch.setattr(rewards, "GRADER", dying)
    r = rewards.MathReward()
    assert r.score("\\boxed{\\sqrt{2}}", "\\frac{2}{\\sqrt{2}}") == (0.0, False, True)
    rew, ok, failed = r.batch(["\\boxed{\\sqrt{2}}", "\\boxed{5}"], ["\\frac{2}{\\sqrt{2}}", "5"])
    assert failed == 1 and ok == [False, True]


def test_config_errors_before_compute(tmp_path):
    from configs import tiny

    from igpo_jax import configlib, run
    c = tiny.get_config("rl")
    c.rl.micro_batchsize = 8  # a typo
    with pytest.raises(configlib.ConfigError, match="unknown config key rl.micro_batchsize"):
        run.run(c, str(tmp_path))
    c = tiny.get_config("rl")
    c.mesh.update(data=3, fsdp=1, tensor=1)
    with pytest.raises(configlib.ConfigError, match="config.mesh"):
        run.run(c, str(tmp_path))
    c = tiny.get_config("rl")
    c.rl.update(prompts_per_step=1, group_size=4, micro_batch_size=4)
    with pytest.raises(configlib.ConfigError, match="data x fsdp = 8"):
        run.run(c, str(tmp_path))
    c = tiny.get_config("rl")
    c.data.train_path = str(tmp_path / "missing.jsonl")
    with pytest.raises(configlib.ConfigError, match="data.train_path.*file not found"):
        run.run(c, str(tmp_path))
    c = tiny.get_config("rl")
    (tmp_path / "file").write_text("x")
    with pytest.raises(configlib.ConfigError, match="not writable"):
        run.run(c, str(tmp_path / "file" / "sub"))


def test_sigterm_before_the_training_loop_exits_75_with_a_message(tmp_path):
    """A scheduler that waits for exit code 75 must see it also when the stop comes
    during start-up or compilation, before any step."""
    run = tmp_path / "early"
    seen = {}

    def started():  # config.json is written after the handler; no step has run yet
        seen["metrics_before"] = (run / "metrics.jsonl").exists()
        return (run / "config.json").exists()
    code, out = _sigterm_when(run, started, 120, 0.05)
    assert seen["metrics_before"] is False
    assert code == preemption.EXIT_PREEMPTED, out[-2000:]
    assert "re-run the same command to resume" in out


def test_silent_corruption_is_caught_by_checksums(tmp_path, caplog):
    """16 bytes overwritten inside a parameter file (same size, no error from the array
    reader) must not load: the checksum recorded at save time fails and the previous
    checkpoint is used, as for any other corruption."""
    ck = Checkpointer(str(tmp_path), keep=5)
    rng = np.random.default_rng(0)
    for step in (1, 2):  # random values: array files that compression cannot shrink away
        w = rng.standard_normal((64, 64)).astype(np.float32)
        w[0, 0] = step
        ck.save(step, {"w": jnp.asarray(w)}, None, {"step": step}, force=True)
    ck.wait()
    files = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path / "2" / "params") for f in fs
             if os.path.getsize(os.path.join(r, f)) > 1000]
    assert files
    with open(files[0], "r+b") as fh:
        fh.seek(os.path.getsize(files[0]) // 2)
        fh.write(b"\x7f" * 16)
    with caplog.at_level("WARNING"):
        params, _, meta = Checkpointer(str(tmp_path), keep=5).restore(None, {"w": jnp.zeros((64, 64))})
    assert meta["step"] == 1 and float(params["w"][0, 0]) == 1.0
    assert "does not match the checksum" in caplog.text


def test_disk_full_save_names_the_folder_and_the_intact_checkpoint(tmp_path, monkeypatch):
    import errno

    from igpo_jax.checkpoint import DiskFullError
    ck = Checkpointer(str(tmp_path), keep=5)
    ck.save(1, {"w": jnp.ones((4, 4))}, None, {"step": 1}, force=True)

    def full(*a, **k):
        try:  # what TensorStore / the OS raise, wrapped as Orbax wraps it
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("event loop noise") from e
    monkeypatch.setattr(ck.manager, "save", full)
    with pytest.raises(DiskFullError, match=r"disk full: .* while saving checkpoint step 2; "
                                            r"the previous checkpoint \(step 1\) is intact"):
        ck.save(2, {"w": jnp.ones((4, 4))}, None, {"step": 2}, force=True)


def test_async_save_returns_before_the_write_and_commits_with_checksums(tmp_path,
                                                                        monkeypatch):
    """save() returns while the write is still running (held here inside the checksum
    step, which runs after the files are written and before Orbax commits); nothing of
    that step is a restore point until it commits; wait() commits it, checksums
    included, and the next save waits for the previous write."""
    import threading

    from igpo_jax import checkpoint
    release, entered = threading.Event(), threading.Event()
    real = checkpoint.write_checksums

    def held(step_dir):
        entered.set()
        assert release.wait(60)
        real(step_dir)
    monkeypatch.setattr(checkpoint, "write_checksums", held)
    ck = Checkpointer(str(tmp_path), keep=5)
    assert ck.async_save
    tree = {"w": jnp.arange(12.0).reshape(3, 4)}
    ck.save(1, tree, None, {"step": 1}, force=True)  # returns with the write in flight
    assert entered.wait(60)
    assert ck.manager.is_saving_in_progress()
    assert not (tmp_path / "1").exists()  # not committed: only the temporary folder
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("1.")]
    release.set()
    ck.wait()
    assert ck.latest_step() == 1 and (tmp_path / "1" / checkpoint.CHECKSUMS).exists()
    checkpoint.verify_checksums(str(tmp_path / "1"))
    release.clear()
    entered.clear()
    ck.save(2, {"w": tree["w"] + 1}, None, {"step": 2}, force=True)
    assert entered.wait(60)
    release.set()
    ck.save(3, {"w": tree["w"] + 2}, None, {"step": 3}, force=True)  # waits for step 2
    assert ck.latest_step() >= 2 and (tmp_path / "2" / checkpoint.CHECKSUMS).exists()
    ck.close()  # waits for step 3
    params, _, meta = Checkpointer(str(tmp_path)).restore(None, tree)
    assert meta["step"] == 3
    np.testing.assert_array_equal(np.asarray(params["w"]), np.asarray(tree["w"] + 2))


def test_async_and_sync_checkpoints_hold_the_same_bytes(tmp_path):
    tree = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((16, 8)), jnp.float32)}
    opt = {"m": tree["w"] * 2}
    for mode in ("sync", "async"):
        ck = Checkpointer(str(tmp_path / mode), async_save=mode == "async")
        ck.save(7, tree, opt, {"step": 7, "mode": mode}, force=True)
        ck.close()
    a = Checkpointer(str(tmp_path / "sync")).restore(None, tree, opt)
    b = Checkpointer(str(tmp_path / "async")).restore(None, tree, opt)
    for x, y in ((a[0], b[0]), (a[1], b[1])):
        for k in x:
            np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]))


def test_disk_full_in_the_background_write_is_named_at_the_wait(tmp_path, monkeypatch):
    import errno

    from igpo_jax.checkpoint import DiskFullError
    ck = Checkpointer(str(tmp_path), keep=5)
    ck.save(1, {"w": jnp.ones((4, 4))}, None, {"step": 1}, force=True)
    ck.wait()
    ck._writing = 2

    def full():
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ck.manager, "wait_until_finished", full)
    with pytest.raises(DiskFullError, match=r"while saving checkpoint step 2; the previous "
                                            r"checkpoint \(step 1\) is intact"):
        ck.wait()


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
