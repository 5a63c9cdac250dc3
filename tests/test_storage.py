"""Storage (igpo_jax/storage.py): runs whose every file lives in a bucket. A local Google
Cloud Storage emulator (``gcp-storage-emulator``, the GCS JSON API on localhost, through
tests/gcs_emulator.py which adds the generation header GCS sends) stands in for ``gs://``.
Orbax's array files go to it through TensorStore (``TENSORSTORE_GCS_HTTP_URL``); every
other file through etils.epath and gcsfs (``STORAGE_EMULATOR_HOST``)."""

import logging
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from igpo_jax import export, preemption, storage
from igpo_jax.checkpoint import Checkpointer
from igpo_jax.metrics import read_metrics
from igpo_jax.models import hf_io
from igpo_jax.rl import trainer
from tests.conftest import STRAIGHT_RL
from tests.processes import ROOT, sigterm_when, strip_timings, subprocess_env, tiny_rl_cmd
from igpo_jax.configlib import typed

pytestmark = pytest.mark.slow  # an emulator process and whole runs
BUCKET = "igpo-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gcs():
    """The emulator on a free port, with the environment variables pointed at it (in
    this process and in the runs it starts)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "tests.gcs_emulator", "start", "--host",
                             "127.0.0.1", "--port", str(port), "--in-memory",
                             "--default-bucket", BUCKET],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the GCS emulator did not start")
            time.sleep(0.2)
    env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
           "GOOGLE_CLOUD_PROJECT": "test"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    logging.getLogger("gcsfs").setLevel(logging.ERROR)  # "no credentials": expected here
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=10)


def test_storage_round_trips_through_the_bucket(gcs):
    base = f"gs://{BUCKET}/storage"
    storage.makedirs(base)
    storage.write_text(f"{base}/a/x.json", "{}")
    storage.append_text(f"{base}/a/log.jsonl", "1\n")
    storage.append_text(f"{base}/a/log.jsonl", "2\n")
    assert storage.read_text(f"{base}/a/log.jsonl") == "1\n2\n"
    assert storage.isdir(f"{base}/a") and not storage.isdir(f"{base}/a/x.json")
    assert sorted(storage.files_under(base)) == ["a/log.jsonl", "a/x.json"]
    storage.move(f"{base}/a", f"{base}/b")
    assert not storage.exists(f"{base}/a/x.json") and storage.exists(f"{base}/b/x.json")
    assert storage.absolute(f"{base}/b/") == f"{base}/b"  # not $PWD/gs:/...


@pytest.mark.xdist_group(STRAIGHT_RL)
def test_tiny_run_in_a_bucket_survives_sigterm_and_resumes_there(gcs, tmp_path,
                                                                 straight_tiny_rl_metrics):
    """configs/tiny.py with --workdir gs://...: SIGTERM after the first step's record,
    exit 75 with a checkpoint in the bucket, the same command resumes from it, and the
    metrics equal those of an uninterrupted local run."""
    run = f"gs://{BUCKET}/runs/tiny"
    metrics = f"{run}/metrics.jsonl"

    def ready():
        return storage.exists(metrics) and storage.read_text(metrics).strip()

    code, out = sigterm_when(run, ready, 300, 0.5, env={**subprocess_env(), **gcs})
    assert code == preemption.EXIT_PREEMPTED, out[-3000:]
    assert not os.path.exists(os.path.join(ROOT, "gs:")), "a local folder named gs: appeared"
    stopped = Checkpointer(f"{run}/checkpoints").latest_step()
    assert stopped is not None and 1 <= stopped < 5
    assert storage.exists(f"{run}/checkpoints/{stopped}/checksums.sha256.json")
    done = subprocess.run(tiny_rl_cmd(run), cwd=ROOT, env={**subprocess_env(), **gcs},
                          capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"resumed igpo at step {stopped} from {run}/checkpoints" in done.stdout + done.stderr
    got, want = read_metrics(metrics), straight_tiny_rl_metrics
    assert len(got) == len(want) and strip_timings(got) == strip_timings(want)
    assert storage.exists(f"{run}/config.json") and not storage.exists(f"{run}/.lock")


def test_export_to_the_bucket_and_load_back(gcs, tmp_path):
    """A finished local run exported (sharded) to gs:// loads back bit-exactly, from the
    bucket, through the same Hugging Face reader."""
    from configs import tiny
    c = tiny.get_config("rl")
    c.rl.num_steps, c.eval.every = 1, 0
    out = trainer.train(typed(c), str(tmp_path / "run"))
    dst = f"gs://{BUCKET}/export/hf"
    summary = export.export(typed(c), str(tmp_path / "run"), dst, shard_gib=2e-5)
    assert len(summary["files"]) > 1 and summary["out_dir"] == dst
    assert storage.exists(f"{dst}/model.safetensors.index.json")
    loaded = hf_io.load_hf_checkpoint(dst).param_dict()
    assert set(loaded) == set(out["params"])
    for k, v in out["params"].items():
        np.testing.assert_array_equal(np.asarray(loaded[k]), np.asarray(v), err_msg=k)
