"""What every stage builds from the config: mesh, tokenizer, model config and
initial parameters (random, Hugging Face, or an earlier run's checkpoint)."""

from __future__ import annotations

import dataclasses
import logging
import os

import jax

from igpo_jax import checkpoint as ckpt_lib
from igpo_jax import sharding as shd
from igpo_jax import storage
from igpo_jax import tokenizers
from igpo_jax.models import family, hf_io, lora, transformer
from igpo_jax.models.lora import LoraConfig
from igpo_jax.sections import require

from igpo_jax.configlib import RunConfig

log = logging.getLogger(__name__)


def build_mesh(c: RunConfig) -> jax.sharding.Mesh:
    return shd.mesh_from_config(require(c, "experiment.build_mesh").mesh.to_dict())


def build_tokenizer(c: RunConfig) -> tokenizers.Tokenizer:
    c = require(c, "experiment.build_tokenizer")
    return tokenizers.load_tokenizer(c.tokenizer.kind, c.tokenizer.path or None,
                                     family=c.model.family)


def model_config(c: RunConfig,
                 tok: tokenizers.Tokenizer | None = None) -> transformer.TransformerConfig:
    """The model config; checked against ``tok`` when given. Small presets take their
    vocabulary from the tokenizer (built from the config when not given)."""
    c = require(c, "experiment.model_config")
    m = c.model
    numerics = dict(param_dtype=m.param_dtype, dtype=m.dtype, remat=m.remat,
                    lora=m.lora.config())
    if m.hf_dir:
        cfg = hf_io.config_from_hf(m.hf_dir, **numerics)
        if cfg.family != m.family:
            raise ValueError(f"model.hf_dir {m.hf_dir} holds a {cfg.family} model but "
                             f"model.family={m.family!r}: set --config.model.family={cfg.family}")
    else:
        overrides = {k: v for k, v in m.overrides.to_dict().items() if v}
        if family.family_of_preset(m.preset):  # a family's full size, ids included
            cfg = family.preset_config(m.family, m.preset, **numerics, **overrides)
        else:
            # the shared sizes take their vocabulary and special ids from the tokenizer
            # and their architecture switches from the family
            tok = tok or build_tokenizer(c)
            cfg = family.preset_config(
                m.family, m.preset, vocab_size=tok.vocab_size, mask_token_id=tok.mask_id,
                eos_token_id=tok.eos_id, bos_token_id=tok.bos_id, **numerics, **overrides)
    if tok is None:
        return cfg
    # (checked before any parameter is read or computed with; a user error: status 2)
    where = f"model.hf_dir {m.hf_dir}/config.json" if m.hf_dir else f"model.preset={m.preset}"
    if cfg.vocab_rows < tok.vocab_size:
        raise hf_io.CheckpointError(f"the tokenizer has {tok.vocab_size} tokens but the model "
                                    f"({where}) only {cfg.vocab_rows} embedding rows")
    if (cfg.mask_token_id, cfg.eos_token_id) != (tok.mask_id, tok.eos_id):
        raise hf_io.CheckpointError(
            f"mask/EOS ids {(cfg.mask_token_id, cfg.eos_token_id)} of the model ({where}) "
            f"differ from the tokenizer's {(tok.mask_id, tok.eos_id)} (tokenizer.path="
            f"{c.tokenizer.path or 'the shipped synthetic model'})")
    return cfg


class ModelParts:
    """What every stage builds from its config before it runs, once: the mesh, the
    tokenizer and the model config (checked against each other) at once, the starting
    parameters when first read (after the stage has checked its data, so a bad data
    file fails before any weights are read). A given ``tokenizer`` or ``params`` is used
    as is. Stages that read no text (export, the dry run) pass ``with_tokenizer=False``:
    no tokenizer is then built unless a small preset takes its vocabulary from it, and
    ``tok`` is None."""

    def __init__(self, c: RunConfig, *, tokenizer: tokenizers.Tokenizer | None = None,
                 params: dict | None = None, with_tokenizer: bool = True):
        self.c = require(c, "experiment.ModelParts")
        self.mesh = build_mesh(c)
        self.tok = tokenizer or (build_tokenizer(c) if with_tokenizer else None)
        self.cfg = model_config(c, self.tok)
        log.info("%s", describe(self.cfg))
        self._params = params

    @property
    def params(self) -> dict:
        """The starting parameters (:func:`initial_params`, or the ones given)."""
        if self._params is None:
            self._params = initial_params(self.c, self.cfg, self.mesh)
        return self._params


def checkpoint_dir(path: str) -> str:
    """Accepts a run's workdir or its ``checkpoints`` folder."""
    sub = os.path.join(path, "checkpoints")
    return sub if storage.isdir(sub) else path


