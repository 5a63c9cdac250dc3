"""Where do rollouts fail, and do hints make all-wrong problems solvable?

Loads an SFT checkpoint (default: the shipped demo SFT stage), samples G
completions per problem on training problems of every difficulty, and reports
per difficulty (``meta``, e.g. ``n_terms=6``):

- accuracy of plain rollouts and the share of all-wrong groups;
- for the all-wrong groups: the success rate of hinted completions at the
  config's eta range and at full hints (eta = 1), and the share of groups that
  get at least one correct hinted completion ("rescued");
- for the synthetic task: the reasoning line at which a wrong completion first
  departs from the ground truth, and how often the boxed answer contradicts the
  completion's own last line.

    python benchmarks/igpo_diagnose.py --config configs/demo.py --problems 32

Writes a JSON summary (``--out``). Runs on the CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import time

import jax
import numpy as np
from igpo_jax.configlib import typed

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_config(spec: str, overrides: list[str]):
    from ml_collections import config_flags  # noqa: F401  (same loader as main)
    import importlib.util
    path, _, arg = spec.partition(":")
    mod_spec = importlib.util.spec_from_file_location("cfg", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    c = mod.get_config(arg) if arg else mod.get_config()
    for ov in overrides:
        key, _, val = ov.partition("=")
        node = c
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = type(node[parts[-1]])(eval(val)) if not isinstance(
            node[parts[-1]], str) else val
    return c


def load_model(config: str, init_from: str = "", overrides=()):
    """(config, init folder, tokenizer, model config, parameters) of a trained run
    (default: the shipped demo SFT stage) under the recipe ``config``."""
    from igpo_jax import experiment, pipeline
    c = _load_config(config, list(overrides))
    init = init_from or os.path.join(pipeline.ASSETS, "demo_sft")
    with c.unlocked():
        c.model.init_from = init
    tc = typed(c)
    parts = experiment.ModelParts(tc)
    return c, init, parts.tok, parts.cfg, parts.params


def first_wrong_line(text: str, trace: str) -> int:
    """Index of the first reasoning line that differs from the trace's (-1: none)."""
    def lines(t):
        body = t.split("<reasoning>\n", 1)[-1].split("</reasoning>", 1)[0]
        return [x for x in body.split("\n") if x]
    got, want = lines(text), lines(trace)
    for i, w in enumerate(want):
        if i >= len(got) or got[i] != w:
            return i
    return -1


def answer_contradicts_last_line(text: str) -> bool | None:
    from igpo_jax.data.answers import extract_answer
    body = text.split("<reasoning>\n", 1)[-1].split("</reasoning>", 1)[0]
    lines = [x for x in body.split("\n") if x]
    ans = extract_answer(text)
    if not lines or ans is None:
        return None
    m = re.search(r"=(\S+)$", lines[-1])
    return None if m is None else m.group(1) != ans.strip()


