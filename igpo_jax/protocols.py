"""Published evaluation protocols: each reference's prompt, generation settings,
answer reading and metric, as its evaluation code has them.

A :class:`Protocol` says how one benchmark is evaluated by one reference: the text
of the user turn built from a problem (instruction, few-shot examples, question),
what is written after the assistant header before generation starts (d1: the
``<reasoning>`` tag), the generation and block lengths and steps, the temperature and
samples per problem, the problems evaluated (all, or a seeded subset) and the grader,
which reads the completion as the reference reads it (special tokens kept where the
reference keeps them) and returns a score in [0, 1] (1 or 0, except d1's Sudoku, which
scores the fraction of blanks filled right). ``eval.protocol=NAME`` evaluates with it;
``configs/eval_protocols.py:NAME_LENGTH`` is the recipe for a real model
(``--config.model.hf_dir``). The published numbers beside each protocol are what the
reference reports for LLaDA-8B-Instruct (and Dream-7B-Instruct where it reports one).

References read (their code, re-written here):

- d1 (``dllm-reasoning/d1``, ``eval/``): GSM8K, MATH500, Countdown, 4x4 Sudoku; zero-shot,
  the instruction and the question in one user turn joined by a blank line, then the
  chat template and ``<reasoning>``; block 32, steps = length / 2, greedy,
  low-confidence remasking; lengths 128 / 256 / 512; the completion is graded with its
  special tokens written out.
- LLaDA's own evaluation of LLaDA-8B-Instruct (``ML-GSAI/LLaDA``, ``EVAL.md``: OpenCompass):
  GSM8K with four fixed worked examples as chat rounds, length 256, block 8, one token
  per step; the whole window decoded with special tokens dropped; the last number
  before any ``Question:``. MATH (``math_0shot_gen_11c4b5``): zero-shot, the 5,000 MATH
  test problems, length 512, block 64, one token per step; the last box or the first
  "answer is" sentence, ``MATHEvaluator`` v2.
- Dream's evaluation of Dream-v0-Instruct-7B (``DreamLM/Dream`` ``eval_instruct/``: a
  vendored lm-evaluation-harness 0.4.8): ``gsm8k_cot`` and ``minerva_math`` at 0 shots in
  Dream's chat template, temperature 0.1, top_p 0.9, entropy-ordered unmasking of the whole
  window on Dream's schedule; flexible / strict GSM8K extraction, math-verify / Minerva
  exact match.
- IGPO (``facebookresearch/igpo``) releases no evaluation code: ``igpo_*`` are this
  package's choice in its lineage (its training prompt, d1's block and steps; AMC avg@16
  at temperature 0.1).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from igpo_jax import graders
from igpo_jax.data import Example
from igpo_jax.tokenizers import chat_text

# ---- protocols -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Published:
    """A number a reference prints for a model under a protocol."""

    model: str  # llada | dream
    gen_length: int
    value: float  # percent
    source: str


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    source: str  # the data source (igpo_jax/data/sources.py) of the benchmark
    reference: str  # whose evaluation code this is
    instruction: str  # written before the question in the user turn ("" = none)
    grade: Callable[[str, Example], float]  # (completion as the reference reads it, example)
    question: Callable[[Example], str] = lambda e: e.question
    join: str = "\n\n"  # between the instruction and the question
    prefill: str = ""  # written after the assistant header, before the completion
    gen_lengths: tuple[int, ...] = (256,)
    block_length: int = 32  # 0: the whole generation is one block
    steps_per_token: float = 0.5  # steps = gen_length * this
    temperature: float = 0.0
    top_p: float = 1.0  # nucleus sampling (1 = off)
    remasking: str = "low_confidence"  # the sampler's choice of positions to unmask
    schedule: str = "even"  # the sampler's tokens per step (sampler.schedule)
    model: str = "llada"  # the family the reference evaluates (the recipe's default)
    k: int = 1  # samples per problem (avg@k when > 1)
    num_examples: int = 0  # 0: every problem of the split, in order
    subsample_seed: int | None = None  # numpy.random.seed(s); choice(N, num_examples)
    shots: tuple[tuple[str, str], ...] = ()  # (user, assistant) rounds before the question
    # what the grader reads: "special" (every generated token, special ones written out:
    # d1's batch_decode(skip_special_tokens=False)), "drop_special" (every generated
    # token, special ones dropped: OpenCompass), "special_to_eos" (special ones written
    # out, cut at the first EOS: lm-eval's diffllm wrapper), "first_stop" (up to the
    # first EOS / end-of-turn, this package's own reading)
    decode: str = "special"
    stop: tuple[str, ...] = ()  # then cut at each of these, in order (lm-eval's until)
    metric: str = "accuracy"
    published: tuple[Published, ...] = ()
    notes: str = ""
    # raises (a clear ImportError) when the grader cannot run here: called before any
    # generation, so a missing dependency stops the run at its start
    requires: Callable[[], object] | None = None

    def user_content(self, example: Example) -> str:
        q = self.question(example)
        return f"{self.instruction}{self.join}{q}" if self.instruction else q

    def messages(self, example: Example) -> list[tuple[str, str]]:
        shots = [turn for user, bot in self.shots for turn in (("user", user), ("assistant", bot))]
        return shots + [("user", self.user_content(example))]

    def prompt_text(self, example: Example, family: str = "llada") -> str:
        """The whole prompt string, as the reference builds it for ``family``'s model."""
        return chat_text(family, self.messages(example), self.prefill)

    def prompt_ids(self, tok, example: Example) -> list[int]:
        return tok.chat_ids(self.messages(example), self.prefill)

    def completion_text(self, tok, ids) -> str:
        """The generated ids as the reference's grader reads them."""
        if self.decode == "special":
            text = tok.decode_raw(ids)
        elif self.decode == "special_to_eos":
            text = tok.decode_raw(ids).split(tok.decode_raw([tok.eos_id]))[0]
        elif self.decode == "drop_special":
            text = tok.decode(ids)
        else:
            text = tok.decode_completion(ids)
        for s in self.stop:
            text = text.split(s)[0]
        return text

    def steps(self, gen_length: int) -> int:
        return int(gen_length * self.steps_per_token)

    def block(self, gen_length: int) -> int:
        return self.block_length or gen_length

    def select(self, examples: Sequence[Example]) -> list[Example]:
        """The problems the reference evaluates, in its order."""
        if not self.num_examples:
            return list(examples)
        if self.num_examples > len(examples):
            raise ValueError(f"protocol {self.name} evaluates {self.num_examples} problems; "
                             f"the data has {len(examples)}")
        if self.subsample_seed is None:
            return list(examples[:self.num_examples])
        order = np.random.RandomState(self.subsample_seed).choice(
            len(examples), self.num_examples, replace=False)
        return [examples[i] for i in order]


