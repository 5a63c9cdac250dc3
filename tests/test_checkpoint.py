"""Checkpoints (igpo_jax/checkpoint.py): restore points, corruption, checksums, disk full,
asynchronous writes."""

import os
import random
import subprocess
import sys
import textwrap
import time

import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax.checkpoint import Checkpointer, CorruptCheckpointError
from tests.processes import ROOT, subprocess_env


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
                            env=subprocess_env(), stdout=subprocess.PIPE, text=True)
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


def test_unfinished_write_is_ignored_with_warning(tmp_path, caplog):
    ck = Checkpointer(str(tmp_path), keep=5)
    ck.save(1, {"w": jnp.ones((2,))}, None, {"step": 1}, force=True)
    ck.wait()
    (tmp_path / "2.orbax-checkpoint-tmp-1234").mkdir()  # what a killed write leaves
    with caplog.at_level("WARNING"):
        _, _, meta = Checkpointer(str(tmp_path), keep=5).restore(None, {"w": jnp.zeros((2,))})
    assert meta["step"] == 1
    assert "unfinished checkpoint writes" in caplog.text


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
        params, _, meta = Checkpointer(str(tmp_path), keep=5).restore(
            None, {"w": jnp.zeros((64, 64))})
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
