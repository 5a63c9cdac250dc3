"""LoRA in training and export: only adapters train and are checkpointed, the reference
policy is the base, runs resume exactly, later stages and the Hugging Face export
merge the adapters into the base."""

import json
import os
import subprocess
import sys

import jax
import ml_dtypes
import numpy as np
import orbax.checkpoint as ocp
import pytest
from safetensors import safe_open

from igpo_jax import experiment, export, sft
from igpo_jax.metrics import read_metrics
from igpo_jax.models import hf_io, llada, lora, transformer
from igpo_jax.rl import trainer
from igpo_jax.configlib import typed

pytestmark = pytest.mark.slow  # processes / whole training runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_lora(mode="rl", **rl):
    from configs import tiny
    c = tiny.get_config("rl")
    c.mode = mode
    c.eval.every = 0
    c.model.lora.update(rank=4, alpha=8.0, dropout=0.1, targets="q_proj,k_proj,v_proj,up_proj")
    c.rl.update(**{"num_steps": 3, "num_iterations": 2, **rl})
    return c


def _np(tree):
    return {k: np.asarray(v) for k, v in tree.items()}


@pytest.fixture(scope="module")
def rl_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_rl")
    c = tiny_lora(algo="igpo", beta=0.01)
    cfg = experiment.model_config(typed(c))
    initial = _np(experiment.initial_params(typed(c), cfg, experiment.build_mesh(typed(c))))
    full = trainer.train(typed(c), str(root / "full"))
    part = trainer.train(typed(c), str(root / "part"), stop_after=2)
    resumed = trainer.train(typed(c), str(root / "part"))
    return dict(c=c, cfg=cfg, root=root, initial=initial, full=_np(full["params"]),
                part_steps=part["steps"], resumed=_np(resumed["params"]))


def test_only_adapters_train_and_the_reference_is_the_base(rl_runs):
    initial, full = rl_runs["initial"], rl_runs["full"]
    assert set(full) == set(initial) and any(lora.is_adapter(k) for k in full)
    for k in full:
        if lora.is_adapter(k):
            if k.endswith("_lora_b"):
                assert not initial[k].any() and np.abs(full[k]).max() > 0, k
        else:
            np.testing.assert_array_equal(full[k], initial[k])  # the base never moves
    rows = read_metrics(os.path.join(rl_runs["root"], "full", "metrics.jsonl"))
    # fresh adapters (B = 0) are the base exactly: zero KL to the reference policy
    # (the base with adapters off) before the first update, non-zero after it
    assert rows[0]["kl"] == 0.0
    assert all(r["kl"] > 0 for r in rows[1:])


def test_checkpoints_hold_adapters_and_optimizer_state_only(rl_runs):
    ckpt_dir = os.path.join(rl_runs["root"], "full", "checkpoints")
    mgr = ocp.CheckpointManager(ckpt_dir)
    restored = mgr.restore(mgr.latest_step())
    mgr.close()
    adapters = {k for k in rl_runs["full"] if lora.is_adapter(k)}
    assert set(restored["params"]) == adapters
    moments = [x for x in jax.tree.leaves(restored["opt_state"]) if getattr(x, "ndim", 0) >= 2]
    assert moments and all(x.shape in {rl_runs["full"][k].shape for k in adapters}
                           for x in moments)
    meta = dict(restored["meta"])
    assert meta["lora"]["rank"] == 4 and meta["init"]["seed"] == rl_runs["c"].seed


def test_lora_run_resumes_exactly(rl_runs):
    assert rl_runs["part_steps"] == 2
    for k, v in rl_runs["full"].items():
        np.testing.assert_array_equal(v, rl_runs["resumed"][k])
    drop = {"rollout_seconds", "update_seconds", "logprob_seconds"}
    a, b = (read_metrics(os.path.join(rl_runs["root"], d, "metrics.jsonl"))
            for d in ("full", "part"))
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
        [{k: v for k, v in r.items() if k not in drop} for r in b]


def _hf_state_dict_shapes(hf: dict) -> dict:
    """What LLaDA's Hugging Face modelling code (LLaDAModelLM with LLaDALlamaBlock layers)
    registers, written from its module structure: name -> shape ([out, in] linears)."""
    d, heads = hf["d_model"], hf["n_heads"]
    kv = (hf.get("n_kv_heads") or heads) * (d // heads)
    hidden = hf.get("mlp_hidden_size") or hf["mlp_ratio"] * d
    rows = hf.get("embedding_size") or hf["vocab_size"]
    sd = {"model.transformer.wte.weight": (rows, d), "model.transformer.ln_f.weight": (d,)}
    if not hf["weight_tying"]:
        sd["model.transformer.ff_out.weight"] = (rows, d)
    for i in range(hf["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        sd.update({p + "attn_norm.weight": (d,), p + "ff_norm.weight": (d,),
                   p + "q_proj.weight": (d, d), p + "k_proj.weight": (kv, d),
                   p + "v_proj.weight": (kv, d), p + "attn_out.weight": (d, d),
                   p + "ff_proj.weight": (hidden, d), p + "up_proj.weight": (hidden, d),
                   p + "ff_out.weight": (d, hidden)})
    return sd


def _read_hf_tensors(out):
    index = os.path.join(out, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index)
             else ["model.safetensors"])
    tensors = {}
    for fn in files:
        with safe_open(os.path.join(out, fn), framework="np") as f:
            tensors.update({k: f.get_tensor(k) for k in f.keys()})
    return tensors