D1_GSM8K_INSTRUCTION = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}. \nRespond in the following format:\n<reasoning>\n"
    "Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>")
# d1's MATH500 instruction differs from its GSM8K one: no space before the first line
# break, and a stray '" ' and a line break after </answer> (kept: it is the protocol)
D1_MATH_INSTRUCTION = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}.\nRespond in the following format:\n<reasoning>\n"
    "Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>\" \n")
D1_COUNTDOWN_INSTRUCTION = (
    "Using only the provided numbers, create an arithmetic expression that evaluates to "
    "exactly the provided target number. You may use the operations +, -, *, and / as "
    "needed, but each number must be used exactly once. Think step-by-step. After "
    "reasoning, provide only your final expression inside \\boxed{} tags without including "
    "an equals sign or the target number. For example: \\boxed{a + b * c}Respond in the "
    "following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n"
    "\\boxed{...}\n</answer>")
D1_SUDOKU_INSTRUCTION = (
    "\nPlease solve the following 4x4 Sudoku puzzle. The puzzle is provided as a "
    "16-character string reading left-to-right, top-to-bottom, where '0' represents empty "
    "cells.\n\nRules:\n- Fill empty cells with digits 1-4\n- Each row must contain digits "
    "1-4 exactly once\n- Each column must contain digits 1-4 exactly once\n- Each 2x2 box "
    "must contain digits 1-4 exactly once\n\nImportant: Your solution must be a COMPLETE "
    "16-character string with only the digits 1-4, representing your final solved grid.\n\n"
    "Respond in this exact format:\n<reasoning>\nYour step-by-step solving process\n"
    "</reasoning>\n<answer>\n[16-character solution string with no spaces or separators]\n"
    "</answer>\n")

