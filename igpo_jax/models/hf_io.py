"""Hugging Face checkpoints of every model family: streaming safetensors import and
export (no PyTorch). The family's layout (tensor names, which tensors are linear,
``config.json`` keys) is the family's own (``Family.layout``, models/llada.py and
models/dream.py), looked up from the config or the ``config.json``.

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
from typing import Any, Mapping

import jax
import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from igpo_jax import sharding as shd
from igpo_jax import storage
from igpo_jax.models import family, transformer
from igpo_jax.models.protocol import Layout

log = logging.getLogger(__name__)

_NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A Hugging Face checkpoint that does not match the model it should fill."""


def read_hf_config(path_or_dict: str | os.PathLike | Mapping[str, Any]) -> dict:
    """A Hugging Face ``config.json`` (a path, a folder or an already-read dict)."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict)
    path = os.fspath(path_or_dict)
    if storage.isdir(path):
        path = os.path.join(path, "config.json")
    if not storage.exists(path):
        raise FileNotFoundError(f"no Hugging Face config.json at {path}")
    return json.loads(storage.read_text(path))


def config_from_hf(path_or_dict: str | os.PathLike | Mapping[str, Any],
                   **overrides) -> transformer.TransformerConfig:
    """The model config of a Hugging Face ``config.json`` of any family (a path, a
    folder or a dict): Dream's when it says so, else LLaDA's."""
    hf = read_hf_config(path_or_dict)
    return layout_of_hf(hf).config_from_hf(hf, **overrides)


def layout_of_hf(hf: Mapping[str, Any]) -> Layout:
    """The layout whose ``config.json`` this is."""
    return family.of_hf(hf).layout


def layout(cfg: transformer.TransformerConfig) -> Layout:
    return family.of(cfg).layout


def _tensor_files(hf_dir: str) -> dict[str, str]:
    """tensor name -> safetensors file path."""
    index = os.path.join(hf_dir, INDEX_FILE)
    single = os.path.join(hf_dir, SINGLE_FILE)
    if storage.exists(index):
        weight_map = json.loads(storage.read_text(index)).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index} has no 'weight_map' object")
        files = {name: os.path.join(hf_dir, fn) for name, fn in weight_map.items()}
        for path in set(files.values()):
            if not storage.exists(path):
                raise CheckpointError(f"shard {path} listed in {index} does not exist")
        return files
    if storage.exists(single):
        try:
            with safe_open(_local(single), framework="np") as f:
                return {name: single for name in f.keys()}
        except Exception as e:
            raise CheckpointError(f"{single}: not a readable safetensors file (a truncated "
                                  f"or corrupted download?): {e}") from e
    raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in {hf_dir}")


def _local(path: str) -> str:
    """A local file with the content of ``path`` (safetensors reads memory-mapped local
    files): ``path`` itself, or for a cloud URL a copy in the temporary folder, made
    once per process."""
    if not storage.is_cloud(path):
        return path
    import hashlib
    import tempfile
    local = os.path.join(tempfile.gettempdir(), "igpo_jax_hf_cache",
                         hashlib.sha256(path.encode()).hexdigest()[:16] + "-" +
                         os.path.basename(path))
    if local not in _DOWNLOADED:
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with storage.open_file(path, "rb") as src, open(local + ".part", "wb") as dst:
            for block in iter(lambda: src.read(1 << 24), b""):
                dst.write(block)
        os.replace(local + ".part", local)
        _DOWNLOADED.add(local)
    return local


_DOWNLOADED: set[str] = set()


def _save_tensors(tensors: dict[str, np.ndarray], path: str) -> None:
    if storage.is_cloud(path):
        from safetensors.numpy import save
        storage.path(path).write_bytes(save(tensors, metadata={"format": "pt"}))
    else:
        save_file(tensors, path, metadata={"format": "pt"})


def count_nonfinite(t: np.ndarray, chunk: int = 1 << 24) -> int:
    """NaN / inf entries of a float (or bfloat16) array, checked in chunks (no full-size
    float32 copy of a large tensor)."""
    flat = t.reshape(-1)
    return int(sum(chunk_len - np.count_nonzero(np.isfinite(
        flat[i:i + chunk].astype(np.float32, copy=False)))
        for i in range(0, flat.size, chunk) for chunk_len in [min(chunk, flat.size - i)]))


class _Reader:
    """Keeps safetensors files open (memory-mapped) and reads one tensor at a time."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self._open: dict[str, Any] = {}

    def get(self, name: str) -> np.ndarray:
        if name not in self.files:
            raise CheckpointError(f"tensor {name!r} is missing from the checkpoint")
        path = self.files[name]
        try:
            if path not in self._open:
                self._open[path] = safe_open(_local(path), framework="np").__enter__()
            t = self._open[path].get_tensor(name)
        except Exception as e:  # safetensors names no file (truncated or not safetensors)
            raise CheckpointError(f"{path}: cannot read tensor {name!r} (a truncated or "
                                  f"corrupted download?): {e}") from e
        if t.dtype.kind == "f" or t.dtype.name == "bfloat16":
            bad = count_nonfinite(t)
            if bad:
                raise CheckpointError(f"{path}: tensor {name!r} has {bad} non-finite values "
                                      f"(NaN or inf) of {np.size(t)}")
        return t

    def close(self):
        for handle in self._open.values():
            handle.__exit__(None, None, None)
        self._open.clear()