def test_export_merges_adapters_into_a_loadable_hf_checkpoint(rl_runs, tmp_path):
    c, cfg = rl_runs["c"], rl_runs["cfg"]
    source = tmp_path / "source"  # a Hugging Face folder the run "started from"
    source.mkdir()
    (source / "modeling_llada.py").write_text("# modelling code\n")
    (source / "tokenizer.json").write_text("{}")
    (source / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "x.Y"},
                                                    "custom_key": 7, "d_model": 1}))
    c = c.copy_and_resolve_references()
    out = tmp_path / "hf"
    summary = export.export(typed(c), str(rl_runs["root"] / "full"), str(out), shard_gib=2e-5)
    assert summary["merged_lora"] and summary["step"] == 3 and len(summary["files"]) > 1
    assert summary["files"][0] == f"model-00001-of-{len(summary['files']):05d}.safetensors"
    loaded = _np(hf_io.load_hf_checkpoint(out).param_dict())
    full = rl_runs["full"]
    assert set(loaded) == set(lora.base(full))
    for k in loaded:  # W + (alpha / r) A @ B, against a float64 numpy merge
        want = full[k].astype(np.float64)
        if k[len("blocks/"):] in cfg.lora.targets:
            want = want + 2.0 * np.einsum("nir,nro->nio", full[k + "_lora_a"].astype(np.float64),
                                          full[k + "_lora_b"].astype(np.float64))
        np.testing.assert_allclose(loaded[k], want, rtol=1e-6, atol=1e-8, err_msg=k)
    assert np.abs(loaded["blocks/q_proj"] - full["blocks/q_proj"]).max() > 1e-4  # merged
    # and bit-exactly the merged parameters the export wrote (the same merge, again)
    again, meta = experiment.params_of_run(str(rl_runs["root"] / "full" / "checkpoints"), c,
                                           cfg.replace(lora=None), experiment.build_mesh(typed(c)))
    assert meta["lora"]["rank"] == 4
    for k, v in again.items():
        np.testing.assert_array_equal(loaded[k], np.asarray(v), err_msg=k)
    # what LLaDA's modelling code would load: every name, shape and dtype, nothing more
    hf = json.load(open(out / "config.json"))
    tensors = _read_hf_tensors(out)
    want = _hf_state_dict_shapes(hf)
    assert {k: tuple(v.shape) for k, v in tensors.items()} == want
    assert {v.dtype for v in tensors.values()} == {np.dtype(np.float32)}
    index = json.load(open(out / "model.safetensors.index.json"))
    assert set(index["weight_map"]) == set(want)
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in tensors.values())
    assert hf["torch_dtype"] == "float32" and hf["d_model"] == cfg.d_model
    assert hf["block_type"] == "llama" and hf["activation_type"] == "silu" and hf["rope"]
    assert hf["layer_norm_type"] == "rms" and hf["weight_tying"] is False
    assert hf["residual_dropout"] == hf["attention_dropout"] == hf["embedding_dropout"] == 0
    assert "lora" not in json.dumps(hf)
    # without a source folder nothing else is written; with one its extras are kept
    assert hf["auto_map"]["AutoModel"].startswith("modeling_llada")
    assert not (out / "modeling_llada.py").exists()


