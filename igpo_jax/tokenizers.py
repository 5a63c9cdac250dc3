"""One tokenizer interface with SentencePiece and Hugging Face ``tokenizers`` backends.

Both expose the ids the recipe needs (mask, EOS/pad, BOS, end-of-turn) and
``prompt_ids(question)``: the LLaDA chat template of docs/ALGORITHM.md section 1 for the
HF backend (LLaDA-8B-Instruct), or ``BOS + system + question + newline`` for
small SentencePiece models.

The package ships ``assets/synthetic_sp.model``, a character-level SentencePiece
model of the synthetic task, rebuilt by ``python -m igpo_jax.tokenizers``.
"""

from __future__ import annotations

import abc
import dataclasses
import io
import os
import string
from typing import Iterable, Sequence

import numpy as np

from igpo_jax import storage
from igpo_jax.models import llada
from igpo_jax.models.family import FAMILIES
from igpo_jax.sections import Section, check, field

# LLaDA's special tokens: the shipped SentencePiece model has them as pieces
MASK_TOKEN, EOT_TOKEN = llada.MASK_TOKEN, llada.EOT_TOKEN
HEADER_START, HEADER_END = llada.HEADER_START, llada.HEADER_END
LLADA_BOS, LLADA_EOS = llada.BOS_TOKEN, llada.EOS_TOKEN
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
SYNTHETIC_SP_MODEL = os.path.join(ASSETS, "synthetic_sp.model")


def chat_text(family_name: str, messages: Sequence[tuple[str, str]], prefill: str = "") -> str:
    """The prompt string a model family's ``tokenizer_config.json`` chat template renders
    for ``messages`` ((role, content) pairs) with the generation prompt, then
    ``prefill`` (the family's ``ChatFormat.render``: models/llada.py, models/dream.py)."""
    if family_name not in FAMILIES:
        raise ValueError(f"no chat template for model family {family_name!r}; known: "
                         f"{sorted(FAMILIES)}")
    return FAMILIES[family_name].chat.render(messages, prefill)


def chat_messages(question: str, system_prompt: str | None) -> list[tuple[str, str]]:
    return ([("system", system_prompt)] if system_prompt else []) + [("user", question)]


class Tokenizer(abc.ABC):
    """What the recipe needs from a tokenizer."""

    vocab_size: int
    bos_id: int
    eos_id: int  # also the pad id (LLaDA pads completions with EOS)
    mask_id: int
    eot_id: int

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Text -> ids, no special tokens added."""

    @abc.abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; special tokens are dropped."""

    @abc.abstractmethod
    def chat_ids(self, messages: Sequence[tuple[str, str]], prefill: str = "") -> list[int]:
        """The ids of a chat prompt: ``messages`` ((role, content) pairs) in the model's
        chat template, the assistant header, then ``prefill``."""

    def prompt_ids(self, question: str, system_prompt: str | None = None) -> list[int]:
        """The token ids the model is conditioned on for a question."""
        return self.chat_ids(chat_messages(question, system_prompt))

    def decode_raw(self, ids: Iterable[int]) -> str:
        """Ids -> text with special tokens written out (what a reference that decodes
        with ``skip_special_tokens=False`` grades)."""
        return self.decode(ids)

    @property
    def pad_id(self) -> int:
        return self.eos_id

    def decode_completion(self, ids: Sequence[int]) -> str:
        """Text of a completion up to its first EOS / end-of-turn token."""
        ids = [int(i) for i in ids]
        for stop in (self.eos_id, self.eot_id):
            if stop in ids:
                ids = ids[: ids.index(stop)]
        return self.decode(ids)

    def completion_ids(self, text: str, length: int) -> np.ndarray:
        """A target completion: ``text`` then EOS padding to ``length`` (truncated if longer)."""
        ids = self.encode(text)[:length]
        return np.asarray(ids + [self.eos_id] * (length - len(ids)), np.int32)


class SentencePieceTokenizer(Tokenizer):
    def __init__(self, model_path: str = SYNTHETIC_SP_MODEL):
        import sentencepiece as spm
        if not storage.exists(model_path):
            raise FileNotFoundError(f"SentencePiece model {model_path} does not exist")
        self.sp = spm.SentencePieceProcessor(model_proto=storage.read_bytes(model_path))
        self.path = model_path
        self.vocab_size = self.sp.vocab_size()
        self.bos_id, self.eos_id = self.sp.bos_id(), self.sp.eos_id()
        self.mask_id = self._special(MASK_TOKEN)
        self.eot_id = self._special(EOT_TOKEN)
        self._special_ids = {self.bos_id, self.eos_id, self.mask_id, self.eot_id}

    def _special(self, piece: str) -> int:
        i = self.sp.piece_to_id(piece)
        if i == self.sp.unk_id():
            raise ValueError(f"SentencePiece model {self.path} has no {piece!r} piece; the "
                             f"recipe needs it as a user-defined symbol")
        return i

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) not in self._special_ids])

    def prompt_ids(self, question: str, system_prompt: str | None = None) -> list[int]:
        text = (system_prompt + "\n" if system_prompt else "") + question + "\n"
        return [self.bos_id] + self.encode(text)

    def chat_ids(self, messages: Sequence[tuple[str, str]], prefill: str = "") -> list[int]:
        """LLaDA's chat template with this model's BOS id (its pieces include the headers
        and end-of-turn)."""
        return [self.bos_id] + self.encode(chat_text("llada", messages, prefill)[len(LLADA_BOS):])

    def decode_raw(self, ids: Iterable[int]) -> str:
        named = {self.bos_id: LLADA_BOS, self.eos_id: LLADA_EOS}
        return "".join(named.get(int(i)) or self.sp.id_to_piece(int(i)) for i in ids)


