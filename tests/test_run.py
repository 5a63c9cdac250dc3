"""The command-line run (igpo_jax/run.py): config mistakes stop before any compute."""

import pytest


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
