"""The command line a new user meets: --help, --print_config, one-line errors."""

import os
import subprocess
import sys

import pytest

from igpo_jax import configlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args, timeout=120):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "igpo_jax.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_help_lists_modes_configs_and_how_to_see_keys():
    r = _main("--help")
    assert r.returncode == 0, r.stderr
    for text in ("modes", "pipeline", "configs/demo.py", "configs/tiny.py",
                 "configs/sweeps/seeds.py", "--print_config"):
        assert text in r.stdout


def test_every_key_has_a_doc():
    docs = configlib.key_docs()
    lines = configlib.print_config(configlib.base_config()).splitlines()
    keys = [line for line in lines if not line.startswith("# ")]
    undocumented = [line for line in keys if "  # " not in line]
    assert not undocumented, undocumented
    sections = {line[2:].split(":")[0] for line in lines if line.startswith("# ")}
    assert {"rl", "sampler", "data.synthetic", "model.lora"} <= sections, sections
    assert "rl.algo" in docs and "resample" in docs["rl.algo"]


def test_print_config_shows_overrides_and_exits():
    r = _main("--config", "configs/tiny.py:rl", "--config.rl.num_steps=7", "--print_config")
    assert r.returncode == 0, r.stderr
    assert "rl.num_steps = 7  # rollout batches" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--config.rl.num_step=3"], "error: unknown config key rl.num_step (did you mean "
                                 "rl.num_steps?)"),
    (["--config.rl.num_steps=abc"], "error: --config.rl.num_steps=abc: invalid literal"),
    (["--config.rl.algo=ppo"], "error: config.rl.algo='ppo': expected one of ('grpo', 'igpo', "
                               "'resample')"),
    (["--config.data.source=jsonl"], "error: config.data.train_path=''"),
])
def test_user_errors_are_one_line_with_status_2(tmp_path, args, message):
    r = _main("--config", "configs/tiny.py:rl", "--workdir", str(tmp_path / "w"), *args)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()
             and "W0000" not in line and "Warning" not in line]
    assert lines == [lines[-1]] and lines[-1].startswith(message), r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "w" / "config.json").exists()  # stopped before any stage work


def test_verbose_shows_the_traceback(tmp_path):
    r = _main("--config", "configs/tiny.py:rl", "--workdir", str(tmp_path),
              "--config.rl.algo=ppo", "--verbose")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_bad_hugging_face_folders_stop_with_one_line_and_status_2(tmp_path):
    """A NaN in a downloaded tensor, and a config.json whose mask / EOS ids disagree with
    the tokenizer, are named on one line (status 2) before any training step."""
    import numpy as np

    from igpo_jax import tokenizers
    from tests import reference as ref
    tok = tokenizers.SentencePieceTokenizer()
    c = ref.hf_config(vocab=128, mask=tok.mask_id, eos=tok.eos_id)
    t = ref.random_hf_weights(c)
    t["model.transformer.blocks.0.ff_norm.weight"][3] = np.nan
    ref.write_hf_checkpoint(tmp_path / "nan", c, t)
    ref.write_hf_checkpoint(tmp_path / "ids", ref.hf_config(vocab=128, mask=126, eos=125),
                            ref.random_hf_weights(c))
    for folder, message in (("nan", "ff_norm.weight' has 1 non-finite values"),
                            ("ids", "mask/EOS ids (126, 125) of the model")):
        r = _main("--config", "configs/tiny.py:rl", "--workdir", str(tmp_path / f"w_{folder}"),
                  f"--config.model.hf_dir={tmp_path / folder}")
        assert r.returncode == 2, r.stdout + r.stderr
        assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / f"w_{folder}" / "metrics.jsonl").exists()
