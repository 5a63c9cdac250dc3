import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import rewards, tokenizers
from igpo_jax.data import answers
from igpo_jax.data import Example, batches, format_trace, sources, split_trace, synthetic


def test_synthetic_traces_are_correct_and_deterministic():
    exs = synthetic.generate(300, "train", seed=3, modulus=7, min_terms=2, max_terms=8)
    assert exs == synthetic.generate(300, "train", seed=3, modulus=7, min_terms=2, max_terms=8)
    assert exs != synthetic.generate(300, "train", seed=4, modulus=7, min_terms=2, max_terms=8)
    for e in exs:
        terms = [int(t) for t in e.question.split()]
        assert 2 <= len(terms) <= 8 and all(0 <= t < 7 for t in terms)
        lines = e.trace.split("<reasoning>\n")[1].split("\n</reasoning>")[0].split("\n")
        assert [int(x) for x in lines] == [sum(terms[:k + 1]) % 7 for k in range(len(terms))]
        assert e.answer == str(sum(terms) % 7)
        assert answers.extract_boxed(e.trace) == e.answer
        assert rewards.format_reward(e.trace) == 0.75


def test_synthetic_splits_are_disjoint():
    train = {e.question for e in synthetic.generate(2000, "train", modulus=5, max_terms=5)}
    test = {e.question for e in synthetic.generate(300, "test", modulus=5, max_terms=5)}
    assert train and test and not train & test
    with pytest.raises(ValueError, match="modulus"):
        synthetic.generate(10, "train", modulus=11)


def test_heldout_problems_are_distinct():
    """A held-out set counts problems, not copies: 2-term sums mod 5 have 25 problems in
    all, so a draw of 300 held-out rows must still hold 300 different questions."""
    test = synthetic.generate(300, "test", modulus=5, min_terms=2, max_terms=5)
    assert len({e.question for e in test}) == 300
    with pytest.raises(ValueError, match="distinct"):
        synthetic.generate(50, "test", modulus=2, min_terms=2, max_terms=2)


def _parse_pointer(question):
    pairs, query = question.split(" |")
    succ = {a.lower(): b for a, b in (p.split(">") for p in pairs.split())}
    assert all(p[0].isupper() and p[2].islower() for p in pairs.split())
    start, hops = query.split(":")
    return succ, start, int(hops)


def test_pointer_task_traces_follow_the_cycle():
    exs = synthetic.generate(400, "train", seed=2, task="pointer", nodes=8, min_terms=1,
                             max_terms=7, weights=(1, 1, 1, 1, 1, 1, 1))
    assert exs == synthetic.generate(400, "train", seed=2, task="pointer", nodes=8,
                                     min_terms=1, max_terms=7, weights=(1, 1, 1, 1, 1, 1, 1))
    hops_seen = set()
    for e in exs:
        succ, start, hops = _parse_pointer(e.question)
        assert sorted(succ) == sorted(succ.values()) == list("abcdefgh")
        # one cycle through every node: 8 steps from any node return to it, fewer never do
        node, seen = start, []
        for _ in range(8):
            node = succ[node]
            seen.append(node)
        assert seen[-1] == start and len(set(seen)) == 8
        lines = e.trace.split("<reasoning>\n")[1].split("\n</reasoning>")[0].split("\n")
        assert lines == [f"{a}>{b}" for a, b in zip([start] + seen, seen[:hops])]
        assert e.answer == seen[hops - 1]
        assert e.meta == f"hops={hops}" and answers.extract_boxed(e.trace) == e.answer
        hops_seen.add(hops)
    assert hops_seen == set(range(1, 8))
    test = synthetic.generate(300, "test", task="pointer", nodes=8, min_terms=2, max_terms=7)
    assert len({e.question for e in test}) == 300
    assert not {e.question for e in test} & {e.question for e in exs}
    # pairs listed a>, b>, ... unless shuffled
    assert all([p[0] for p in e.question.split(" |")[0].split()] == list("ABCDEFGH")
               for e in exs)
    shuffled = synthetic.generate(50, "train", task="pointer", nodes=8, shuffle=True)
    assert any([p[0] for p in e.question.split(" |")[0].split()] != list("ABCDEFGH")
               for e in shuffled)
    with pytest.raises(ValueError, match="hops"):
        synthetic.generate(5, "train", task="pointer", nodes=8, min_terms=1, max_terms=8)
    with pytest.raises(ValueError, match="task"):
        synthetic.generate(5, "train", task="nope")


def test_split_trace():
    t = format_trace("1+2=3\n3+4=2", "2")
    rev, rest = split_trace(t)
    assert rev.endswith("</reasoning>\n") and rest.startswith("<answer>")
    rev, rest = split_trace(t, exclude_last_step=True)
    assert rev == "<reasoning>\n1+2=3\n" and rest.startswith("3+4=2")
    assert split_trace("no tags") == ("no tags", "")


