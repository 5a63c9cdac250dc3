"""--dry_run: the RL programs of an 8B-width, reduced-depth model compile on 8 simulated
devices from abstract inputs, with per-device memory and FLOPs reported."""

import jax
import pytest

from configs import llada_8b
from igpo_jax import dry_run
from igpo_jax.models import family
from igpo_jax.configlib import typed


def _config(**mesh):
    c = llada_8b.get_config("igpo")
    c.model.overrides.n_layers = 2  # 8B width (d_model 4096, vocab 126464), 2 layers
    c.sampler.update(prompt_len=32, gen_length=32, block_length=16, steps=4,
                     rollout_batch_size=8)
    c.rl.update(prompts_per_step=2, group_size=8, micro_batch_size=8, num_iterations=1)
    c.mesh.update(**mesh)
    return c


@pytest.mark.parametrize("mesh", [dict(data=1, fsdp=8, tensor=1), dict(data=2, fsdp=2, tensor=2)])
def test_dry_run_full_parameters_reports_memory_and_flops_without_allocating(mesh, capsys):
    c = _config(**mesh)
    c.model.lora.rank = 0  # train every parameter: bf16 params, float32 AdamW moments
    before = sum(x.nbytes for x in jax.live_arrays())
    report = dry_run.run(typed(c))
    # nothing the size of the model was allocated (the 2-layer model is 2.3 GB in bf16)
    assert sum(x.nbytes for x in jax.live_arrays()) - before < 50e6
    cfg = family.preset_config("llada", "llada_8b", n_layers=2)
    assert report["model"]["params"] == cfg.num_params() == report["model"]["trainable"]
    assert report["devices"] == 8 and report["mesh"] == mesh
    param_gib = cfg.num_params() * 2 / 2 ** 30
    shards = mesh["fsdp"] * mesh["tensor"]  # params are replicated over "data"
    for name in ("rollout", "logprobs"):
        prog = report["programs"][name]
        mem = prog["memory_gib"]
        # every device holds exactly its shard of the bf16 parameters (+ a small batch)
        assert param_gib / shards < mem["argument"] < param_gib / shards * 1.02, (name, mem)
        assert mem["peak"] >= mem["argument"] and prog["flops"] > 0
    upd = report["programs"]["update"]
    # the update holds bf16 params + two float32 AdamW moments (2 x 2 x the bf16 bytes),
    # all sharded like the params, and donates them (aliased outputs)
    state = 5 * param_gib / shards
    assert state < upd["memory_gib"]["argument"] < state * 1.02, upd
    assert upd["memory_gib"]["alias"] > 0.98 * state and upd["flops"] > 0
    st = report["state_gib_total"]
    assert st["params"] == pytest.approx(param_gib)
    assert st["optimizer"] == pytest.approx(4 * param_gib, rel=1e-3)
    assert st["reference_copy"] == pytest.approx(param_gib)  # beta > 0, no adapters
    out = capsys.readouterr().out
    assert "per-device peak GiB" in out and "| update |" in out and "FLOPs per RL step" in out
    assert "trains all parameters" in out


def test_dry_run_lora_holds_adapter_state_only(capsys):
    c = _config(data=1, fsdp=8, tensor=1)  # the 8B config's LoRA: r 128 on q, k, v, up
    report = dry_run.run(typed(c))
    cfg = family.preset_config("llada", "llada_8b", n_layers=2)
    d, f, r = cfg.d_model, cfg.mlp_hidden_size, 128
    adapters = cfg.n_layers * r * ((d + d) * 3 + (d + f))  # q, k, v (4096 -> 4096), up
    assert report["model"]["trainable"] == adapters
    base_gib, adapter_gib = cfg.num_params() * 2 / 2 ** 30, adapters * 4 / 2 ** 30
    upd = report["programs"]["update"]["memory_gib"]
    # frozen bf16 base + float32 adapters + their two float32 moments, all sharded 8 ways;
    # only the adapters and moments are donated
    state = (base_gib + 3 * adapter_gib) / 8
    assert state < upd["argument"] < state * 1.02, upd
    assert 3 * adapter_gib / 8 * 0.98 < upd["alias"] < 3 * adapter_gib / 8 * 1.02, upd
    st = report["state_gib_total"]
    assert st["optimizer"] == pytest.approx(2 * adapter_gib, rel=1e-3)
    assert st["reference_copy"] == 0.0  # the reference policy is the base, adapters off
    assert "trains LoRA r 128, alpha 64, dropout 0.05 on q_proj,k_proj,v_proj,up_proj" in \
        capsys.readouterr().out


@pytest.mark.parametrize("arg", ["llada_8b.py:igpo-8xgpu", "dream_7b.py:igpo-8xgpu"])
def test_readme_dry_run_configs_validate_without_data_or_weights(arg):
    """The README's --dry_run commands name no data file and no weights: the plan needs
    neither, so validation must not ask for them (a real run still does). (The 16-chip
    targets need 16 devices; the tests have 8.)"""
    import importlib.util
    import os

    from igpo_jax import configlib
    name, _, run = arg.partition(":")
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "configs", name)
    spec = importlib.util.spec_from_file_location("cfg_" + name[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config(run)
    configlib.validate(c, check_paths=False, need_weights=False)
    with pytest.raises(configlib.ConfigError, match="train_path|hf_dir"):
        configlib.validate(c, check_paths=False)


def test_dream_dry_run_plans_biases_and_shift(capsys):
    """The Dream-7B config plans the same three programs at Dream's width (2 layers)."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "configs", "dream_7b.py")
    spec = importlib.util.spec_from_file_location("cfg_dream_7b", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config("igpo-8xgpu")
    c.model.overrides.n_layers = 2
    c.model.lora.rank = 0
    c.sampler.update(prompt_len=32, gen_length=32, block_length=16, steps=4,
                     rollout_batch_size=8)
    c.rl.update(prompts_per_step=2, group_size=8, micro_batch_size=8, num_iterations=1)
    report = dry_run.run(typed(c))
    cfg = family.preset_config("dream", "dream_7b", n_layers=2)
    assert report["model"]["params"] == cfg.num_params()
    assert set(report["programs"]) == {"rollout", "logprobs", "update"}
    assert all(p["flops"] > 0 for p in report["programs"].values())
