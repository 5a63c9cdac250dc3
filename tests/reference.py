"""Independent numpy implementations used as ground truth in the tests.

They work on Hugging Face-layout weights ([out, in] linear matrices, per-layer
tensors by name) and follow docs/ALGORITHM.md sections 1 and 3 directly, sharing no code
with the package.
"""

import json
import os

import numpy as np
from safetensors.numpy import save_file


U32 = 2.0 ** -24  # float32 unit roundoff


def f32_atol(c, seq_len: int, want) -> float:
    """Absolute tolerance of a float32 forward of config ``c`` against an exact (float64)
    one, from the arithmetic: a float32 dot product of length n is within n u |terms| of
    the exact one (u = 2^-24), and errors add along the path a logit takes through the
    model: per layer the q/k/v, output and up/gate projections (d_model each), the
    attention scores and weighted sum (head_dim, seq_len) and the down projection
    (mlp_hidden), then the head (d_model), scaled by the outputs' magnitude. A bound of
    the worst case, not of one machine's result: observed errors are 10-30x smaller,
    wrong numerics (a missed scale, a swapped axis) are 1e-2 and larger."""
    d, f, layers = c["d_model"], c["mlp_hidden_size"], c["n_layers"]
    head_dim = d // c["n_heads"]
    path = layers * (3 * d + head_dim + seq_len + f) + d
    return float(U32 * path * max(1.0, float(np.abs(want).max())))


def hf_config(vocab=64, d=32, layers=2, heads=4, kv_heads=2, mlp=64, mask=63, eos=62):
    return {"vocab_size": vocab, "embedding_size": vocab, "d_model": d, "n_layers": layers,
            "n_heads": heads, "n_kv_heads": kv_heads, "mlp_hidden_size": mlp,
            "max_sequence_length": 512, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
            "mask_token_id": mask, "eos_token_id": eos, "bos_token_id": 1}


def random_hf_weights(c, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    d, f, v = c["d_model"], c["mlp_hidden_size"], c["vocab_size"]
    hd = d // c["n_heads"]
    kv = c["n_kv_heads"] * hd
    w = lambda *s: (rng.standard_normal(s) * scale).astype(np.float32)  # noqa: E731
    t = {"model.transformer.wte.weight": w(v, d),
         "model.transformer.ln_f.weight": 1 + w(d),
         "model.transformer.ff_out.weight": w(v, d)}
    for i in range(c["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        t.update({p + "attn_norm.weight": 1 + w(d), p + "ff_norm.weight": 1 + w(d),
                  p + "q_proj.weight": w(d, d), p + "k_proj.weight": w(kv, d),
                  p + "v_proj.weight": w(kv, d), p + "attn_out.weight": w(d, d),
                  p + "ff_proj.weight": w(f, d), p + "up_proj.weight": w(f, d),
                  p + "ff_out.weight": w(d, f)})
    return t


def write_hf_checkpoint(path, c, tensors, sharded=False):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(c, fh)
    if not sharded:
        save_file(tensors, os.path.join(path, "model.safetensors"))
        return
    names = sorted(tensors)
    halves = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for i, part in enumerate(halves):
        fn = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: tensors[n] for n in part}, os.path.join(path, fn))
        weight_map.update({n: fn for n in part})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {}, "weight_map": weight_map}, fh)


def random_model(path, seed=0, **config):
    """Random HF-layout weights written to ``path`` and loaded through the package:
    (hf config, tensors, model)."""
    from igpo_jax.models import hf_io
    c = hf_config(**config)
    t = random_hf_weights(c, seed=seed)
    write_hf_checkpoint(path, c, t)
    return c, t, hf_io.load_hf_checkpoint(path)


def _rms(x, w, eps):
    x = x.astype(np.float64)
    return w * x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)