def test_hints_never_reveal_answer_markers_in_math_style_traces():
    """MATH / MetaMathQA reasoning boxes results before the answer span: nothing from
    the first marker on is revealable, so even full hints cannot state the answer."""
    from igpo_jax.rl import igpo
    sol = ("Let $a = 2$. Then $a^2 = \\boxed{4}$ and so the sum is 4 + 3 = 7. "
           "The answer is: 7")
    t = format_trace(sol, "7")
    rev, rest = split_trace(t)
    assert rev == "<reasoning>\nLet $a = 2$. Then $a^2 = " and rest.startswith("\\boxed{4}")
    tok = tokenizers.SentencePieceTokenizer()
    ids, lens, revl = batches.encode_traces(tok, [Example("q", "7", t)] * 4, 128)
    hc = igpo.IgpoConfig(min_chunk=1, max_chunk=3, reserve=0)
    for position in igpo.POSITIONS:
        h_ids, h_mask = igpo.build_hints(jax.random.key(0), jnp.asarray(ids), jnp.asarray(lens),
                                         jnp.asarray(revl), jnp.ones(4), 128,
                                         dataclasses.replace(hc, position=position))
        for row in range(4):
            shown = tok.decode(np.asarray(h_ids)[row][np.asarray(h_mask)[row]])
            assert shown and "boxed" not in shown and "answer" not in shown and "7" not in shown


def test_sentencepiece_roundtrip_and_specials():
    tok = tokenizers.SentencePieceTokenizer()
    e = synthetic.generate(5, "train")[0]
    assert tok.decode(tok.encode(e.trace)) == e.trace
    assert tok.decode(tok.encode(e.question)) == e.question
    ids = {tok.bos_id, tok.eos_id, tok.mask_id, tok.eot_id}
    assert len(ids) == 4 and max(ids) < tok.vocab_size
    assert tok.encode("<reasoning>") == [tok.sp.piece_to_id("<reasoning>")]
    comp = tok.completion_ids("\\boxed{3}", 16)
    assert comp.shape == (16,) and comp[-1] == tok.eos_id
    assert tok.decode_completion(list(comp) + [5, 6]) == "\\boxed{3}"
    assert tok.prompt_ids("1 2")[0] == tok.bos_id


def _tiny_hf_tokenizer(path):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    vocab = {w: i for i, w in enumerate(
        ["<unk>", "<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|eot_id|>",
         "<|start_header_id|>", "<|end_header_id|>", "user", "assistant", "system", "\n\n",
         "what", "is", "2", "+", "?", "hi"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+|[+?]"), behavior="isolated")
    tk.add_special_tokens(["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|eot_id|>",
                           "<|start_header_id|>", "<|end_header_id|>"])
    tk.save(str(path))
    return vocab


def test_hf_tokenizer_chat_template(tmp_path):
    vocab = _tiny_hf_tokenizer(tmp_path / "tokenizer.json")
    tok = tokenizers.load_tokenizer("hf", str(tmp_path))
    assert (tok.bos_id, tok.eos_id, tok.mask_id, tok.eot_id) == (1, 2, 3, 4)
    ids = tok.prompt_ids("hi")
    v = vocab
    assert ids == [v["<|startoftext|>"], v["<|start_header_id|>"], v["user"],
                   v["<|end_header_id|>"], v["\n\n"], v["hi"], v["<|eot_id|>"],
                   v["<|start_header_id|>"], v["assistant"], v["<|end_header_id|>"], v["\n\n"]]
    with_sys = tok.prompt_ids("hi", system_prompt="hi")
    assert with_sys[1:3] == [v["<|start_header_id|>"], v["system"]]
    assert tok.decode_completion([v["2"], v["<|eot_id|>"], v["hi"]]) == "2"
    with pytest.raises(ValueError, match="tokenizer.path"):
        tokenizers.load_tokenizer("hf")


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


def test_grain_iterator_state_and_process_sharding():
    it = batches.index_iterator(10, 4, seed=1)
    first = [next(it).tolist() for _ in range(2)]
    state = it.get_state()
    nxt = next(it).tolist()
    it2 = batches.index_iterator(10, 4, seed=1)
    it2.set_state(state)
    assert next(it2).tolist() == nxt
    seen = [x for b in first for x in b]
    assert len(set(seen)) == 8
    # two processes read disjoint halves of the same global batch, in process order
    shard0 = next(batches.local_index_iterator(10, 4, 1, 0, 2)).tolist()
    shard1 = next(batches.local_index_iterator(10, 4, 1, 1, 2)).tolist()
    assert shard0 + shard1 == first[0]
    with pytest.raises(ValueError, match="does not divide over 3 processes"):
        batches.local_index_iterator(10, 4, 1, 0, 3)


def test_encode_traces_revealable():
    tok = tokenizers.SentencePieceTokenizer()
    e = synthetic.make_example([1, 2, 3], 5)
    ids, lens, rev = batches.encode_traces(tok, [e], 64, exclude_last_step=True)
    assert tok.decode(ids[0, :lens[0]]) == e.trace
    assert tok.decode(ids[0, :rev[0]]) == "<reasoning>\n1\n3\n"
    with pytest.raises(ValueError, match="prompt_len=2"):
        batches.encode_prompts(tok, [e], 2)


def test_the_old_heldout_draw_held_679_distinct_problems():
    """The README's re-reading of the running-sum sweep rests on this count: its 1,000
    held-out rows (drawn before held-out sets were made distinct) were 679 problems."""
    from benchmarks.distinct_reanalysis import old_heldout_rows
    rows = old_heldout_rows()
    assert len(rows) == 1000 and len(set(rows)) == 679
    two = [r for r in rows if len(r) == 2]
    assert len(two) == 117 and len(set(two)) == 4
    # the generator now draws distinct held-out problems from the same stream
    new = synthetic.generate(1000, "test", modulus=5, min_terms=2, max_terms=8)
    assert len({e.question for e in new}) == 1000