# OpenCompass's GSM8K exemplars (configs/datasets/gsm8k/gsm8k_gen_1d7fe4.py): four fixed
# (user, assistant) rounds before the question; the chat template trims each turn
OPENCOMPASS_GSM8K_SHOTS = (
    (
        'Question: Angelo and Melanie want to plan how many hours over the next week they'
        ' should study together for their test next week. They have 2 chapters of their'
        ' textbook to study and 4 worksheets to memorize. They figure out that they should'
        ' dedicate 3 hours to each chapter of their textbook and 1.5 hours for each'
        ' worksheet. If they plan to study no more than 4 hours each day, how many days'
        ' should they plan to study total over the next week if they take a 10-minute break'
        ' every hour, include 3 10-minute snack breaks each day, and 30 minutes for lunch'
        " each day?\nLet's think step by step\nAnswer:",
        'Angelo and Melanie think they should dedicate 3 hours to each of the 2 chapters, 3'
        ' hours x 2 chapters = 6 hours total.\nFor the worksheets they plan to dedicate 1.5'
        ' hours for each worksheet, 1.5 hours x 4 worksheets = 6 hours total.\nAngelo and'
        ' Melanie need to start with planning 12 hours to study, at 4 hours a day, 12 / 4 ='
        ' 3 days.\nHowever, they need to include time for breaks and lunch. Every hour they'
        ' want to include a 10-minute break, so 12 total hours x 10 minutes = 120 extra'
        ' minutes for breaks.\nThey also want to include 3 10-minute snack breaks, 3 x 10'
        ' minutes = 30 minutes.\nAnd they want to include 30 minutes for lunch each day, so'
        ' 120 minutes for breaks + 30 minutes for snack breaks + 30 minutes for lunch = 180'
        ' minutes, or 180 / 60 minutes per hour = 3 extra hours.\nSo Angelo and Melanie'
        ' want to plan 12 hours to study + 3 hours of breaks = 15 hours total.\nThey want'
        ' to study no more than 4 hours each day, 15 hours / 4 hours each day = 3.75\nThey'
        ' will need to plan to study 4 days to allow for all the time they need.\nThe'
        ' answer is 4\n'),
    (
        "Question: Mark's basketball team scores 25 2 pointers, 8 3 pointers and 10 free"
        ' throws.  Their opponents score double the 2 pointers but half the 3 pointers and'
        " free throws.  What's the total number of points scored by both teams added"
        " together?\nLet's think step by step\nAnswer:",
        "Mark's team scores 25 2 pointers, meaning they scored 25*2= 50 points in 2"
        ' pointers.\nHis team also scores 6 3 pointers, meaning they scored 8*3= 24 points'
        ' in 3 pointers\nThey scored 10 free throws, and free throws count as one point so'
        ' they scored 10*1=10 points in free throws.\nAll together his team scored'
        " 50+24+10= 84 points\nMark's opponents scored double his team's number of 2"
        ' pointers, meaning they scored 50*2=100 points in 2 pointers.\nHis opponents'
        " scored half his team's number of 3 pointers, meaning they scored 24/2= 12 points"
        " in 3 pointers.\nThey also scored half Mark's team's points in free throws,"
        " meaning they scored 10/2=5 points in free throws.\nAll together Mark's opponents"
        " scored 100+12+5=117 points\nThe total score for the game is both team's scores"
        ' added together, so it is 84+117=201 points\nThe answer is 201\n'),
    (
        'Question: Bella has two times as many marbles as frisbees. She also has 20 more'
        ' frisbees than deck cards. If she buys 2/5 times more of each item, what would be'
        ' the total number of the items she will have if she currently has 60'
        " marbles?\nLet's think step by step\nAnswer:",
        "When Bella buys 2/5 times more marbles, she'll have increased the number of"
        " marbles by 2/5*60 = 24\nThe total number of marbles she'll have is 60+24 = 84\nIf"
        ' Bella currently has 60 marbles, and she has two times as many marbles as'
        ' frisbees, she has 60/2 = 30 frisbees.\nIf Bella buys 2/5 times more frisbees,'
        " she'll have 2/5*30 = 12 more frisbees.\nThe total number of frisbees she'll have"
        ' will increase to 30+12 = 42\nBella also has 20 more frisbees than deck cards,'
        ' meaning she has 30-20 = 10 deck cards\nIf she buys 2/5 times more deck cards,'
        " she'll have 2/5*10 = 4 more deck cards.\nThe total number of deck cards she'll"
        ' have is 10+4 = 14\nTogether, Bella will have a total of 14+42+84 = 140 items\nThe'
        ' answer is 140\n'),
    (
        'Question: A group of 4 fruit baskets contains 9 apples, 15 oranges, and 14 bananas'
        ' in the first three baskets and 2 less of each fruit in the fourth basket. How'
        " many fruits are there?\nLet's think step by step\nAnswer:",
        'For the first three baskets, the number of apples and oranges in one basket is'
        ' 9+15=24\nIn total, together with bananas, the number of fruits in one basket is'
        ' 24+14=38 for the first three baskets.\nSince there are three baskets each having'
        ' 38 fruits, there are 3*38=114 fruits in the first three baskets.\nThe number of'
        ' apples in the fourth basket is 9-2=7\nThere are also 15-2=13 oranges in the'
        ' fourth basket\nThe combined number of oranges and apples in the fourth basket is'
        ' 13+7=20\nThe fourth basket also contains 14-2=12 bananas.\nIn total, the fourth'
        ' basket has 20+12=32 fruits.\nThe four baskets together have 32+114=146'
        ' fruits.\nThe answer is 146\n'),
)