def step_probe(params, cfg, tok, c, by, n: int = 100) -> dict:
    """Can the model do step k given correct steps 1..k-1? For each problem length, the
    result token of reasoning line k (its last token) and everything after it are
    masked, the rest of the trace is given, and the greedy prediction at that token is
    compared with the truth. A model that learned the step rule scores high on every
    line at every length; one that only learned shortcuts for the first lines does not.
    Returns ``{length: {"line_1": acc, ...}}`` (``n`` problems per length)."""
    import jax.numpy as jnp
    from igpo_jax.data.batches import encode_prompts
    from igpo_jax.models import family
    nl = tok.encode("\n")[-1]
    end = tok.encode("</reasoning>")[-1]
    fwd = jax.jit(lambda x, a: family.token_logits(params, cfg, x, a))
    out = {}
    for meta in sorted(by, key=lambda m: int(m.split("=")[-1]) if "=" in m else 0):
        probs = by[meta][:n]
        p, a = encode_prompts(tok, probs, c.sampler.prompt_len, c.data.system_prompt or None)
        comp = np.stack([tok.completion_ids(e.trace, c.sampler.gen_length) for e in probs])
        # result tokens: the token before each newline inside the reasoning (row 0's
        # layout; the synthetic traces of one length share it)
        row = list(comp[0])
        stop = row.index(end) if end in row else len(row)
        ends = [i - 1 for i in range(2, stop) if row[i] == nl]
        full = np.concatenate([p, comp], 1)
        attn = jnp.asarray(np.concatenate([a, np.ones_like(comp, bool)], 1))
        res = {}
        for k, pos in enumerate(ends):
            x = full.copy()
            x[:, p.shape[1] + pos:] = cfg.mask_token_id
            pred = np.asarray(fwd(jnp.asarray(x), attn))[:, p.shape[1] + pos].argmax(-1)
            res[f"line_{k + 1}"] = float((pred == full[:, p.shape[1] + pos]).mean())
        out[meta] = res
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/demo.py")
    ap.add_argument("--init_from", default="",
                    help="run folder of the SFT stage (default: the shipped demo SFT stage)")
    ap.add_argument("--problems", type=int, default=32, help="problems per difficulty")
    ap.add_argument("--split", default="train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/igpo_diagnose.json")
    ap.add_argument("--probe_only", action="store_true", help="print the step probe only")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    a = ap.parse_args()

    from igpo_jax import rewards, sampling
    from igpo_jax.data.batches import encode_prompts, encode_traces
    from igpo_jax.data.sources import load_examples
    from igpo_jax.rl import igpo

    c, init, tok, cfg, params = load_model(a.config, a.init_from, a.overrides)
    exs = load_examples(c.data.to_dict(), a.split)
    by = collections.defaultdict(list)
    for e in exs:
        by[e.meta].append(e)
    G = c.rl.group_size
    sc = sampling.SamplerConfig.from_config(c.sampler)
    hc = typed(c).igpo
    reward = rewards.MathReward.from_config(c.reward)
    key = jax.random.key(a.seed)

    def sample(examples, k, h_ids=None, h_mask=None):
        p, m = encode_prompts(tok, examples, c.sampler.prompt_len, c.data.system_prompt or None)
        out = sampling.generate_params(params, cfg, p, sc, k, attention_mask=m,
                                       hint_ids=h_ids, hint_mask=h_mask).tokens
        comp = np.asarray(out)[:, p.shape[1]:]
        texts = [tok.decode_completion(x) for x in comp]
        ok = np.asarray([reward(t, e.answer)[1] for t, e in zip(texts, examples)])
        return texts, ok

    report = {}
    t0 = time.time()
    if a.probe_only:
        report["_step_probe"] = step_probe(params, cfg, tok, c, by, a.problems)
        for meta, lines in report["_step_probe"].items():
            print(meta, " ".join(f"{v:.2f}" for v in lines.values()), flush=True)
        return
    for meta in sorted(by):
        probs = by[meta][:a.problems]
        rows = [e for e in probs for _ in range(G)]
        key, k1, k2, k3, k4 = jax.random.split(key, 5)
        texts, ok = sample(rows, k1)
        wrong_groups = ~ok.reshape(-1, G).any(1)
        first = [first_wrong_line(t, e.trace) for t, e, o in zip(texts, rows, ok) if not o]
        contra = [answer_contradicts_last_line(t) for t, o in zip(texts, ok) if not o]
        r = dict(problems=len(probs), accuracy=float(ok.mean()),
                 all_wrong=float(wrong_groups.mean()),
                 first_wrong_line=dict(collections.Counter(first)),
                 answer_contradicts_own_last_line=float(np.mean([x for x in contra
                                                                 if x is not None] or [0])))
        gw = [probs[i] for i in np.where(wrong_groups)[0]]
        if gw:
            hrows = [e for e in gw for _ in range(G)]
            t_ids, t_len, t_rev = encode_traces(tok, hrows, sc.gen_length,
                                                c.igpo.exclude_last_step)
            # the control: G more plain samples of the same all-wrong groups (what the
            # resampling member draws), so hinted success has its baseline
            key, k5 = jax.random.split(key)
            _, pok = sample(hrows, k5)
            r["plain_success"] = float(pok.mean())
            r["rescued[plain]"] = float(pok.reshape(-1, G).any(1).mean())
            for label, lo, hi, kk in (("eta", hc.eta_low, hc.eta_high, k2),
                                      ("eta=1", 1.0, 1.0, k3)):
                eta = igpo.sample_etas(kk, len(gw), G, lo, hi)
                h_ids, h_mask = igpo.build_hints(kk, t_ids, t_len, t_rev, eta, sc.gen_length, hc)
                htexts, hok = sample(hrows, k4, np.asarray(h_ids), np.asarray(h_mask))
                r[f"hinted_success[{label}]"] = float(hok.mean())
                r[f"rescued[{label}]"] = float(hok.reshape(-1, G).any(1).mean())
                r[f"hint_tokens[{label}]"] = float(np.asarray(h_mask).sum(1).mean())
                hfirst = [first_wrong_line(t, e.trace) for t, e, o in zip(htexts, hrows, hok)
                          if not o]
                r[f"hinted_first_wrong_line[{label}]"] = dict(collections.Counter(hfirst))
        report[meta] = r
        print(meta, json.dumps({k: v for k, v in r.items() if "line" not in k}), flush=True)
    report["_step_probe"] = step_probe(params, cfg, tok, c, by)
    print("step probe (accuracy of each reasoning line's result with it and everything after "
          "it masked):", report["_step_probe"], flush=True)
    report["_settings"] = dict(config=a.config, init_from=init, split=a.split, seed=a.seed,
                               group_size=G, sampler=sc.__dict__ if hasattr(sc, "__dict__")
                               else str(sc), seconds=time.time() - t0,
                               device=str(jax.devices()[0]))
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1, default=str)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
