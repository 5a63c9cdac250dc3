"""Evaluation: pass@1 (temperature 0) or avg@k (temperature > 0) over any source.

Every generation is written to ``generations.jsonl`` with its extracted answer
and grade as soon as its batch finishes, and ``summary.json`` at the end. A
re-run skips the batches already written, so an interrupted evaluation resumes
where it stopped (batches and their random keys are fixed by the seed).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
from typing import Sequence

import jax
import ml_collections
import numpy as np

from igpo_jax import experiment, protocols, rewards as rewards_lib, sampling
from igpo_jax.data import answers
from igpo_jax.data import Example
from igpo_jax.data.batches import encode_prompts
from igpo_jax.data.sources import load_examples
from igpo_jax import storage
from igpo_jax.distributed import to_host
from igpo_jax.metrics import PipelinePosition, Progress, read_metrics
from igpo_jax.models import lora, transformer
from igpo_jax.sections import require
from igpo_jax.stage_sections import EvalConfig  # noqa: F401
from igpo_jax.tokenizers import Tokenizer

from igpo_jax.configlib import RunConfig

log = logging.getLogger(__name__)


def _done_rows(path: str) -> dict[tuple[int, int], dict]:
    if not storage.exists(path):
        return {}
    rows = {}
    for line in storage.read_text(path).splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            break  # a torn last line from an interruption: redo from there
        rows[(r["index"], r["sample"])] = r
    return rows


def evaluate(params, cfg: transformer.TransformerConfig, tok: Tokenizer, examples: Sequence[Example],
             sampler_cfg: sampling.SamplerConfig, out_dir: str, *, k: int = 1,
             batch_size: int = 32, prompt_len: int, seed: int = 0,
             system_prompt: str | None = None, mesh=None,
             reward: rewards_lib.MathReward | None = None, show_progress: bool = True,
             label: str = "", position: PipelinePosition | None = None,
             protocol: protocols.Protocol | None = None) -> dict:
    """Generates ``k`` samples per example, grades them, writes files; returns the summary.
    With a ``protocol``, prompts are built and completions graded as that reference
    does (each row's ``score``; the summary's accuracy is their mean)."""
    reward = reward or rewards_lib.MathReward()
    params = lora.merge_for_sampling(params, cfg.lora)  # once for every batch
    storage.makedirs(out_dir)
    gen_path = os.path.join(out_dir, "generations.jsonl")
    done = _done_rows(gen_path)
    if done and jax.process_index() == 0:  # rewrite without a possibly torn tail
        storage.write_text(gen_path, "".join(json.dumps(r) + "\n" for r in done.values()))
    pairs = [(i, j) for i in range(len(examples)) for j in range(k)]
    batches = [pairs[a:a + batch_size] for a in range(0, len(pairs), batch_size)]
    prompts, attn = encode_prompts(tok, examples, prompt_len, system_prompt, protocol)
    key = jax.random.fold_in(jax.random.key(seed), 424242)
    label = label or os.path.basename(os.path.dirname(out_dir.rstrip("/")))
    progress = (Progress(len(batches), f"eval[{label}]", unit="batch", position=position)
                if show_progress else None)
    for b, batch in enumerate(batches):
        if all(p in done for p in batch):
            continue
        idx = np.array([i for i, _ in batch] + [batch[0][0]] * (batch_size - len(batch)))
        out = sampling.generate_params(params, cfg, prompts[idx], sampler_cfg,
                                       jax.random.fold_in(key, b), attention_mask=attn[idx],
                                       mesh=mesh)
        stats = {"forward_passes": out.forward_passes}
        comps = to_host(out.tokens)[: len(batch), prompt_len:]
        rows = []
        for (i, j), comp in zip(batch, comps):
            text = tok.decode_completion(comp)
            if protocol is None:
                r, ok = reward(text, examples[i].answer)
                graded = dict(correct=bool(ok), reward=float(r))
            else:  # graded on the text the reference's grader reads
                score = float(protocol.grade(protocol.completion_text(tok, comp), examples[i]))
                graded = dict(correct=score == 1.0, score=score)
            rows.append(dict(index=i, sample=j, question=examples[i].question,
                             answer=examples[i].answer, meta=examples[i].meta,
                             completion=text, extracted=answers.extract_answer(text),
                             **graded, forward_passes=stats["forward_passes"]))
        # a batch cut short by an interruption is sampled again whole; the rows of it that
        # were already written stay as they are, so no generation is written twice
        rows = [r for r in rows if (r["index"], r["sample"]) not in done]
        if jax.process_index() == 0:
            storage.append_text(gen_path, "".join(json.dumps(r) + "\n" for r in rows))
        done.update({(r["index"], r["sample"]): r for r in rows})
        if progress:
            progress.update(b + 1, acc=float(np.mean([_score(r) for r in done.values()])))
    summary = summarize(list(done.values()), k, sampler_cfg)
    if protocol is not None:
        summary.update(protocol=protocol.name, protocol_metric=protocol.metric)
    if jax.process_index() == 0:
        storage.write_text(os.path.join(out_dir, "summary.json"),
                           json.dumps(summary, indent=2, allow_nan=False))
    return summary


def _score(row: dict) -> float:
    """A row's grade: a protocol's score in [0, 1] (d1's Sudoku: the share of blanks
    right), else 1 for a correct answer."""
    return float(row.get("score", row["correct"]))


def summarize(rows: list[dict], k: int, sc: sampling.SamplerConfig) -> dict:
    by_meta = collections.defaultdict(list)
    for r in rows:
        by_meta[r.get("meta") or "all"].append(_score(r))
    acc = float(np.mean([_score(r) for r in rows])) if rows else 0.0
    return {"metric": "pass@1" if k == 1 else f"avg@{k}", "accuracy": acc,
            "num_examples": len({r["index"] for r in rows}), "k": k,
            "format_reward": float(np.mean([rewards_lib.format_reward(r["completion"])
                                            for r in rows])) if rows else 0.0,
            "by_meta": {m: float(np.mean(v)) for m, v in sorted(by_meta.items())},
            "sampler": dict(gen_length=sc.gen_length, block_length=sc.block_length,
                            steps=sc.steps, temperature=sc.temperature,
                            remasking=sc.remasking, cache=sc.cache, unmask=sc.unmask,
                            threshold=sc.threshold, mode=sc.mode,
                            # recorded where they differ from LLaDA's sampler
                            **({"top_p": sc.top_p} if sc.top_p < 1 else {}),
                            **({"schedule": sc.schedule} if sc.schedule != "even" else {})),
            # model calls of the sampler call that produced each row, mean over rows
            "forward_passes": float(np.mean([r.get("forward_passes", sc.steps) for r in rows]))
            if rows else 0.0}


def describe_sampler(sc: dict) -> str:
    """``length 256, block 32, 128 steps, exact`` (or the fast mode's cache / unmasking)."""
    fast = [f"cache={sc['cache']}"] if sc.get("cache", "none") != "none" else []
    if sc.get("unmask", "fixed") != "fixed":
        fast.append(f"unmask={sc['unmask']}")
    extra = [f"top_p={sc['top_p']:g}"] if sc.get("top_p", 1.0) < 1 else []
    if sc.get("remasking", "low_confidence") != "low_confidence":
        extra.append(sc["remasking"])
    if sc.get("schedule", "even") != "even":
        extra.append(f"{sc['schedule']} schedule")
    return (f"length {sc['gen_length']}, block {sc['block_length']}, {sc['steps']} steps, "
            f"T={sc['temperature']:g}, " + "".join(e + ", " for e in extra)
            + (" ".join(fast) or "exact"))


def format_table(summaries: dict[str, dict]) -> str:
    lines = ["| run | protocol | metric | accuracy | examples | sampler |",
             "|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        lines.append(f"| {name} | {s.get('protocol', '-')} | {s['metric']} | "
                     f"{100 * s['accuracy']:.1f}% | {s['num_examples']} | "
                     f"{describe_sampler(s['sampler'])} |")
    return "\n".join(lines)


def sampler_for_eval(c: RunConfig) -> sampling.SamplerConfig:
    sc = sampling.SamplerConfig.from_config(c.sampler, temperature=c.eval.temperature)
    if c.eval.exact_sampler:
        sc = dataclasses.replace(sc, cache="none", unmask="fixed")
    return sc


def eval_examples(c: RunConfig, limit: int | None = None,
                  tok: Tokenizer | None = None) -> list[Example]:
    from igpo_jax.data.batches import check_lengths
    examples = load_examples(c.data.to_dict(), c.eval.split)
    protocol = eval_protocol(c)
    if protocol is not None:
        examples = protocol.select(examples)  # the reference's problems, in its order
    n = limit or c.eval.num_examples
    examples = examples[:n] if n else examples
    return check_lengths(tok or experiment.build_tokenizer(c), examples, c.sampler.prompt_len, None,
                         c.data.system_prompt or None, c.data.skip_bad_rows, "evaluation data",
                         protocol=protocol)


def eval_protocol(c: RunConfig) -> protocols.Protocol | None:
    return protocols.get(c.eval.protocol) if c.eval.protocol else None


def evaluate_config(c: RunConfig, params, cfg: transformer.TransformerConfig, tok: Tokenizer,
                    examples: Sequence[Example], out_dir: str, mesh, k: int,
                    show_progress: bool, reward=None,
                    position: PipelinePosition | None = None) -> dict:
    """:func:`evaluate` with the sampler, prompt, seed and reward settings of config ``c``."""
    return evaluate(params, cfg, tok, examples, sampler_for_eval(c), out_dir, k=k,
                    batch_size=c.eval.batch_size, prompt_len=c.sampler.prompt_len, seed=c.seed,
                    system_prompt=c.data.system_prompt or None, mesh=mesh,
                    reward=reward or rewards_lib.from_config(c.reward),
                    show_progress=show_progress, position=position,
                    protocol=eval_protocol(c))


def run_eval(c: RunConfig | ml_collections.ConfigDict, workdir: str, params=None, name: str = "eval",
             limit: int | None = None, show_progress: bool = True, *, tokenizer=None,
             reward=None, examples=None,
             position: PipelinePosition | None = None) -> dict:
    """The ``eval`` mode: the config's model on its held-out split, into ``workdir/name``.
    ``params``, ``tokenizer``, ``reward`` and ``examples`` replace what the config
    would build."""
    c = require(c, "evaluate.run_eval")
    parts = experiment.ModelParts(c, tokenizer=tokenizer, params=params)
    mesh, tok, cfg, params = parts.mesh, parts.tok, parts.cfg, parts.params
    summary = evaluate_config(c, params, cfg, tok, examples or eval_examples(c, limit, tok),
                              os.path.join(workdir, name), mesh, c.eval.k, show_progress,
                              reward, position=position)
    if show_progress and jax.process_index() == 0:
        print(format_table({os.path.basename(storage.absolute(workdir)): summary}))
    return summary


class PeriodicEval:
    """Held-out accuracy during training, appended to ``workdir/heldout.jsonl``."""

    def __init__(self, c: RunConfig, workdir: str, cfg, tok, mesh):
        self.c, self.workdir, self.cfg, self.tok, self.mesh = c, workdir, cfg, tok, mesh
        self.every = c.eval.every
        self.examples = eval_examples(c, c.eval.during_examples, tok) if self.every else []
        self.path = os.path.join(workdir, "heldout.jsonl")

    def maybe(self, step: int, params, final: bool = False, **extra) -> dict | None:
        """Evaluates at multiples of ``eval.every`` and at the final step."""
        if not self.every or (step % self.every and not final):
            return None
        out_dir = os.path.join(self.workdir, "heldout", f"step_{step:06d}")
        s = evaluate_config(self.c, params, self.cfg, self.tok, self.examples, out_dir,
                            self.mesh, k=1, show_progress=False)
        rec = dict(step=step, accuracy=s["accuracy"], by_meta=s["by_meta"],
                   num_examples=s["num_examples"], **extra)
        if jax.process_index() == 0:
            print(f"[{os.path.basename(storage.absolute(self.workdir))}] periodic held-out "
                  f"evaluation at step {step}: {100 * s['accuracy']:.1f}% of "
                  f"{s['num_examples']} problems", flush=True)
        if jax.process_index() == 0:
            rows = read_metrics(self.path) if storage.exists(self.path) else []
            storage.write_text(self.path, "".join(
                json.dumps(r) + "\n" for r in [r for r in rows if r["step"] != step] + [rec]))
        return rec
