"""launch/: the scripts parse, their dry runs print the expected commands, and the Colab
notebook's code cells run on CPU against configs/tiny.py."""

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch")


@pytest.mark.parametrize("script", ["tpu_pod.sh", "slurm_gpu.sbatch"])
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", os.path.join(LAUNCH, script)], check=True)


def test_tpu_pod_dry_run_prints_every_command():
    out = subprocess.run(
        ["bash", os.path.join(LAUNCH, "tpu_pod.sh"), "--dry-run", "--name", "pod1", "--zone",
         "us-east5-a", "--type", "v5p-32", "--create", "--workdir", "gs://b/run", "--",
         "configs/llada_8b.py:igpo-v5p32", "--config.model.hf_dir=/data/llada"],
        check=True, capture_output=True, text=True).stdout.splitlines()
    assert len(out) == 4
    assert out[0].startswith("gcloud compute tpus tpu-vm create pod1 --zone us-east5-a "
                             "--accelerator-type v5p-32")
    assert "scp --recurse" in out[1] and "--worker=all" in out[1]
    assert "pip" in out[2] and "--worker=all" in out[2]
    run = out[3].replace("\\", "")
    assert "--worker=all" in run and "python -m igpo_jax.main --config " \
        "configs/llada_8b.py:igpo-v5p32 --workdir gs://b/run --config.model.hf_dir=/data/llada" in run
    # without --create no slice is created; bad usage is refused with a message
    out = subprocess.run(["bash", os.path.join(LAUNCH, "tpu_pod.sh"), "--dry-run", "--name", "p",
                          "--zone", "z", "--", "configs/tiny.py"], check=True,
                         capture_output=True, text=True).stdout
    assert "create" not in out and out.count("gcloud") == 3
    bad = subprocess.run(["bash", os.path.join(LAUNCH, "tpu_pod.sh"), "--dry-run"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_slurm_dry_run():
    env = dict(os.environ, CONFIG="configs/llada_8b.py:igpo-8xgpu", WORKDIR="/shared/r",
               DRY_RUN="1")
    out = subprocess.run(["bash", os.path.join(LAUNCH, "slurm_gpu.sbatch"), "--config.seed=3"],
                         check=True, capture_output=True, text=True, env=env).stdout
    assert out.split() == ["srun", "--kill-on-bad-exit=1", "python", "-m", "igpo_jax.main",
                           "--config", "configs/llada_8b.py:igpo-8xgpu", "--workdir",
                           "/shared/r", "--config.seed=3"]
    env.pop("CONFIG")
    assert subprocess.run(["bash", os.path.join(LAUNCH, "slurm_gpu.sbatch")], env=env,
                          capture_output=True).returncode != 0


@pytest.mark.slow
def test_colab_notebook_runs_headless_and_streams(tmp_path):
    """The notebook as Colab runs it: a Jupyter kernel (nbclient) executes every cell in
    order from launch/, with the parameter cell set to configs/tiny.py and a temporary
    workdir. The run's progress must reach the cell while the run is going (streamed,
    not printed at the end), and the results cell shows the table and the plot."""
    import time

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(os.path.join(LAUNCH, "colab_demo.ipynb"), as_version=4)
    params = [c for c in nb.cells if c.cell_type == "code" and "CONFIG_FILE =" in c.source]
    assert len(params) == 1
    params[0].source += (f"\nCONFIG_FILE = {os.path.join(ROOT, 'configs', 'tiny.py')!r}"
                         f"\nWORKDIR = {str(tmp_path / 'colab')!r}"
                         # fewer steps: the cells, not the recipe, are under test here
                         "\nEXTRA_FLAGS = ['--config.rl.num_steps=2', '--config.eval.every=0']")
    run_cell = next(i for i, c in enumerate(nb.cells) if "igpo_jax.main" in c.source
                    and "Popen" in c.source)
    arrivals: list[tuple[float, str]] = []  # (time, text) of the run cell's stream output

    class Recording(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            if cell_index == run_cell and msg["msg_type"] == "stream":
                arrivals.append((time.time(), msg["content"]["text"]))
            return super().output(outs, msg, display_id, cell_index)

    client = Recording(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": LAUNCH}})
    client.execute()
    finished = time.time()
    text = "".join(t for _, t in arrivals)
    assert "grpo [1/2]" in text and "[pipeline]" in text
    # streamed: the first progress line arrived long before the last (the run takes
    # tens of seconds on CPU), in many separate messages
    first = next(t for t, x in arrivals if "[pipeline]" in x)
    assert len(arrivals) >= 5 and arrivals[-1][0] - first > 5, arrivals[:3]
    assert finished >= arrivals[-1][0]
    results = next(c for c in nb.cells if "format_results" in c.source)
    shown = "".join(o.get("text", "") for o in results.outputs if o.output_type == "stream")
    assert "| igpo |" in shown and "| grpo |" in shown and "held-out accuracy" in shown
    assert any("image/png" in o.get("data", {}) for o in results.outputs
               if o.output_type == "display_data")
    assert os.path.exists(tmp_path / "colab" / "results.json")