def _rope(x, theta, positions=None):
    # x [B, L, H, D]; NeoX: rotate_half(x) = cat(-x2, x1); positions [B, L] (default
    # 0..L-1 in every row)
    B, L, D = x.shape[0], x.shape[1], x.shape[3]
    inv = 1.0 / theta ** (np.arange(0, D, 2) / D)
    pos = np.broadcast_to(np.arange(L), (B, L)) if positions is None else positions
    ang = pos[..., None].astype(np.float64) * inv
    emb = np.concatenate([ang, ang], -1)
    sin, cos = np.sin(emb)[:, :, None], np.cos(emb)[:, :, None]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def _attention(q, k, v, bias, stale_kv=None, outside=None, record=None):
    """Bidirectional GQA attention of rotated q [B, L, H, D], k, v [B, L, K, D] with an
    additive key bias [B, L]. With ``stale_kv`` the keys and values at the positions
    ``outside`` come from that earlier (k, v) instead (a K/V cache); ``record`` collects
    the (k, v) used. Returns [B, L, H * D]."""
    B, L, H, D = q.shape
    K = k.shape[2]
    if stale_kv is not None:
        k[:, outside], v[:, outside] = stale_kv[0][:, outside], stale_kv[1][:, outside]
    if record is not None:
        record.append((k, v))
    k, v = np.repeat(k, H // K, axis=2), np.repeat(v, H // K, axis=2)  # repeat_kv
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(D) + bias[:, None, None, :]
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    return np.einsum("bhqk,bkhd->bqhd", s, v).reshape(B, L, H * D)


def numpy_forward(t, c, ids, attention_mask=None, stale=None, window=None, record=None,
                  lora=None):
    """float64 forward of docs/ALGORITHM.md section 1 on HF weights. ids [B, L] -> logits [B, L, V].

    ``lora``: {linear name: (A [n_layers, in, r], B [n_layers, r, out], scale)} adds
    ``scale * x @ A[i] @ B[i]`` to that linear's output in layer i (no dropout).

    With ``stale`` (ids [B, L]) and ``window`` (lo, hi): every layer's keys and
    values outside ``[lo, hi)`` are those of a separate forward over ``stale``
    (recomputed from scratch, no cache): what a K/V cache filled from ``stale``
    gives the positions in the window. ``record`` (a list) collects each layer's
    rotated (k, v) ``[B, L, K, D]``.
    """
    B, L = ids.shape
    stale_kv = []
    if stale is not None:
        numpy_forward(t, c, stale, attention_mask, record=stale_kv)
        outside = np.ones(L, bool)
        outside[window[0]:window[1]] = False
    H, K = c["n_heads"], c["n_kv_heads"]
    D = c["d_model"] // H
    eps = c["rms_norm_eps"]
    x = t["model.transformer.wte.weight"][ids].astype(np.float64)
    bias = np.zeros((B, L)) if attention_mask is None else np.where(attention_mask, 0.0, -1e30)
    for i in range(c["n_layers"]):
        p = lambda n: t[f"model.transformer.blocks.{i}.{n}.weight"].astype(np.float64)  # noqa

        def lin(x, n, i=i, p=p):
            y = x @ p(n).T
            if lora and n in lora:
                a, b, scale = lora[n]
                y = y + scale * (x @ a[i].astype(np.float64)) @ b[i].astype(np.float64)
            return y
        h = _rms(x, p("attn_norm"), eps)
        q = _rope(lin(h, "q_proj").reshape(B, L, H, D), c["rope_theta"])
        k = _rope(lin(h, "k_proj").reshape(B, L, K, D), c["rope_theta"])
        v = lin(h, "v_proj").reshape(B, L, K, D)
        a = _attention(q, k, v, bias, stale_kv[i] if stale is not None else None,
                       outside if stale is not None else None, record)
        x = x + lin(a, "attn_out")
        h = _rms(x, p("ff_norm"), eps)
        g = lin(h, "ff_proj")
        x = x + lin((g / (1 + np.exp(-g))) * lin(h, "up_proj"), "ff_out")
    x = _rms(x, t["model.transformer.ln_f.weight"], eps)
    return x @ t["model.transformer.ff_out.weight"].astype(np.float64).T


def numpy_generate(t, c, prompt, gen_length, block_length, steps, mask_id,
                   hint_ids=None, hint_mask=None, attention_mask=None, cache="none",
                   threshold=None, dream=False, remasking="low_confidence", top_p=1.0,
                   schedule="even"):
    """Step-by-step numpy version of docs/ALGORITHM.md section 3 at temperature 0, low_confidence.

    ``cache``: "none" (exact), "prefix" or "dual": steps after a block's first see
    keys/values of the state at the block's first step outside the window
    ``[block start, end)`` (prefix) or ``[block start, block end)`` (dual).
    ``threshold``: unmask every masked position with confidence above it, at
    least one and at least what the fixed schedule still needs; the block ends
    when nothing is masked.

    ``dream``: Dream's forward and its shifted logits (the prediction of token i read
    at position i-1); a cached step then also recomputes position ``start - 1``, whose
    output predicts the block's first token.

    ``remasking="entropy"``, ``top_p`` and ``schedule="dream"``: Dream's generation
    (generation_utils.py): the nucleus filter on the logits (sorted, cumulative mass,
    shifted by one, scattered back), confidence = the negative entropy of the filtered
    distribution, and Dream's count per step on linspace(1, 1e-3).

    Returns (x [B, P+G], log) where log lists (block, step, transferred positions per row).
    """
    fwd = dream_numpy_forward if dream else numpy_forward
    shift = 1 if dream else 0
    B, P = prompt.shape
    x = np.concatenate([prompt, np.full((B, gen_length), mask_id)], 1).astype(np.int64)
    fixed = np.zeros((B, P + gen_length), bool)
    if hint_mask is not None:
        x[:, P:][hint_mask] = hint_ids[hint_mask]
        fixed[:, P:] = hint_mask
    attn = None
    if attention_mask is not None:
        attn = np.concatenate([attention_mask, np.ones((B, gen_length), bool)], 1)
    nb = gen_length // block_length
    spb = steps // nb
    log = []
    for b in range(nb):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        n = ((x[:, lo:hi] == mask_id) & ~fixed[:, lo:hi]).sum(1)
        if schedule == "dream":
            counts = np.stack([dream_counts(int(m), spb) for m in n])
        else:
            counts = np.stack([n // spb + (i < n % spb) for i in range(spb)], 1)
        at_start = x.copy()
        for i in range(spb):
            masked = (x == mask_id) & ~fixed
            masked[:, hi:] = False
            masked[:, :lo] = False
            if threshold is not None and i > 0 and not masked.any():
                break
            if cache == "none" or i == 0:
                logits = fwd(t, c, x, attn)
            else:
                window = (lo - shift, hi if cache == "dual" else x.shape[1])
                logits = fwd(t, c, x, attn, stale=at_start, window=window)
            if dream:
                logits = dream_shift(logits)
            logits[..., mask_id] = -np.inf
            if top_p < 1:
                logits = dream_top_p(logits, top_p)
            x0 = logits.argmax(-1)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            if remasking == "entropy":
                conf = (p * np.log(p + 1e-10)).sum(-1)
            else:
                conf = np.take_along_axis(p, x0[..., None], -1)[..., 0]
            conf = np.where(masked, conf, -np.inf)
            moved = []
            for r in range(B):
                k = counts[r, i]
                if threshold is not None:
                    left = masked[r].sum()
                    floor = max(1, left - counts[r, i + 1:].sum())
                    k = min(max((conf[r] > threshold).sum(), floor), left)
                sel = np.argsort(-conf[r], kind="stable")[:k]
                x[r, sel] = x0[r, sel]
                moved.append(sorted(sel.tolist()))
            log.append((b, i, moved))
    return x, log


def dream_counts(masked: int, steps: int, eps: float = 1e-3) -> np.ndarray:
    """Dream's tokens per step, as its loop computes them one step at a time:
    int(masked * (1 - s / t)) in float32, all that is left at the last step."""
    t = np.linspace(1.0, eps, steps + 1).astype(np.float32)
    out = []
    for i in range(steps):
        keep = np.float32(1) - t[i + 1] / t[i]
        k = masked if i == steps - 1 else int(np.float32(masked) * keep)
        out.append(k)
        masked -= k
    return np.array(out)


def dream_top_p(logits: np.ndarray, top_p: float) -> np.ndarray:
    """Dream's top_p_logits: sort descending, remove where the cumulative softmax exceeds
    top_p, shifted right by one (the first token always stays), scattered back."""
    order = np.argsort(-logits, axis=-1, kind="stable")
    srt = np.take_along_axis(logits, order, -1)
    e = np.exp(srt - srt[..., :1])
    cum = np.cumsum(e / e.sum(-1, keepdims=True), -1)
    remove = cum > top_p
    remove[..., 1:] = remove[..., :-1].copy()
    remove[..., 0] = False
    mask = np.zeros_like(remove)
    np.put_along_axis(mask, order, remove, -1)
    return np.where(mask, -np.inf, logits)


# ---- Dream (Qwen2-shaped, shifted logits), written from Dream's modelling code ----------
def dream_hf_config(vocab=64, d=32, layers=2, heads=4, kv_heads=2, mlp=64, mask=63, eos=62):
    return {"architectures": ["DreamModel"], "model_type": "Dream", "vocab_size": vocab,
            "hidden_size": d, "intermediate_size": mlp, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads,
            "max_position_embeddings": 512, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
            "mask_token_id": mask, "eos_token_id": eos, "pad_token_id": eos,
            "bos_token_id": eos, "tie_word_embeddings": False, "hidden_act": "silu",
            "rope_scaling": None}


def random_dream_weights(c, seed=0, scale=0.3):
    """Tensors named and shaped as Dream's DreamModel state dict."""
    rng = np.random.default_rng(seed)
    d, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = d // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    w = lambda *s: (rng.standard_normal(s) * scale).astype(np.float32)  # noqa: E731
    t = {"model.embed_tokens.weight": w(v, d), "model.norm.weight": 1 + w(d),
         "lm_head.weight": w(v, d)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t.update({p + "input_layernorm.weight": 1 + w(d),
                  p + "post_attention_layernorm.weight": 1 + w(d),
                  p + "self_attn.q_proj.weight": w(d, d), p + "self_attn.q_proj.bias": w(d),
                  p + "self_attn.k_proj.weight": w(kv, d), p + "self_attn.k_proj.bias": w(kv),
                  p + "self_attn.v_proj.weight": w(kv, d), p + "self_attn.v_proj.bias": w(kv),
                  p + "self_attn.o_proj.weight": w(d, d),
                  p + "mlp.gate_proj.weight": w(f, d), p + "mlp.up_proj.weight": w(f, d),
                  p + "mlp.down_proj.weight": w(d, f)})
    return t


def dream_numpy_forward(t, c, ids, attention_mask=None, stale=None, window=None, record=None):
    """float64 DreamModel.forward on its own tensors: raw logits [B, L, V] (position i's
    output; Dream's generation reads the prediction of token i at i-1, see
    :func:`dream_shift`). ``stale``/``window``/``record`` as in :func:`numpy_forward`.
    Padding is hidden from the keys (the rows of padded queries are not compared)."""
    B, L = ids.shape
    stale_kv = []
    if stale is not None:
        dream_numpy_forward(t, c, stale, attention_mask, record=stale_kv)
        outside = np.ones(L, bool)
        outside[window[0]:window[1]] = False
    H, K = c["num_attention_heads"], c["num_key_value_heads"]
    D = c["hidden_size"] // H
    eps = c["rms_norm_eps"]
    x = t["model.embed_tokens.weight"][ids].astype(np.float64)
    bias = np.zeros((B, L)) if attention_mask is None else np.where(attention_mask, 0.0, -1e30)
    # Dream's generation code: a padded row's positions count its real tokens
    # (tok_idx = attention_mask.cumsum(-1) - 1), padding gets position 1
    pos = None
    if attention_mask is not None:
        real = np.asarray(attention_mask, bool)
        pos = np.where(real, np.cumsum(real, axis=-1) - 1, 1)
    for i in range(c["num_hidden_layers"]):
        g = lambda n: t[f"model.layers.{i}.{n}"].astype(np.float64)  # noqa: E731

        def lin(x, n, with_bias=False, g=g):
            y = x @ g(n + ".weight").T
            return y + g(n + ".bias") if with_bias else y
        h = _rms(x, g("input_layernorm.weight"), eps)
        q = _rope(lin(h, "self_attn.q_proj", True).reshape(B, L, H, D), c["rope_theta"], pos)
        k = _rope(lin(h, "self_attn.k_proj", True).reshape(B, L, K, D), c["rope_theta"], pos)
        v = lin(h, "self_attn.v_proj", True).reshape(B, L, K, D)
        a = _attention(q, k, v, bias, stale_kv[i] if stale is not None else None,
                       outside if stale is not None else None, record)
        x = x + lin(a, "self_attn.o_proj")
        h = _rms(x, g("post_attention_layernorm.weight"), eps)
        gate = lin(h, "mlp.gate_proj")
        x = x + lin((gate / (1 + np.exp(-gate))) * lin(h, "mlp.up_proj"), "mlp.down_proj")
    x = _rms(x, t["model.norm.weight"], eps)
    return x @ t["lm_head.weight"].astype(np.float64).T


def dream_shift(logits):
    """Dream's generation: logits = cat([logits[:, :1], logits[:, :-1]], 1)."""
    return np.concatenate([logits[:, :1], logits[:, :-1]], axis=1)


def dream_path_config(c):
    """The keys :func:`f32_atol` reads, from a Dream config."""
    return {"d_model": c["hidden_size"], "mlp_hidden_size": c["intermediate_size"],
            "n_layers": c["num_hidden_layers"], "n_heads": c["num_attention_heads"]}
