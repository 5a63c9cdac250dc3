"""Evaluation (evaluate.py): canned generations graded, and an evaluation cut inside a
batch resumed without duplicates."""

import json

import numpy as np
import pytest

from igpo_jax import evaluate, sampling
from igpo_jax.data import Example
from igpo_jax.models import transformer
from igpo_jax.tokenizers import SentencePieceTokenizer


def test_evaluate_grades_canned_generations(tmp_path, monkeypatch):
    tok = SentencePieceTokenizer()
    exs = [Example("1 2", "3"), Example("2 2", "4"), Example("4 4", "3")]
    texts = {"1 2": "<reasoning>\n1+2=3\n</reasoning>\n<answer>\n\\boxed{3}\n</answer>",
             "2 2": "\\boxed{5}", "4 4": "no answer"}
    gen_len = 48

    calls = []

    def fake_generate(params, cfg, prompt_ids, sc, key, attention_mask=None, mesh=None):
        rows = []
        for p, a in zip(np.asarray(prompt_ids), np.asarray(attention_mask)):
            q = tok.decode(p[a]).strip()
            rows.append(np.concatenate([p, tok.completion_ids(texts[q], gen_len)]))
        calls.append(len(calls) + 5)  # a different model-call count per batch: 5, 6
        out = np.stack(rows)
        return sampling.Sample(out, np.zeros((len(rows), gen_len), np.int32), calls[-1],
                               sc.mode)

    monkeypatch.setattr(sampling, "generate_params", fake_generate)
    sc = sampling.SamplerConfig(gen_length=gen_len, block_length=16, steps=12, temperature=0.0,
                                cache="dual", unmask="threshold")
    cfg = transformer.TransformerConfig.tiny()
    s = evaluate.evaluate(None, cfg, tok, exs, sc, str(tmp_path), batch_size=2, prompt_len=8,
                          show_progress=False)
    assert s["accuracy"] == pytest.approx(1 / 3) and s["num_examples"] == 3
    rows = [json.loads(x) for x in open(tmp_path / "generations.jsonl")]
    assert [(r["extracted"], r["correct"]) for r in rows] == [("3", True), ("5", False),
                                                              (None, False)]
    assert json.load(open(tmp_path / "summary.json"))["accuracy"] == s["accuracy"]
    # the decoding mode and its model calls are recorded (rows of batch 1 ran 5, batch 2 ran 6)
    assert s["sampler"]["mode"] == "cache=dual,unmask=threshold0.9"
    assert s["forward_passes"] == pytest.approx((5 + 5 + 6) / 3)
    # a re-run resumes: nothing is generated again
    monkeypatch.setattr(sampling, "generate_params", None)
    assert evaluate.evaluate(None, cfg, tok, exs, sc, str(tmp_path), batch_size=2,
                             prompt_len=8, show_progress=False)["accuracy"] == s["accuracy"]


def test_evaluation_cut_inside_a_batch_resumes_without_duplicates(tmp_path, monkeypatch):
    """An evaluation stopped while a batch's rows were being written: the re-run samples
    only the unfinished batches, keeps every row already written as it is, and writes
    each generation exactly once."""
    tok = SentencePieceTokenizer()
    exs = [Example(f"{i} 1", str(i + 1)) for i in range(5)]
    gen_len = 16
    calls = []

    def fake_generate(params, cfg, prompt_ids, sc, key, attention_mask=None, mesh=None):
        calls.append(len(prompt_ids))
        rows = [np.concatenate([p, tok.completion_ids(f"\\boxed{{{len(calls)}}}", gen_len)])
                for p in np.asarray(prompt_ids)]
        return sampling.Sample(np.stack(rows), np.zeros((len(rows), gen_len), np.int32), 1,
                               sc.mode)

    monkeypatch.setattr(sampling, "generate_params", fake_generate)
    sc = sampling.SamplerConfig(gen_length=gen_len, block_length=16, steps=4,
                                temperature=0.0)
    cfg = transformer.TransformerConfig.tiny()
    run = lambda: evaluate.evaluate(None, cfg, tok, exs, sc, str(tmp_path), batch_size=2,  # noqa
                                    prompt_len=8, show_progress=False)
    run()
    path = tmp_path / "generations.jsonl"
    lines = path.read_text().splitlines()
    # cut inside the second batch's write: its first row whole, its second torn
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    kept = [json.loads(x) for x in lines[:3]]
    calls.clear()
    s = run()
    assert calls == [2, 2]  # batches 2 and 3 sampled again; batch 1 not
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    keys = [(r["index"], r["sample"]) for r in rows]
    assert sorted(keys) == [(i, 0) for i in range(5)]  # each generation once
    assert rows[:3] == kept  # rows written before the cut stay as they were
    assert s["num_examples"] == 5
