"""What every stage builds from the config: mesh, tokenizer, model config and
initial parameters (random, Hugging Face, or an earlier run's checkpoint)."""

from __future__ import annotations

import dataclasses
import logging
import os

import jax
import ml_collections

from igpo_jax import checkpoint as ckpt_lib
from igpo_jax import sharding as shd
from igpo_jax import tokenizers
from igpo_jax.models import llada
from igpo_jax.models.lora import LoraConfig

log = logging.getLogger(__name__)


def build_mesh(c: ml_collections.ConfigDict) -> jax.sharding.Mesh:
    return shd.mesh_from_config(c.mesh.to_dict())


def build_tokenizer(c: ml_collections.ConfigDict) -> tokenizers.Tokenizer:
    return tokenizers.load_tokenizer(c.tokenizer.kind, c.tokenizer.path or None)


def model_config(c: ml_collections.ConfigDict,
                 tok: tokenizers.Tokenizer | None = None) -> llada.LLaDAConfig:
    """The model config; checked against ``tok`` when given. Small presets take their
    vocabulary from the tokenizer (built from the config when not given)."""
    m = c.model
    numerics = dict(param_dtype=m.param_dtype, dtype=m.dtype, remat=m.remat,
                    lora=LoraConfig.from_config(m.lora))
    if m.hf_dir:
        cfg = llada.LLaDAConfig.from_hf_config(m.hf_dir, **numerics)
    else:
        overrides = {k: v for k, v in m.overrides.to_dict().items() if v}
        if m.preset == "llada_8b":
            cfg = llada.LLaDAConfig.llada_8b(**numerics, **overrides)
        else:
            # small models take their vocabulary and special ids from the tokenizer
            tok = tok or build_tokenizer(c)
            cfg = getattr(llada.LLaDAConfig, m.preset)(
                vocab_size=tok.vocab_size, mask_token_id=tok.mask_id, eos_token_id=tok.eos_id,
                bos_token_id=tok.bos_id, **numerics, **overrides)
    if tok is None:
        return cfg
    if cfg.vocab_rows < tok.vocab_size:
        raise ValueError(f"the tokenizer has {tok.vocab_size} tokens but the model only "
                         f"{cfg.vocab_rows} embedding rows")
    if (cfg.mask_token_id, cfg.eos_token_id) != (tok.mask_id, tok.eos_id):
        raise ValueError(f"model mask/eos ids {(cfg.mask_token_id, cfg.eos_token_id)} differ "
                         f"from the tokenizer's {(tok.mask_id, tok.eos_id)}")
    return cfg


def checkpoint_dir(path: str) -> str:
    """Accepts a run's workdir or its ``checkpoints`` folder."""
    sub = os.path.join(path, "checkpoints")
    return sub if os.path.isdir(sub) else path


def initial_params(c: ml_collections.ConfigDict, cfg: llada.LLaDAConfig,
                   mesh: jax.sharding.Mesh) -> dict:
    """The starting parameters, placed with the mesh's shardings."""
    shardings = shd.tree_shardings(llada.param_specs(cfg), mesh)
    if c.model.hf_dir:
        log.info("loading Hugging Face weights from %s", c.model.hf_dir)
        return llada.load_hf_checkpoint(c.model.hf_dir, dtype=cfg.param_dtype, mesh=mesh,
                                        compute_dtype=cfg.dtype, remat=cfg.remat).param_dict()
    init = jax.jit(lambda: llada.init_params(cfg, c.seed), out_shardings=shardings)
    if not c.model.init_from:
        return init()
    template = jax.eval_shape(lambda: llada.init_params(cfg, c.seed))
    template = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k])
                for k, v in template.items()}
    path = checkpoint_dir(c.model.init_from)
    log.info("initialising from the checkpoint in %s", path)
    params, meta = ckpt_lib.load_params(path, template)
    log.info("loaded step %s (%s)", meta.get("step"), meta.get("stage", "?"))
    return params


def describe(cfg: llada.LLaDAConfig) -> str:
    fields = dataclasses.asdict(cfg)
    return (f"LLaDA {cfg.num_params() / 1e6:.2f}M params: " +
            ", ".join(f"{k}={fields[k]}" for k in ("d_model", "n_layers", "n_heads",
                                                    "n_kv_heads", "vocab_size", "dtype")))


@dataclasses.dataclass
class TrainingStart:
    """Optimiser, checkpointer, metrics writer and the state to start from."""

    tx: object
    schedule: object
    params: dict
    opt_state: object
    ckpt: object
    writer: object
    start: int  # steps already done (0 for a fresh run)


def start_training(c: ml_collections.ConfigDict, workdir: str, params: dict,
                   mesh: jax.sharding.Mesh, total_updates: int, data_iter,
                   records_per_step: int, stage: str) -> TrainingStart:
    """Builds the optimiser and resumes from ``workdir/checkpoints`` when it holds a
    checkpoint (parameters, optimiser state, data-iterator state; metrics written
    after that checkpoint are dropped)."""
    from igpo_jax import optim
    from igpo_jax.checkpoint import Checkpointer
    from igpo_jax.metrics import MetricsWriter
    tx, schedule = optim.make_optimizer(c.optim.to_dict(), total_updates)
    opt_state = shd.replicate_unplaced(tx.init(params), mesh)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), c.checkpoint.keep)
    writer = MetricsWriter(workdir)
    start = 0
    if ckpt.latest_step() is not None:
        params, opt_state, meta = ckpt.restore(None, params, opt_state)
        start = int(meta["step"])
        data_iter.set_state(meta["data_state"])
        writer.truncate_after(start * records_per_step)
        log.info("resumed %s at step %d from %s", stage, start, ckpt.directory)
    return TrainingStart(tx, schedule, params, opt_state, ckpt, writer, start)