class HFTokenizer(Tokenizer):
    """A model family's ``tokenizer.json`` through the ``tokenizers`` library, with the
    family's chat template (LLaDA: LLaMA-3 headers; Dream: ChatML with Qwen2.5's
    default system turn)."""

    def __init__(self, path: str, chat_template: bool = True, family: str = "llada"):
        if family not in FAMILIES:
            raise ValueError(f"no chat format for model family {family!r}; known: "
                             f"{sorted(FAMILIES)}")
        fmt = FAMILIES[family].chat
        self.family = family
        try:
            from tokenizers import Tokenizer as _HF
        except ImportError as e:  # pragma: no cover - exercised only without the extra
            raise ImportError("the Hugging Face tokenizer needs `pip install igpo_jax[hf]`") from e
        file = os.path.join(path, "tokenizer.json") if storage.isdir(path) else path
        if not storage.exists(file):
            raise FileNotFoundError(f"no tokenizer.json at {file}")
        self.tok = _HF.from_str(storage.read_text(file))
        self.vocab_size = self.tok.get_vocab_size()
        self.chat_template = chat_template

        def tid(token):
            i = self.tok.token_to_id(token)
            if i is None:
                raise ValueError(f"{file} has no {token!r} token")
            return i
        self.bos_id, self.eos_id = tid(fmt.bos), tid(fmt.eos)
        self.mask_id, self.eot_id = tid(fmt.mask), tid(fmt.eot)
        for token in fmt.markers:
            tid(token)  # the chat template's markers are single tokens

    def encode(self, text: str) -> list[int]:
        """Text -> ids; special tokens written in the text (``<|eot_id|>``) become their ids,
        as the Hugging Face tokenizer reads a rendered chat template."""
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def decode_raw(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def chat_text(self, messages: Sequence[tuple[str, str]], prefill: str = "") -> str:
        return chat_text(self.family, messages, prefill)

    def chat_ids(self, messages: Sequence[tuple[str, str]], prefill: str = "") -> list[int]:
        """The rendered chat template, tokenized whole (as ``tokenizer(apply_chat_template(
        ..., tokenize=False))`` does)."""
        return self.encode(self.chat_text(messages, prefill))

    def prompt_ids(self, question: str, system_prompt: str | None = None) -> list[int]:
        if not self.chat_template:
            return [self.bos_id] + self.encode((system_prompt + "\n" if system_prompt else "")
                                               + question)
        return self.chat_ids(chat_messages(question, system_prompt))


KINDS = ("sentencepiece", "hf")


@dataclasses.dataclass(frozen=True)
class TokenizerConfig(Section):
    """The config's ``tokenizer`` section."""

    kind: str = field("sentencepiece", "sentencepiece | hf (LLaDA's tokenizer.json)")
    path: str = field(
        "", "model / tokenizer.json folder (empty: the shipped synthetic-task model)")

    def __post_init__(self):
        check(self.kind in KINDS, "tokenizer.kind", self.kind, f"expected one of {KINDS}")


def load_tokenizer(kind: str, path: str | None = None, family: str = "llada") -> Tokenizer:
    """``kind``: ``sentencepiece`` (default path: the shipped synthetic model) or ``hf``
    (the chat template and special tokens of the model ``family``)."""
    if kind == "sentencepiece":
        return SentencePieceTokenizer(path or SYNTHETIC_SP_MODEL)
    if kind == "hf":
        if not path:
            raise ValueError("tokenizer.kind='hf' needs tokenizer.path (a folder with "
                             "tokenizer.json, e.g. LLaDA-8B-Instruct)")
        return HFTokenizer(path, family=family)
    raise ValueError(f"tokenizer.kind={kind!r}; expected 'sentencepiece' or 'hf'")


SYNTHETIC_SYMBOLS = ["\n", "<reasoning>", "</reasoning>", "<answer>", "</answer>", "\\boxed{",
                     MASK_TOKEN, EOT_TOKEN, HEADER_START, HEADER_END]


def train_char_sentencepiece(texts: Iterable[str], out_path: str) -> None:
    """Trains a character-level SentencePiece model with the recipe's special pieces."""
    import sentencepiece as spm
    alphabet = string.digits + string.ascii_letters + " +-*/=()[]{}.,:;?!%$^_\\'\"<>|"
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts) + [alphabet] * 20), model_writer=model,
        model_type="char", vocab_size=len(alphabet) + len(SYNTHETIC_SYMBOLS) + 3,
        hard_vocab_limit=False, user_defined_symbols=SYNTHETIC_SYMBOLS, unk_id=0, bos_id=1,
        eos_id=2, pad_id=-1, add_dummy_prefix=False, normalization_rule_name="identity",
        remove_extra_whitespaces=False, character_coverage=1.0, minloglevel=2)
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "wb") as f:
        f.write(model.getvalue())


if __name__ == "__main__":
    from igpo_jax.data import synthetic
    train_char_sentencepiece(synthetic.tokenizer_corpus(), SYNTHETIC_SP_MODEL)
    tok = SentencePieceTokenizer()
    print(f"wrote {SYNTHETIC_SP_MODEL}: vocab {tok.vocab_size}, bos {tok.bos_id}, eos "
          f"{tok.eos_id}, mask {tok.mask_id}, eot {tok.eot_id}")
