"""Tokenizers (tokenizers.py): the SentencePiece backend and the Hugging Face chat
template."""

import pytest

from igpo_jax import tokenizers
from igpo_jax.data import synthetic


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
