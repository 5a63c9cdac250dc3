"""``--export_hf``: an adapters-only (LoRA) run's weights, merged, as a Hugging Face
checkpoint that LLaDA's modelling code would load, through the library call and the
command line; the exported folder evaluates as the run's own workdir does."""

import json
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open

from igpo_jax import experiment, export
from igpo_jax.configlib import typed
from igpo_jax.models import hf_io, llada, lora, transformer
from tests.conftest import LORA_SFT


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _np(tree):
    return {k: np.asarray(v) for k, v in tree.items()}


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


@pytest.mark.slow  # a training run (shared), a CLI process
@pytest.mark.xdist_group(LORA_SFT)
def test_export_merges_adapters_into_a_loadable_hf_checkpoint(lora_sft_run, tmp_path):
    run = lora_sft_run
    c, cfg = run["c"], run["cfg"]
    source = tmp_path / "source"  # a Hugging Face folder the run "started from"
    source.mkdir()
    (source / "modeling_llada.py").write_text("# modelling code\n")
    (source / "tokenizer.json").write_text("{}")
    (source / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "x.Y"},
                                                    "custom_key": 7, "d_model": 1}))
    c = c.copy_and_resolve_references()
    out = tmp_path / "hf"
    summary = export.export(typed(c), str(run["workdir"]), str(out), shard_gib=2e-5)
    assert summary["merged_lora"] and (summary["step"], summary["stage"]) == (2, "sft")
    assert len(summary["files"]) > 1
    assert summary["files"][0] == f"model-00001-of-{len(summary['files']):05d}.safetensors"
    loaded = _np(hf_io.load_hf_checkpoint(out).param_dict())
    full = run["params"]
    assert set(loaded) == set(lora.base(full))
    for k in loaded:  # W + (alpha / r) A @ B, against a float64 numpy merge
        want = full[k].astype(np.float64)
        if k[len("blocks/"):] in cfg.lora.targets:
            want = want + 2.0 * np.einsum("nir,nro->nio", full[k + "_lora_a"].astype(np.float64),
                                          full[k + "_lora_b"].astype(np.float64))
        np.testing.assert_allclose(loaded[k], want, rtol=1e-6, atol=1e-8, err_msg=k)
    assert np.abs(loaded["blocks/q_proj"] - full["blocks/q_proj"]).max() > 1e-4  # merged
    # and bit-exactly the merged parameters the export wrote (the same merge, again)
    again, meta = experiment.params_of_run(str(run["workdir"] / "checkpoints"), c,
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


@pytest.mark.slow  # a training run (shared), a CLI process
@pytest.mark.xdist_group(LORA_SFT)
def test_export_cli_bfloat16_with_source_files(lora_sft_run, tmp_path):
    """The README's command: --export_hf on a LoRA run, bf16, one file, source extras."""
    run = lora_sft_run
    source = tmp_path / "source"
    source.mkdir()
    (source / "modeling_llada.py").write_text("# modelling code\n")
    (source / "tokenizer.json").write_text("{}")
    # stands in for the original folder
    hf0 = llada.config_to_hf(transformer.TransformerConfig.tiny())
    hf0.update(custom_key=7)
    (source / "config.json").write_text(json.dumps(hf0))
    out = tmp_path / "hf_bf16"
    cmd = [sys.executable, "-m", "igpo_jax.main", "--config", "configs/tiny.py:rl",
           "--workdir", str(run["workdir"]), "--export_hf", str(out),
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
    merged = lora.merge(run["params"], run["cfg"].lora)
    q = tensors["model.transformer.blocks.1.q_proj.weight"]
    np.testing.assert_array_equal(q, np.asarray(merged["blocks/q_proj"][1]).T.astype(
        ml_dtypes.bfloat16))
    # the same export with a source folder keeps its config keys and copies its files
    out2 = tmp_path / "hf_src"
    hf_io.save_hf_checkpoint(merged, run["cfg"], out2, source_dir=source)
    assert (out2 / "modeling_llada.py").exists() and (out2 / "tokenizer.json").exists()
    assert json.load(open(out2 / "config.json"))["custom_key"] == 7


@pytest.mark.slow  # a training run (shared), a CLI process
@pytest.mark.xdist_group(LORA_SFT)
def test_a_lora_run_evaluates_from_its_workdir_as_from_its_exported_folder(lora_sft_run, tmp_path):
    """The adapters-only workdir (its base rebuilt, adapters merged) and the Hugging Face
    folder exported from it give the same generations and the same score."""
    run = lora_sft_run
    from igpo_jax import evaluate
    c = run["c"].copy_and_resolve_references()
    export.export(typed(c), str(run["workdir"]), str(tmp_path / "hf"), shard_gib=0)
    runs = {}
    for name, where in (("workdir", {"model.init_from": str(run["workdir"])}),
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
    e.mode, e.model.lora.rank, e.model.init_from = "eval", 0, str(run["workdir"])
    merged = _np(experiment.initial_params(typed(e), experiment.model_config(typed(e)),
                                           experiment.build_mesh(typed(e))))
    base = {k: v for k, v in run["initial"].items() if not lora.is_adapter(k)}
    assert set(merged) == set(base)
    assert not np.array_equal(merged["blocks/q_proj"], base["blocks/q_proj"])
    np.testing.assert_array_equal(merged["blocks/attn_out"], base["blocks/attn_out"])  # no adapter


def test_export_refuses_a_folder_without_checkpoints_and_the_raw_config(tmp_path):
    from configs import tiny
    c = tiny.get_config("rl")
    with pytest.raises(FileNotFoundError, match=r"--export_hf: no checkpoints in .*missing"):
        export.export(typed(c), str(tmp_path / "missing"), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no checkpoint in .*empty"):
        export.export(typed(c), str(tmp_path / "empty"), str(tmp_path / "out"))
    with pytest.raises(TypeError, match="export.export takes the typed config"):
        export.export(c, str(tmp_path / "empty"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
