"""PyTorch eager LLaDA forward and generate loop: the baseline a user would otherwise run.

Follows the LLaDA reference code (modelling_llada.py and generate.py): eager
modules, ``F.scaled_dot_product_attention``, full-sequence logits every step,
float64 softmax for the confidence, a Python loop over blocks and steps and a
per-row ``topk``. Benchmark-only: PyTorch is never a dependency of igpo_jax.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class TorchLLaDA:
    def __init__(self, params: dict, cfg, device: str = "cpu", dtype=torch.float32):
        """``params``: numpy arrays, or (``device="cuda"``) jax arrays taken over by DLPack."""
        def t(a):
            if device == "cpu":
                return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32))).to(dtype)
            return torch.from_dlpack(a).to(device=device, dtype=dtype)
        self.cfg = cfg
        self.wte = t(params["wte"])
        self.ln_f = t(params["ln_f"])
        self.lm_head = t(params["lm_head"]).T.contiguous()  # [V, D] like nn.Linear
        self.layers = []
        for i in range(cfg.n_layers):
            layer = {k.split("/", 1)[1]: t(v[i]) for k, v in params.items()
                     if k.startswith("blocks/")}
            # nn.Linear layout [out, in]
            self.layers.append({k: (v.T.contiguous() if v.ndim == 2 else v)
                                for k, v in layer.items()})
        hd = cfg.head_dim
        inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        freqs = torch.arange(cfg.max_sequence_length, dtype=torch.float32)[:, None] * inv[None]
        emb = torch.cat([freqs, freqs], -1)
        self.sin, self.cos = emb.sin().to(device), emb.cos().to(device)

    def _rms(self, x, w):
        x32 = x.float()
        return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.cfg.rms_norm_eps)
                    ).to(x.dtype)

    def _rope(self, x):  # [B, H, L, D]
        L = x.shape[2]
        sin, cos = self.sin[:L], self.cos[:L]
        x32 = x.float()
        x1, x2 = x32.chunk(2, dim=-1)
        return (x32 * cos + torch.cat([-x2, x1], -1) * sin).to(x.dtype)

    def layer(self, x, p):
        c = self.cfg
        B, L, _ = x.shape
        h = self._rms(x, p["attn_norm"])
        q = F.linear(h, p["q_proj"]).view(B, L, c.n_heads, c.head_dim).transpose(1, 2)
        k = F.linear(h, p["k_proj"]).view(B, L, c.kv_heads, c.head_dim).transpose(1, 2)
        v = F.linear(h, p["v_proj"]).view(B, L, c.kv_heads, c.head_dim).transpose(1, 2)
        q, k = self._rope(q), self._rope(k)
        if c.kv_heads != c.n_heads:
            rep = c.n_heads // c.kv_heads
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        x = x + F.linear(a.transpose(1, 2).reshape(B, L, -1), p["attn_out"])
        h = self._rms(x, p["ff_norm"])
        return x + F.linear(F.silu(F.linear(h, p["ff_proj"])) * F.linear(h, p["up_proj"]),
                            p["ff_out"])

    @torch.no_grad()
    def __call__(self, ids):
        x = self.wte[ids]
        for p in self.layers:
            x = self.layer(x, p)
        return F.linear(self._rms(x, self.ln_f), self.lm_head)


def get_num_transfer_tokens(mask_index, steps):
    mask_num = mask_index.sum(dim=1, keepdim=True)
    base = mask_num // steps
    remainder = mask_num % steps
    out = torch.zeros(mask_num.size(0), steps, dtype=torch.int64, device=mask_index.device) + base
    for i in range(mask_num.size(0)):
        out[i, : remainder[i]] += 1
    return out


@torch.no_grad()
def generate(model, prompt, steps=128, gen_length=256, block_length=32, mask_id=126336):
    """LLaDA generate.py at temperature 0, low_confidence remasking."""
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long,
                   device=prompt.device)
    x[:, : prompt.shape[1]] = prompt
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    p_len = prompt.shape[1]
    for nb in range(num_blocks):
        lo, hi = p_len + nb * block_length, p_len + (nb + 1) * block_length
        block_mask_index = x[:, lo:hi] == mask_id
        num_transfer = get_num_transfer_tokens(block_mask_index, steps_per_block)
        for i in range(steps_per_block):
            mask_index = x == mask_id
            logits = model(x)
            logits[..., mask_id] = -torch.inf  # as igpo_jax: the mask token is no candidate
            x0 = torch.argmax(logits, dim=-1)
            p = F.softmax(logits.to(torch.float64), dim=-1)
            x0_p = torch.gather(p, -1, x0[..., None]).squeeze(-1)
            x0_p[:, hi:] = -np.inf
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -np.inf)
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                _, sel = torch.topk(confidence[j], k=int(num_transfer[j, i]))
                transfer[j, sel] = True
            x[transfer] = x0[transfer]
    return x