def _read_param(reader: _Reader, name: str, shape: tuple[int, ...], dtype,
                lay: Layout) -> np.ndarray:
    """Reads (and for ``blocks/`` stacks) one parameter in our layout."""
    per_layer = name.startswith("blocks/")
    target = shape[1:] if per_layer else shape
    hf_shape = tuple(reversed(target)) if lay.is_linear(name) else target
    out = np.empty(shape, dtype)
    for layer in range(shape[0] if per_layer else 1):
        tname = lay.tensor_name(name, layer)
        t = reader.get(tname)
        if tuple(t.shape) != hf_shape:
            raise CheckpointError(f"tensor {tname!r} has shape {tuple(t.shape)}, the model "
                                  f"config expects {hf_shape}")
        t = t.T if lay.is_linear(name) else t
        if per_layer:
            out[layer] = t.astype(dtype)
        else:
            out[...] = t.astype(dtype)
    return out


def _check_special_ids(cfg: transformer.TransformerConfig, where: str) -> None:
    """The mask / EOS / BOS ids must be tokens of the vocabulary ``config.json`` declares
    (a smaller ``vocab_size`` than the embedding's rows otherwise loads silently)."""
    for key in ("mask_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(cfg, key)
        if not 0 <= value < cfg.vocab_size:
            raise CheckpointError(f"{where}: {key}={value} is outside vocab_size="
                                  f"{cfg.vocab_size} (the embedding has {cfg.vocab_rows} rows)")


def load_hf_checkpoint(hf_dir: str | os.PathLike, dtype: str = "float32",
                       mesh: jax.sharding.Mesh | None = None,
                       compute_dtype: str | None = None, **config_overrides) -> transformer.Transformer:
    """Loads a Hugging Face checkpoint (LLaDA or Dream, from its config.json) into a
    :class:`LLaDA` model (the family's forward is set by its config).

    Args:
      hf_dir: folder with ``config.json`` and safetensors weights.
      dtype: parameter dtype (``float32``, ``bfloat16``); also the compute dtype
        unless ``compute_dtype`` is given.
      mesh: place parameters sharded over this mesh (default: one device).
      **config_overrides: TransformerConfig fields to override (e.g. ``remat=True``).
    """
    hf_dir = os.fspath(hf_dir)
    hf = read_hf_config(hf_dir)
    lay = layout_of_hf(hf)
    cfg = lay.config_from_hf(hf, param_dtype=dtype, dtype=compute_dtype or dtype,
                             **config_overrides)
    _check_special_ids(cfg, os.path.join(hf_dir, "config.json"))
    specs = family.of(cfg).param_specs(cfg)
    shardings = shd.tree_shardings(specs, mesh) if mesh is not None else None
    files = _tensor_files(hf_dir)
    expected = {lay.tensor_name(n, i) for n, (s, _) in specs.items()
                for i in (range(s[0]) if n.startswith("blocks/") else [None])}
    unexpected = sorted(set(files) - expected)
    if unexpected:
        log.warning("ignoring %d tensors that the %s model does not use: %s", len(unexpected),
                    cfg.family, unexpected[:5])
    reader = _Reader(files)
    model = family.of(cfg).abstract_model(cfg)
    try:
        params = {}
        for name, (shape, _) in specs.items():
            host = _read_param(reader, name, shape, _NP_DTYPES[dtype], lay)
            params[name] = jax.device_put(host, shardings[name]) if shardings else \
                jax.device_put(host)
            del host
    finally:
        reader.close()
    model.load_param_dict(params)
    return model


# files of a Hugging Face model folder that an export copies from the source checkpoint
# (modelling code for trust_remote_code, tokenizer, generation settings)
_COPIED = ("*.py", "tokenizer*", "special_tokens_map.json", "generation_config.json",
           "*.model", "*.tiktoken", "chat_template*", "README.md", "LICENSE*")


def _shard_plan(cfg: transformer.TransformerConfig, itemsize: int, max_shard_bytes: int | None
                ) -> list[list[tuple[str, int | None]]]:
    """(param name, layer) per tensor, grouped into shards of at most ``max_shard_bytes``
    (a tensor larger than that gets a shard of its own)."""
    shards: list[list[tuple[str, int | None]]] = [[]]
    size = 0
    for name, (shape, _) in family.of(cfg).param_specs(cfg).items():
        per_layer = name.startswith("blocks/")
        nbytes = int(np.prod(shape[1:] if per_layer else shape)) * itemsize
        for layer in (range(shape[0]) if per_layer else [None]):
            if max_shard_bytes and shards[-1] and size + nbytes > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append((name, layer))
            size += nbytes
    return shards


def hf_config_dict(cfg: transformer.TransformerConfig, dtype: str, source_dir: str | None = None) -> dict:
    """``config.json``: the source checkpoint's (keeping ``auto_map`` and every key we do
    not model) updated with this model's shape, ids and dtype."""
    out: dict[str, Any] = {}
    if source_dir and storage.exists(os.path.join(source_dir, "config.json")):
        out = json.loads(storage.read_text(os.path.join(source_dir, "config.json")))
    out.update(layout(cfg).config_to_hf(cfg))
    out["torch_dtype"] = dtype
    return out


def save_hf_checkpoint(model_or_params, cfg: transformer.TransformerConfig | None, out_dir: str | os.PathLike,
                       dtype: str | None = None, max_shard_bytes: int | None = None,
                       source_dir: str | os.PathLike | None = None) -> dict:
    """Writes a Hugging Face checkpoint of the config's family: ``config.json`` +
    safetensors, in the tensor names, ``[out, in]`` layouts and dtype that the family's
    modelling code (LLaDA's or Dream's) loads.

    * LoRA adapters in the parameters are merged into their base weights first.
    * ``max_shard_bytes``: split over ``model-0000i-of-0000N.safetensors`` files listed
      in ``model.safetensors.index.json`` (as Hugging Face does); else one
      ``model.safetensors``.
    * Streaming: one stacked parameter at a time is brought to the host (gathered
      from every process when the arrays span several; every process must call
      this) and each shard is written as soon as it is complete; only process 0
      writes.
    * ``source_dir``: the Hugging Face folder the run started from; its
      ``config.json`` keys are kept and its modelling code and tokenizer files are
      copied, so that ``AutoModel.from_pretrained(out_dir, trust_remote_code=True)``
      finds everything.

    Returns ``{"files": [...], "tensors": N, "bytes": total}``.
    """
    import fnmatch

    from igpo_jax import distributed
    from igpo_jax.models import lora
    if isinstance(model_or_params, transformer.Transformer):
        cfg = model_or_params.config
        params = model_or_params.param_dict()
    else:
        params = model_or_params
    if cfg is None:
        raise ValueError("save_hf_checkpoint needs the TransformerConfig when given a param dict")
    if any(lora.is_adapter(k) for k in params):
        if cfg.lora is None:
            raise ValueError("the parameters hold LoRA adapters but the TransformerConfig has no "
                             "lora settings to merge them with")
        params = lora.merge_jit(params, cfg.lora)
    cfg = cfg.replace(lora=None)
    dtype = dtype or cfg.param_dtype
    if dtype not in _NP_DTYPES:
        raise ValueError(f"export dtype {dtype!r}; expected one of {sorted(_NP_DTYPES)}")
    np_dtype = _NP_DTYPES[dtype]
    missing = sorted(set(family.of(cfg).param_specs(cfg)) - set(params))
    if missing:
        raise KeyError(f"parameters {missing} are missing; cannot export")
    out_dir = os.fspath(out_dir)
    writer = jax.process_index() == 0
    lay = layout(cfg)
    if writer:
        storage.makedirs(out_dir)
    plan = _shard_plan(cfg, np.dtype(np_dtype).itemsize, max_shard_bytes)
    names = ([SINGLE_FILE] if len(plan) == 1 and not max_shard_bytes else
             [f"model-{i + 1:05d}-of-{len(plan):05d}.safetensors" for i in range(len(plan))])
    host: dict[str, np.ndarray] = {}  # the current stacked parameter, on the host
    weight_map, total = {}, 0
    for fn, shard in zip(names, plan):
        tensors = {}
        for name, layer in shard:
            if name not in host:
                host.clear()
                host[name] = distributed.to_host(params[name]).astype(np_dtype, copy=False)
            t = host[name][layer] if layer is not None else host[name]
            t = t.T if lay.is_linear(name) else t
            tname = lay.tensor_name(name, layer)
            tensors[tname] = np.ascontiguousarray(t)
            weight_map[tname] = fn
            total += t.nbytes
        if writer:
            _save_tensors(tensors, os.path.join(out_dir, fn))
        del tensors
    if writer:
        storage.write_text(os.path.join(out_dir, "config.json"), json.dumps(
            hf_config_dict(cfg, dtype, source_dir and os.fspath(source_dir)), indent=2))
        if names != [SINGLE_FILE]:
            storage.write_text(os.path.join(out_dir, INDEX_FILE), json.dumps(
                {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
        if source_dir:
            for fn in storage.listdir(source_dir):
                if fn != "config.json" and any(fnmatch.fnmatch(fn, pat) for pat in _COPIED):
                    storage.copy_file(os.path.join(source_dir, fn), os.path.join(out_dir, fn))
        verify_hf_checkpoint(out_dir)  # what was written reads back whole
    return {"files": names, "tensors": len(weight_map), "bytes": total}


def verify_hf_checkpoint(hf_dir: str | os.PathLike) -> int:
    """Reads every tensor of a Hugging Face folder with the checks of
    :func:`load_hf_checkpoint` (names, shapes against config.json, finite values,
    readable files, special ids) without keeping it; returns the number of tensors read.
    Raises :class:`CheckpointError` naming the file and the tensor."""
    hf_dir = os.fspath(hf_dir)
    hf = read_hf_config(hf_dir)
    lay = layout_of_hf(hf)
    cfg = lay.config_from_hf(hf)
    _check_special_ids(cfg, os.path.join(hf_dir, "config.json"))
    reader = _Reader(_tensor_files(hf_dir))
    n = 0
    try:
        for name, (shape, _) in family.of(cfg).param_specs(cfg).items():
            _read_param(reader, name, shape, np.float32, lay)
            n += shape[0] if name.startswith("blocks/") else 1
    finally:
        reader.close()
    return n
