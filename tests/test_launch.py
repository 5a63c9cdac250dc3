"""launch/: the scripts parse, their dry runs print the expected commands, and the Colab
notebook's code cells run on CPU against configs/tiny.py."""

import json
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
def test_colab_notebook_code_cells_run_on_cpu(tmp_path, capsys):
    nb = json.load(open(os.path.join(LAUNCH, "colab_demo.ipynb")))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    ns = {}
    for src in cells:
        lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("!", "%"))]
        code = "\n".join(lines)
        if "CONFIG_FILE =" in code:  # the parameter cell: the tiny config, a temp workdir
            code += (f"\nCONFIG_FILE = {os.path.join(ROOT, 'configs', 'tiny.py')!r}"
                     f"\nWORKDIR = {str(tmp_path / 'colab')!r}")
        exec(compile(code, "colab_demo.ipynb", "exec"), ns)  # noqa: S102
    out = capsys.readouterr().out
    assert "| igpo |" in out and "| grpo |" in out and "held-out accuracy" in out
    assert "grpo [1/3]" in out  # the run's progress lines reach the cell (streamed)
    assert os.path.exists(tmp_path / "colab" / "results.json")