_D1 = dict(reference="d1 (dllm-reasoning/d1, eval/)", prefill="<reasoning>",
           gen_lengths=(128, 256, 512), block_length=32, steps_per_token=0.5)
# d1's paper (Table 1, LLaDA-8B-Instruct): GSM8K 68.7 / 76.7 / 78.2 at 128 / 256 / 512;
# the MATH500, Countdown and Sudoku numbers are d1's own baseline generations
# (eval/eval_baselines) scored by d1's parser, which agree with the paper's table
_D1_PAPER = "d1 paper, Table 1"
_D1_BASELINES = "d1's baseline generations scored by d1's parser"


def _published(values: Sequence[float], source: str, model: str = "llada",
               lengths: Sequence[int] = (128, 256, 512)) -> tuple[Published, ...]:
    return tuple(Published(model, n, v, source) for n, v in zip(lengths, values))


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("d1_gsm8k", "gsm8k", instruction=D1_GSM8K_INSTRUCTION, grade=graders.d1_gsm8k_score,
             published=_published((68.7, 76.7, 78.2), _D1_PAPER),
             notes="all 1,319 test problems; the first box holding a number, else the last "
                   "number of <answer>; exact float match (negative answers never match)",
             **_D1),
    Protocol("d1_math500", "math", instruction=D1_MATH_INSTRUCTION, grade=graders.d1_math_score,
             published=_published((26.0, 32.4, 36.2), _D1_BASELINES),
             notes="all 500 MATH-500 problems; the last balanced box, MATH's normalisation",
             **_D1),
    Protocol("d1_countdown", "countdown", instruction=D1_COUNTDOWN_INSTRUCTION,
             grade=graders.d1_countdown_score, num_examples=256, subsample_seed=42,
             published=_published((20.7, 19.5, 16.0), _D1_BASELINES),
             notes="countdown_cd3_test.jsonl, all 256 in d1's seed-42 order; the last box "
                   "uses each number once and equals the target",
             **_D1),
    Protocol("d1_sudoku", "sudoku", instruction=D1_SUDOKU_INSTRUCTION,
             grade=graders.d1_sudoku_score, num_examples=256, subsample_seed=42, metric="blank cells right",
             published=_published((11.7, 6.7, 5.5), _D1_BASELINES),
             notes="256 of the 500 puzzles of 4x4_test_sudoku.csv (seed 42); the score is "
                   "the share of blanks filled right",
             **_D1),
    Protocol("llada_gsm8k", "gsm8k", reference="LLaDA (ML-GSAI/LLaDA, EVAL.md: OpenCompass)",
             instruction="", shots=OPENCOMPASS_GSM8K_SHOTS,
             question=lambda e: f"Question: {e.question}\nLet's think step by step\nAnswer:",
             grade=graders.opencompass_gsm8k_score, gen_lengths=(256,), block_length=8,
             steps_per_token=1.0, decode="drop_special",
             published=(Published("llada", 256, 78.6, "LLaDA EVAL.md (their own run)"),
                        Published("llada", 256, 78.9, "LLaDA EVAL.md (OpenCompass)")),
             notes="all 1,319 test problems, 4 fixed worked examples as chat rounds; the last "
                   "number before any 'Question:'"),
)}


