"""File sources (data/sources.py): rows read, malformed rows named by file and line."""

import json

import pytest

from igpo_jax.data import answers
from igpo_jax.data import sources


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_file_sources(tmp_path):
    g = _write(tmp_path / "gsm.jsonl", [{"question": "Q1", "answer": "a\nb\n#### 1,200"}])
    (e,) = sources.load_file("gsm8k", g)
    assert e.answer == "1200" and "<reasoning>\na\nb\n</reasoning>" in e.trace
    m = _write(tmp_path / "mm.jsonl", [
        {"query": "Q", "response": "r. The answer is: 5", "type": "GSM_AnsAug"},
        {"query": "Q", "response": "dup. The answer is: 5", "type": "MATH_AnsAug"},
        {"query": "Q2", "response": "x The answer is: 6", "type": "GSM_Rephrased"}])
    out = sources.load_file("metamath", m, {"metamath_types": ("GSM_AnsAug", "MATH_AnsAug")})
    assert [x.question for x in out] == ["Q"]
    mp = _write(tmp_path / "math.jsonl", [{"problem": "P", "solution": "so \\boxed{\\frac12}"}])
    assert sources.load_file("math", mp)[0].answer == "\\frac12"
    a = _write(tmp_path / "amc.jsonl", [{"problem": "P", "answer": 27}])
    assert sources.load_file("amc", a)[0].answer == "27"
    j = _write(tmp_path / "gen.jsonl", [{"q": "Q", "a": "7", "why": "because"}])
    (x,) = sources.load_file("jsonl", j, {"question_field": "q", "answer_field": "a",
                                          "trace_field": "why"})
    assert x.answer == "7" and answers.extract_boxed(x.trace) == "7"
    lst = tmp_path / "list.json"
    lst.write_text(json.dumps([{"question": "Q", "answer": "#### 3"}]))
    assert sources.load_file("gsm8k", str(lst))[0].answer == "3"


def test_malformed_rows_name_file_and_line(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", [{"question": "Q", "answer": "#### 1"}, "{not json",
                                          {"question": "", "answer": "#### 2"},
                                          {"question": "Q3", "answer": "no marker"}])
    with pytest.raises(sources.DataError, match=r"bad.jsonl:2: bad JSON"):
        sources.load_file("gsm8k", bad)
    out = sources.load_file("gsm8k", bad, {"skip_bad_rows": True})
    assert len(out) == 1
    only_bad = _write(tmp_path / "none.jsonl", ["{x"])
    with pytest.raises(sources.DataError, match="no usable rows"):
        sources.load_file("gsm8k", only_bad, {"skip_bad_rows": True})
    with pytest.raises(sources.DataError, match=r"empty.jsonl:1: missing or empty field 'answer'"):
        sources.load_file("amc", _write(tmp_path / "empty.jsonl", [{"problem": "P"}]))
    with pytest.raises(FileNotFoundError):
        sources.load_file("gsm8k", str(tmp_path / "missing.jsonl"))


def test_binary_data_file_is_named(tmp_path):
    from igpo_jax.data.sources import DataError, load_file
    p = tmp_path / "train.jsonl"
    p.write_bytes(b'{"question": "1", "answer": "1"}\n\x1f\x8b\x08\x00\xff\xfe binary')
    with pytest.raises(DataError, match=r"train.jsonl:2: not UTF-8 text at byte"):
        load_file("jsonl", str(p))
