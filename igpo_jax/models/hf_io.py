"""Hugging Face LLaDA checkpoints: streaming import and export (no PyTorch).

Import reads ``config.json`` and ``model.safetensors`` (or the shards listed in
``model.safetensors.index.json``) tensor by tensor through safetensors' numpy
reader, transposes linear weights to ``[in, out]``, stacks layers and places each
parameter with its sharding before reading the next one, so host memory holds at
most one stacked parameter beside the model.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax
import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from igpo_jax import sharding as shd
from igpo_jax.models import llada

log = logging.getLogger(__name__)

_NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A Hugging Face checkpoint that does not match the model it should fill."""


def _tensor_files(hf_dir: str) -> dict[str, str]:
    """tensor name -> safetensors file path."""
    index = os.path.join(hf_dir, INDEX_FILE)
    single = os.path.join(hf_dir, SINGLE_FILE)
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index} has no 'weight_map' object")
        files = {name: os.path.join(hf_dir, fn) for name, fn in weight_map.items()}
        for path in set(files.values()):
            if not os.path.exists(path):
                raise CheckpointError(f"shard {path} listed in {index} does not exist")
        return files
    if os.path.exists(single):
        with safe_open(single, framework="np") as f:
            return {name: single for name in f.keys()}
    raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in {hf_dir}")


class _Reader:
    """Keeps safetensors files open (memory-mapped) and reads one tensor at a time."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self._open: dict[str, Any] = {}

    def get(self, name: str) -> np.ndarray:
        if name not in self.files:
            raise CheckpointError(f"tensor {name!r} is missing from the checkpoint")
        path = self.files[name]
        if path not in self._open:
            self._open[path] = safe_open(path, framework="np").__enter__()
        return self._open[path].get_tensor(name)

    def close(self):
        for handle in self._open.values():
            handle.__exit__(None, None, None)
        self._open.clear()


def _read_param(reader: _Reader, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Reads (and for ``blocks/`` stacks) one parameter in our layout."""
    per_layer = name.startswith("blocks/")
    target = shape[1:] if per_layer else shape
    hf_shape = tuple(reversed(target)) if llada.hf_is_linear(name) else target
    out = np.empty(shape, dtype)
    for layer in range(shape[0] if per_layer else 1):
        tname = llada.hf_tensor_name(name, layer)
        t = reader.get(tname)
        if tuple(t.shape) != hf_shape:
            raise CheckpointError(f"tensor {tname!r} has shape {tuple(t.shape)}, the model "
                                  f"config expects {hf_shape}")
        t = t.T if llada.hf_is_linear(name) else t
        if per_layer:
            out[layer] = t.astype(dtype)
        else:
            out[...] = t.astype(dtype)
    return out


def load_hf_checkpoint(hf_dir: str | os.PathLike, dtype: str = "float32",
                       mesh: jax.sharding.Mesh | None = None,
                       compute_dtype: str | None = None, **config_overrides) -> llada.LLaDA:
    """Loads a Hugging Face LLaDA checkpoint into a :class:`LLaDA` model.

    Args:
      hf_dir: folder with ``config.json`` and safetensors weights.
      dtype: parameter dtype (``float32``, ``bfloat16``); also the compute dtype
        unless ``compute_dtype`` is given.
      mesh: place parameters sharded over this mesh (default: one device).
      **config_overrides: LLaDAConfig fields to override (e.g. ``remat=True``).
    """
    hf_dir = os.fspath(hf_dir)
    cfg = llada.LLaDAConfig.from_hf_config(
        hf_dir, param_dtype=dtype, dtype=compute_dtype or dtype, **config_overrides)
    specs = llada.param_specs(cfg)
    shardings = shd.tree_shardings(specs, mesh) if mesh is not None else None
    files = _tensor_files(hf_dir)
    expected = {llada.hf_tensor_name(n, i) for n, (s, _) in specs.items()
                for i in (range(s[0]) if n.startswith("blocks/") else [None])}
    unexpected = sorted(set(files) - expected)
    if unexpected:
        log.warning("ignoring %d tensors that LLaDA does not use: %s", len(unexpected),
                    unexpected[:5])
    reader = _Reader(files)
    model = llada.abstract_model(cfg)
    try:
        params = {}
        for name, (shape, _) in specs.items():
            host = _read_param(reader, name, shape, _NP_DTYPES[dtype])
            params[name] = jax.device_put(host, shardings[name]) if shardings else \
                jax.device_put(host)
            del host
    finally:
        reader.close()
    model.load_param_dict(params)
    return model


def save_hf_checkpoint(model_or_params, cfg: llada.LLaDAConfig | None, out_dir: str | os.PathLike,
                       dtype: str | None = None, max_shard_bytes: int | None = None) -> None:
    """Writes a Hugging Face LLaDA checkpoint (``config.json`` + safetensors).

    With ``max_shard_bytes`` the tensors are split over several files listed in
    ``model.safetensors.index.json``; otherwise one ``model.safetensors``.
    """
    if isinstance(model_or_params, llada.LLaDA):
        cfg = model_or_params.config
        params = model_or_params.param_dict()
    else:
        params = model_or_params
    if cfg is None:
        raise ValueError("save_hf_checkpoint needs the LLaDAConfig when given a param dict")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    np_dtype = _NP_DTYPES[dtype or cfg.param_dtype]
    tensors: dict[str, np.ndarray] = {}
    for name, (shape, _) in llada.param_specs(cfg).items():
        value = np.asarray(jax.device_get(params[name])).astype(np_dtype)
        layers = range(shape[0]) if name.startswith("blocks/") else [None]
        for i in layers:
            t = value[i] if i is not None else value
            t = t.T if llada.hf_is_linear(name) else t
            tensors[llada.hf_tensor_name(name, i)] = np.ascontiguousarray(t)
    hf_cfg = cfg.to_hf_config()
    hf_cfg["torch_dtype"] = dtype or cfg.param_dtype
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_cfg, f, indent=2)
    if not max_shard_bytes:
        save_file(tensors, os.path.join(out_dir, SINGLE_FILE), metadata={"format": "pt"})
        return
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, t in tensors.items():
        if shards[-1] and size + t.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += t.nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(out_dir, fn), metadata={"format": "pt"})
        weight_map.update({name: fn for name in shard})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
             "weight_map": weight_map}
    with open(os.path.join(out_dir, INDEX_FILE), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)