PROTOCOLS["llada_math"] = Protocol(
    "llada_math", "math", reference="LLaDA (ML-GSAI/LLaDA, EVAL.md: OpenCompass)", instruction="",
    question=lambda e: f"{e.question}\nPlease reason step by step, and put your final answer "
                       "within \\boxed{}.",
    grade=graders.opencompass_math_score, gen_lengths=(512,), block_length=64,
    steps_per_token=1.0, decode="drop_special",
    published=(Published("llada", 512, 42.2, "LLaDA EVAL.md (their own run)"),
               Published("llada", 512, 42.7, "LLaDA EVAL.md (OpenCompass)")),
    notes="OpenCompass's math_0shot_gen_11c4b5 over the 5,000 MATH test problems, zero-shot; "
          "the last box, else the first sentence saying 'answer is'; MATHEvaluator v2. "
          "EVAL.md's other MATH row (one 512-token block, 31.9 / 29.6) also sets "
          "confidence_eos_eot_inf, which this sampler does not offer")


# Dream-v0-Instruct-7B's own evaluation (DreamLM/Dream eval_instruct/: a vendored
# lm-evaluation-harness 0.4.8 with a diffusion wrapper): zero-shot, lm-eval's chat
# template (Qwen's default system turn), temperature 0.1, top_p 0.9, entropy-ordered
# unmasking of the whole window, one token per step; the response decoded with special
# tokens written out, cut at the first <|endoftext|>, then at each stop string
_DREAM = dict(reference="Dream (DreamLM/Dream eval_instruct/, lm-eval 0.4.8)",
              block_length=0, steps_per_token=1.0, temperature=0.1, top_p=0.9,
              remasking="entropy", schedule="dream", decode="special_to_eos", model="dream")
_DREAM_PAPER = "Dream paper (arXiv 2508.15487), as the ZHZisZZ/dllm README quotes it"
_GSM8K_COT = dict(question=lambda e: f"Q: {e.question}\nA:", stop=("Q:", "</s>", "<|im_end|>"),
                  gen_lengths=(256,), **_DREAM)
_MINERVA = dict(question=lambda e: f"Problem:\n{e.question}\n\nSolution:", stop=("Problem:",),
                gen_lengths=(512,), **_DREAM)

