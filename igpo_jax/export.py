"""``--export_hf``: a run's trained weights as a Hugging Face LLaDA checkpoint.

    python -m igpo_jax.main --config configs/llada_8b.py:igpo --workdir runs/igpo \\
        --config.model.hf_dir=/data/LLaDA-8B-Instruct --export_hf=/data/llada-igpo

Reads the latest (or ``--export_step``) checkpoint of ``--workdir``. A LoRA run's
checkpoints hold adapters only: its base model is rebuilt as the run built it
(from its ``model.init_from`` / ``model.hf_dir`` / seed, recorded in the
checkpoint) and the adapters are merged in. The result is written by
:func:`igpo_jax.models.hf_io.save_hf_checkpoint` (streaming, sharded, process 0
writes, every process takes part) with ``model.hf_dir``'s config keys, modelling
code and tokenizer files, so that it loads with LLaDA's own code as well as with
``load_hf_checkpoint``.
"""

from __future__ import annotations

import logging

import jax
import ml_collections

from igpo_jax import experiment, storage
from igpo_jax.models import hf_io
from igpo_jax.sections import require

from igpo_jax.configlib import RunConfig

log = logging.getLogger(__name__)


def export(c: RunConfig | ml_collections.ConfigDict, workdir: str, out_dir: str, step: int | None = None,
           dtype: str = "", shard_gib: float = 5.0) -> dict:
    """Writes the merged weights of ``workdir``'s checkpoint to ``out_dir``; returns a
    summary (files, tensors, bytes, step)."""
    c = require(c, "export.export")
    ckpt_dir = experiment.checkpoint_dir(workdir)
    if not storage.isdir(ckpt_dir):
        raise FileNotFoundError(f"--export_hf: no checkpoints in {workdir}")
    parts = experiment.ModelParts(c, with_tokenizer=False)
    cfg = parts.cfg.replace(lora=None)
    params, meta = experiment.params_of_run(ckpt_dir, c, cfg, parts.mesh, step)
    dtype = dtype or cfg.param_dtype
    source = c.model.hf_dir or None
    out = hf_io.save_hf_checkpoint(params, cfg, out_dir, dtype=dtype,
                                   max_shard_bytes=int(shard_gib * 2 ** 30) or None,
                                   source_dir=source)
    out.update(step=meta.get("step"), stage=meta.get("stage"), merged_lora=bool(meta.get("lora")),
               dtype=dtype, out_dir=storage.absolute(out_dir))
    if jax.process_index() == 0:
        print(f"exported step {out['step']} ({out['stage']}"
              f"{', LoRA adapters merged' if out['merged_lora'] else ''}) of {workdir} to "
              f"{out_dir}: {out['tensors']} tensors, {out['bytes'] / 2 ** 30:.2f} GiB {dtype} in "
              f"{len(out['files'])} file(s)", flush=True)
        if not source:
            print(f"note: model.hf_dir is not set, so no modelling code or tokenizer was "
                  f"copied; copy {hf_io.layout(cfg).modelling_files} and the tokenizer files of "
                  f"the {cfg.family} checkpoint you started from into the folder to load it with "
                  f"trust_remote_code", flush=True)
    return out