def read_run_config(path: str) -> dict:
    """The ``config.json`` an earlier run (or a shipped stage) wrote in its folder."""
    import json
    file = os.path.join(path, "config.json")
    if not storage.exists(file):
        raise FileNotFoundError(f"no config.json in {path}: not a run folder")
    return json.loads(storage.read_text(file))


def initial_params(c: RunConfig, cfg: transformer.TransformerConfig,
                   mesh: jax.sharding.Mesh) -> dict:
    """The starting parameters, placed with the mesh's shardings.

    The base model comes from ``model.init_from`` (an earlier run; when that run
    trained LoRA adapters only, its own base is rebuilt and its adapters merged in),
    else ``model.hf_dir``, else a random init of the preset. With ``model.lora`` fresh
    adapters are added on top.
    """
    c = require(c, "experiment.initial_params")
    base_cfg = cfg.replace(lora=None)
    if c.model.init_from:
        params, _ = params_of_run(checkpoint_dir(c.model.init_from), c, base_cfg, mesh)
    else:
        params = _base_params(c.model.hf_dir, c.seed, base_cfg, mesh)
    if cfg.lora is not None:
        fam = family.of(cfg)
        shardings = shd.tree_shardings(fam.param_specs(cfg), mesh)
        adapters = jax.jit(lambda: fam.init_adapters(cfg, c.seed),
                           out_shardings={k: shardings[k] for k in shardings
                                          if lora.is_adapter(k)})()
        params = {**params, **adapters}
    return params


def _base_params(hf_dir: str, seed: int, cfg: transformer.TransformerConfig, mesh) -> dict:
    if hf_dir:
        log.info("loading Hugging Face weights from %s", hf_dir)
        return hf_io.load_hf_checkpoint(hf_dir, dtype=cfg.param_dtype, mesh=mesh,
                                        compute_dtype=cfg.dtype, remat=cfg.remat).param_dict()
    fam = family.of(cfg)
    shardings = shd.tree_shardings(fam.param_specs(cfg), mesh)
    return jax.jit(lambda: fam.init_params(cfg, seed), out_shardings=shardings)()


def abstract_params(cfg: transformer.TransformerConfig, mesh) -> dict:
    """``ShapeDtypeStruct`` s with the mesh's shardings (no memory allocated)."""
    fam = family.of(cfg)
    shardings = shd.tree_shardings(fam.param_specs(cfg), mesh)
    return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k])
            for k, v in jax.eval_shape(lambda: fam.init_params(cfg, 0)).items()}


def params_of_run(path: str, c, base_cfg: transformer.TransformerConfig, mesh, step: int | None = None,
                  depth: int = 0) -> tuple[dict, dict]:
    """(full parameters, checkpoint record) of an earlier run's latest (or given) step in
    ``path``: what it trained, or for an adapters-only (LoRA) run its base rebuilt as
    that run built it, with the adapters merged in."""
    meta = ckpt_lib.read_meta(path, step)
    step = meta.get("step", step)
    log.info("initialising from the checkpoint in %s (step %s, %s)", path, step,
             meta.get("stage", "?"))
    if not meta.get("lora"):
        return ckpt_lib.load_params(path, abstract_params(base_cfg, mesh), step)[0], meta
    if depth > 8:
        raise ValueError(f"{path}: more than 8 chained LoRA runs (a model.init_from loop?)")
    src = meta.get("init") or {}
    if src.get("init_from"):
        base, _ = params_of_run(src["init_from"], c, base_cfg, mesh, None, depth + 1)
    else:
        base = _base_params(src.get("hf_dir") or c.model.hf_dir, src.get("seed", 0), base_cfg,
                            mesh)
    lc = dict(meta["lora"])
    src_cfg = base_cfg.replace(lora=LoraConfig(**{**lc, "targets": tuple(lc["targets"])}))
    template = {k: v for k, v in abstract_params(src_cfg, mesh).items() if lora.is_adapter(k)}
    adapters, _ = ckpt_lib.load_params(path, template, step)
    log.info("merged the LoRA adapters (rank %d) of %s into its base", src_cfg.lora.rank, path)
    out_sh = {k: v.sharding for k, v in base.items()}
    merged = jax.jit(lambda p: lora.merge(p, src_cfg.lora), out_shardings=out_sh)(
        {**base, **adapters})
    return merged, meta


def describe(cfg: transformer.TransformerConfig) -> str:
    fields = dataclasses.asdict(cfg)
    name = family.title(cfg.family)
    return (f"{name} {cfg.num_params() / 1e6:.2f}M params: " +
            ", ".join(f"{k}={fields[k]}" for k in ("d_model", "n_layers", "n_heads",
                                                    "n_kv_heads", "vocab_size", "dtype")))