# IGPO's training prompt (facebookresearch/igpo utils/data_utils.py): the user turn is
# this, a blank line, then the question; no prefill. The source writes "\boxed" in a
# plain string, so the prompt holds a backspace character and "oxed" (kept: it is what
# IGPO's models were trained on)
IGPO_INSTRUCTION = ("\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n"
                    "<answer>\n\boxed{<Your answer>}\n</answer>\n")
# IGPO releases no evaluation code: these recipes are this package's choice in IGPO's
# lineage (its training prompt; d1's block 32 and steps = length / 2; its training length
# 256), labelled as such; the numbers are the IGPO paper's for LLaDA-8B-Instruct
_IGPO = dict(reference="this package's choice (IGPO releases no evaluation code)",
             instruction=IGPO_INSTRUCTION, gen_lengths=(256, 512), block_length=32,
             steps_per_token=0.5)
_IGPO_PAPER = "IGPO paper, main table (protocol not released)"


PROTOCOLS.update({p.name: p for p in (
    Protocol("dream_gsm8k", "gsm8k", instruction="", grade=graders.lm_eval_gsm8k_flexible_score,
             metric="exact_match (flexible-extract)",
             published=(Published("dream", 256, 81.0, _DREAM_PAPER),),
             notes="gsm8k_cot at 0 shots: 'Q: {question}\\nA:'; the last number-like run "
                   "(flexible-extract), commas, '$' and a final '.' dropped; which filter the "
                   "published number used is not stated (flexible-extract is the one a chat "
                   "model's answers reach)", **_GSM8K_COT),
    Protocol("dream_gsm8k_strict", "gsm8k", instruction="",
             grade=graders.lm_eval_gsm8k_strict_score, metric="exact_match (strict-match)",
             notes="gsm8k_cot's other filter: the first 'The answer is N.'", **_GSM8K_COT),
    Protocol("dream_minerva_math", "math", instruction="",
             grade=graders.minerva_math_verify_score, metric="math_verify",
             published=(Published("dream", 512, 39.2, _DREAM_PAPER),),
             notes="minerva_math at 0 shots over the 5,000 MATH test problems (the seven "
                   "subjects, size-weighted); math-verify's parse of the normalised target "
                   "and of the whole response; which of the two metrics the published "
                   "number is, is not stated", **_MINERVA),
    Protocol("dream_minerva_math_em", "math", instruction="",
             grade=graders.minerva_exact_match_score, metric="exact_match (Minerva phrase)",
             requires=graders.sympy_latex_parser,
             notes="minerva_math's exact_match: the answer of 'Final Answer: The final answer "
                   "is X. I hope it is correct.', Minerva's normalisation, sympy's LaTeX "
                   "equivalence (needs antlr4-python3-runtime 4.11)", **_MINERVA),
    Protocol("igpo_gsm8k", "gsm8k", grade=graders.d1_gsm8k_score,
             published=(Published("llada", 256, 81.5, _IGPO_PAPER),),
             notes="greedy pass@1 over the 1,319 test problems, d1's GSM8K grader", **_IGPO),
    Protocol("igpo_math500", "math", grade=graders.d1_math_score,
             published=(Published("llada", 256, 39.0, _IGPO_PAPER),),
             notes="greedy pass@1 over MATH-500, d1's MATH grader", **_IGPO),
    Protocol("igpo_amc", "amc", grade=graders.amc_score, temperature=0.1, k=16,
             metric="avg@16", published=(Published("llada", 256, 14.5, _IGPO_PAPER),),
             notes="16 samples per problem at temperature 0.1, the mean over problems of the "
                   "share right; the last box, MATH's normalisation or equal numbers; which "
                   "AMC set the paper used is not stated (AI-MO's aimo-validation-amc has 83 "
                   "problems, AMC23 40)", **_IGPO),
)})


def get(name: str) -> Protocol:
    """The protocol ``name``, its grader's dependencies checked."""
    if name not in PROTOCOLS:
        raise ValueError(f"eval.protocol={name!r}; known: {sorted(PROTOCOLS)}")
    p = PROTOCOLS[name]
    if p.requires is not None:
        p.requires()
    return p