def test_export_cli_bfloat16_with_source_files(rl_runs, tmp_path):
    """The README's command: --export_hf on a LoRA run, bf16, one file, source extras."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "modeling_llada.py").write_text("# modelling code\n")
    (source / "tokenizer.json").write_text("{}")
    hf0 = llada.config_to_hf(transformer.TransformerConfig.tiny())  # stands in for the original folder
    hf0.update(custom_key=7)
    (source / "config.json").write_text(json.dumps(hf0))
    out = tmp_path / "hf_bf16"
    cmd = [sys.executable, "-m", "igpo_jax.main", "--config", "configs/tiny.py:rl",
           "--workdir", str(rl_runs["root"] / "full"), "--export_hf", str(out),
           "--export_dtype", "bfloat16", "--export_shard_gb", "0",
           "--config.model.lora.rank=4", "--config.model.lora.alpha=8.0"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LoRA adapters merged" in proc.stdout and "note: model.hf_dir is not set" in \
        proc.stdout
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    tensors = _read_hf_tensors(out)
    assert {v.dtype for v in tensors.values()} == {np.dtype(ml_dtypes.bfloat16)}
    merged = lora.merge(rl_runs["full"], rl_runs["cfg"].lora)
    q = tensors["model.transformer.blocks.1.q_proj.weight"]
    np.testing.assert_array_equal(q, np.asarray(merged["blocks/q_proj"][1]).T.astype(
        ml_dtypes.bfloat16))
    # the same export with a source folder keeps its config keys and copies its files
    out2 = tmp_path / "hf_src"
    hf_io.save_hf_checkpoint(merged, rl_runs["cfg"], out2, source_dir=source)
    assert (out2 / "modeling_llada.py").exists() and (out2 / "tokenizer.json").exists()
    assert json.load(open(out2 / "config.json"))["custom_key"] == 7


def test_a_lora_run_evaluates_from_its_workdir_as_from_its_exported_folder(rl_runs, tmp_path):
    """The adapters-only workdir (its base rebuilt, adapters merged) and the Hugging Face
    folder exported from it give the same generations and the same score."""
    from igpo_jax import evaluate
    c = rl_runs["c"].copy_and_resolve_references()
    export.export(typed(c), str(rl_runs["root"] / "full"), str(tmp_path / "hf"), shard_gib=0)
    runs = {}
    for name, where in (("workdir", {"model.init_from": str(rl_runs["root"] / "full")}),
                        ("hf", {"model.hf_dir": str(tmp_path / "hf")})):
        e = c.copy_and_resolve_references()
        e.mode = "eval"
        e.model.lora.rank = 0  # evaluate the merged model
        for key, value in where.items():
            section, field = key.split(".")
            e[section][field] = value
        summary = evaluate.run_eval(typed(e), str(tmp_path / name), show_progress=False)
        rows = [json.loads(line) for line in
                (tmp_path / name / "eval" / "generations.jsonl").read_text().splitlines()]
        runs[name] = (summary["accuracy"], [r["completion"] for r in rows])
    assert len(runs["workdir"][1]) == 8
    assert runs["workdir"] == runs["hf"]
    # and the adapters are in what was evaluated: the merged weights are not the base's
    e = c.copy_and_resolve_references()
    e.mode, e.model.lora.rank, e.model.init_from = "eval", 0, str(rl_runs["root"] / "full")
    merged = _np(experiment.initial_params(typed(e), experiment.model_config(typed(e)),
                                           experiment.build_mesh(typed(e))))
    base = {k: v for k, v in rl_runs["initial"].items() if not lora.is_adapter(k)}
    assert set(merged) == set(base)
    assert not np.array_equal(merged["blocks/q_proj"], base["blocks/q_proj"])
    np.testing.assert_array_equal(merged["blocks/attn_out"], base["blocks/attn_out"])  # no adapter


def test_sft_lora_then_rl_from_it_merges_the_adapters(tmp_path):
    c = tiny_lora("sft")
    c.sft.num_steps = 2
    res = sft.train(typed(c), str(tmp_path / "sft"))
    sft_params = _np(res["params"])
    assert np.abs(sft_params["blocks/up_proj_lora_b"]).max() > 0
    # the next stage: full-parameter RL from the SFT-LoRA run gets base + merged adapters
    r = tiny_lora("rl")
    r.model.lora.rank = 0
    r.model.init_from = str(tmp_path / "sft")
    cfg = experiment.model_config(typed(r))
    got = experiment.initial_params(typed(r), cfg, experiment.build_mesh(typed(r)))
    want = lora.merge(sft_params, experiment.model_config(typed(c)).lora)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=1e-6,
                                   atol=1e-7)
    # a LoRA stage on top of it starts from the merged base with fresh adapters
    r.model.lora.rank = 4
    cfg = experiment.model_config(typed(r))
    got2 = experiment.initial_params(typed(r), cfg, experiment.build_mesh(typed(r)))
    np.testing.assert_array_equal(np.asarray(got2["blocks/q_proj"]), np.asarray(got["blocks/q_proj"]))
    assert not np.asarray(got2["blocks/q_proj_lora_b"]).any()
    # the demo's asset export refuses an adapters-only stage with a pointer to --export_hf
    from igpo_jax import pipeline
    (tmp_path / "sft" / "DONE.json").write_text("{}")
    with pytest.raises(ValueError, match="--export_hf"):
        pipeline.export_stage(str(tmp_path / "sft"), str(tmp_path / "asset"))
