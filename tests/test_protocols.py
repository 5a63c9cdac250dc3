"""Evaluation protocols: each prompt compared character for character with the string the
reference's code builds for the same problem (written down here from reading that
code: d1's eval/ with LLaDA-8B-Instruct's chat template; LLaDA's OpenCompass GSM8K
config) and each recipe run on the tiny model (the graders: tests/graders/)."""

import json
import os

import pytest

from igpo_jax import graders as G
from igpo_jax import protocols as P
from igpo_jax.data import Example
from igpo_jax.data import planning

HERE = os.path.dirname(os.path.abspath(__file__))
JANET = ("Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning "
         "and bakes muffins for her friends every day with four. She sells the remainder at "
         "the farmers' market daily for $2 per fresh duck egg. How much in dollars does she "
         "make every day at the farmers' market?")

# d1 (eval/gsm8k.py create_prompt: SYSTEM_PROMPT + "\n\n" + question in one user turn,
# apply_chat_template(add_generation_prompt=True, tokenize=False) + "<reasoning>")
D1_GSM8K_JANET = (
    '<|startoftext|><|start_header_id|>user<|end_header_id|>\n'
    '\nYou are a math expert. You will be given a question to solve. Solve it'
    ' step by step. Wrap the final answer in a \\boxed{}. \n'
    'Respond in the following format:\n<reasoning>\n'
    'Your reasoning here\n</reasoning>\n<answer>\n'
    '\\boxed{...}\n</answer>\n\nJanet’s ducks lay 16 eggs per day. She eats thre'
    'e for breakfast every morning and bakes muffins for her friends every d'
    "ay with four. She sells the remainder at the farmers' market daily for "
    '$2 per fresh duck egg. How much in dollars does she make every day at t'
    "he farmers' market?<|eot_id|><|start_header_id|>assistant<|end_header_i"
    'd|>\n\n<reasoning>')
# eval/math500.py: a stray '" ' and a line break after </answer> in its instruction
D1_MATH_ONE_PLUS_ONE = (
    '<|startoftext|><|start_header_id|>user<|end_header_id|>\n'
    '\nYou are a math expert. You will be given a question to solve. Solve it'
    ' step by step. Wrap the final answer in a \\boxed{}.\n'
    'Respond in the following format:\n<reasoning>\n'
    'Your reasoning here\n</reasoning>\n<answer>\n'
    '\\boxed{...}\n</answer>" \n\n\nWhat is $1+1$?<|eot_id|><|start_header_id|>as'
    'sistant<|end_header_id|>\n\n<reasoning>')
# eval/countdown.py: question f"Numbers: {numbers}\nTarget: {target}"; no separator before Respond
D1_COUNTDOWN_3_5_7 = (
    '<|startoftext|><|start_header_id|>user<|end_header_id|>\n'
    '\nUsing only the provided numbers, create an arithmetic expression that '
    'evaluates to exactly the provided target number. You may use the operat'
    'ions +, -, *, and / as needed, but each number must be used exactly onc'
    'e. Think step-by-step. After reasoning, provide only your final express'
    'ion inside \\boxed{} tags without including an equals sign or the target'
    ' number. For example: \\boxed{a + b * c}Respond in the following format:'
    '\n<reasoning>\nYour reasoning here\n</reasoning>\n'
    '<answer>\n\\boxed{...}\n</answer>\n\nNumbers: [3, 5, 7]\n'
    'Target: 22<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n'
    '\n<reasoning>')
# eval/sudoku.py: the template's trim drops the instruction's first and the question's last \n
D1_SUDOKU = (
    '<|startoftext|><|start_header_id|>user<|end_header_id|>\n'
    '\nPlease solve the following 4x4 Sudoku puzzle. The puzzle is provided a'
    "s a 16-character string reading left-to-right, top-to-bottom, where '0'"
    ' represents empty cells.\n\nRules:\n- Fill empty cells with digits 1-4\n'
    '- Each row must contain digits 1-4 exactly once\n'
    '- Each column must contain digits 1-4 exactly once\n'
    '- Each 2x2 box must contain digits 1-4 exactly once\n'
    '\nImportant: Your solution must be a COMPLETE 16-character string with o'
    'nly the digits 1-4, representing your final solved grid.\n'
    '\nRespond in this exact format:\n<reasoning>\n'
    'Your step-by-step solving process\n</reasoning>\n'
    '<answer>\n[16-character solution string with no spaces or separators]\n'
    '</answer>\n\n\nSolve the following Sudoku puzzle: 1030040220030320<|eot_id'
    '|><|start_header_id|>assistant<|end_header_id|>\n'
    '\n<reasoning>')


def _gsm8k(question=JANET, answer="18"):
    return Example(question, answer, "", "")


def test_d1_prompts_match_d1s_code_character_for_character():
    assert P.PROTOCOLS["d1_gsm8k"].prompt_text(_gsm8k()) == D1_GSM8K_JANET
    assert P.PROTOCOLS["d1_math500"].prompt_text(
        Example("What is $1+1$?", "2", "", "")) == D1_MATH_ONE_PLUS_ONE
    # the planning sources write the question as d1's dataset classes do
    assert P.PROTOCOLS["d1_countdown"].prompt_text(
        planning.make_countdown_example([3, 5, 7], 22)) == D1_COUNTDOWN_3_5_7
    assert P.PROTOCOLS["d1_sudoku"].prompt_text(
        planning.make_sudoku_example("1030040220030320", "1234341221434321")) == D1_SUDOKU


def test_llada_gsm8k_prompt_matches_opencompass_character_for_character():
    # LLaDA's EVAL.md: OpenCompass gsm8k_gen_1d7fe4 (four fixed rounds) rendered by
    # LLaDA-8B-Instruct's chat template (each turn trimmed); the reference string
    with open(os.path.join(HERE, "data", "protocol_prompts", "llada_gsm8k_janet.txt"),
              encoding="utf-8", newline="") as f:
        want = f.read()
    assert P.PROTOCOLS["llada_gsm8k"].prompt_text(_gsm8k()) == want
    assert want.count("<|eot_id|>") == 9 and want.endswith(
        "Question: " + JANET + "\nLet's think step by step\nAnswer:<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


# LLaDA's EVAL.md MATH row: OpenCompass math_0shot_gen_11c4b5 ('{problem}\nPlease reason
# step by step, and put your final answer within \\boxed{}.' as one HUMAN turn), through
# LLaDA-8B-Instruct's chat template (the turn trimmed)
LLADA_MATH_ONE_PLUS_ONE = (
    '<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is $1+1$?\nPlease '
    'reason step by step, and put your final answer within \\boxed{}.<|eot_id|>'
    '<|start_header_id|>assistant<|end_header_id|>\n\n')
# Dream's eval_instruct (lm-eval 0.4.8, --apply_chat_template, 0 shots, no system
# instruction): one user turn doc_to_text(doc) in Dream's (Qwen2's) template, whose
# default system turn comes first
DREAM_GSM8K_JANET = (
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ: '
    + JANET + '\nA:<|im_end|>\n<|im_start|>assistant\n')
DREAM_MINERVA_ONE_PLUS_ONE = (
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n'
    'Problem:\nWhat is $1+1$?\n\nSolution:<|im_end|>\n<|im_start|>assistant\n')
# IGPO's training prompt (utils/data_utils.py: SYSTEM_PROMPT + "\n\n" + query, where
# SYSTEM_PROMPT is a plain triple-quoted string whose "\b" is a backspace), in LLaDA's
# template: the trim drops SYSTEM_PROMPT's first line break
IGPO_GSM8K_JANET = (
    '<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nRespond in the following '
    'format:\n<reasoning>\n...\n</reasoning>\n<answer>\n\x08oxed{<Your answer>}\n'
    '</answer>\n\n\n' + JANET + '<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n')


def test_llada_math_dream_and_igpo_prompts_character_for_character():
    one = Example("What is $1+1$?", "2", "", "")
    assert P.PROTOCOLS["llada_math"].prompt_text(one) == LLADA_MATH_ONE_PLUS_ONE
    assert P.PROTOCOLS["dream_gsm8k"].prompt_text(_gsm8k(), "dream") == DREAM_GSM8K_JANET
    assert P.PROTOCOLS["dream_gsm8k_strict"].prompt_text(_gsm8k(), "dream") == DREAM_GSM8K_JANET
    for name in ("dream_minerva_math", "dream_minerva_math_em"):
        assert P.PROTOCOLS[name].prompt_text(one, "dream") == DREAM_MINERVA_ONE_PLUS_ONE
    for name in ("igpo_gsm8k", "igpo_math500", "igpo_amc"):
        assert P.PROTOCOLS[name].prompt_text(_gsm8k()) == IGPO_GSM8K_JANET


class _SpecialTokens:
    """Decodes ids to fixed strings (special tokens written out unless dropped)."""
    eos_id, eot_id = 0, 1
    words = {0: "<|endoftext|>", 1: "<|im_end|>", 2: "The answer is 18.", 3: "\nQ: next",
             4: " Problem: more"}

    def decode_raw(self, ids):
        return "".join(self.words[i] for i in ids)

    def decode(self, ids):
        return "".join(self.words[i] for i in ids if i > 1)

    def decode_completion(self, ids):
        return self.decode(ids[:ids.index(0)] if 0 in ids else ids)


def test_dream_responses_are_cut_as_lm_evals_wrapper_cuts_them():
    """Decoded with special tokens, cut at the first <|endoftext|>, then at each stop
    string: gsm8k_cot stops at Q: and <|im_end|>; minerva_math at Problem: only, so its
    <|im_end|> stays."""
    tok = _SpecialTokens()
    gsm8k, math = P.PROTOCOLS["dream_gsm8k"], P.PROTOCOLS["dream_minerva_math"]
    assert gsm8k.completion_text(tok, [2, 1, 0, 0]) == "The answer is 18."
    assert gsm8k.completion_text(tok, [2, 3, 1, 0]) == "The answer is 18.\n"
    assert math.completion_text(tok, [2, 1, 0, 3]) == "The answer is 18.<|im_end|>"
    assert math.completion_text(tok, [2, 4, 1, 0]) == "The answer is 18. "
    assert P.PROTOCOLS["llada_math"].completion_text(tok, [2, 1, 0, 3]) == \
        "The answer is 18.\nQ: next"  # OpenCompass: the whole window, special tokens dropped


def test_protocol_problems_are_the_references_subset():
    # d1: numpy.random.seed(42); choice(500, 256, replace=False) over the file's rows
    rows = [Example(str(i), str(i), "", "") for i in range(500)]
    picked = P.PROTOCOLS["d1_sudoku"].select(rows)
    assert len(picked) == 256 == len({e.question for e in picked})
    assert [e.question for e in picked[:10]] == [
        "361", "73", "374", "155", "104", "394", "377", "124", "68", "450"]
    countdown = P.PROTOCOLS["d1_countdown"].select(rows[:256])
    assert [e.question for e in countdown[:10]] == [
        "228", "6", "79", "206", "117", "185", "242", "167", "9", "30"]
    assert P.PROTOCOLS["d1_gsm8k"].select(rows) == rows  # every problem, in order
    with pytest.raises(ValueError, match="evaluates 256 problems"):
        P.PROTOCOLS["d1_countdown"].select(rows[:10])


def _recipe(arg, tmp_path):
    """configs/eval_protocols.py:ARG on the tiny model with the shipped character
    tokenizer: the protocol's prompt, problems, grader and sampler settings; shorter
    generations so that the run takes seconds."""
    from configs import eval_protocols
    c = eval_protocols.get_config(arg)
    c.model.update(preset="tiny", param_dtype="float32", dtype="float32")
    c.model.overrides.max_sequence_length = 1088
    c.tokenizer.update(kind="sentencepiece", path="")
    c.eval.update(num_examples=2, batch_size=2, k=min(c.eval.k, 2))  # avg@16: 2 samples here
    whole = c.sampler.block_length == c.sampler.gen_length  # Dream: one block
    c.sampler.update(prompt_len=1024, gen_length=32, block_length=32 if whole else 8,
                     steps=32 if c.sampler.steps >= c.sampler.gen_length else 16,
                     rollout_batch_size=2)
    rows = {"gsm8k": [{"question": JANET, "answer": "16 - 3 - 4 = 9\n#### 18"},
                      {"question": "What is 2+3?", "answer": "#### 5"}],
            "math": [{"problem": "What is $1+1$?", "solution": "$\\boxed{2}$", "answer": "2"},
                     {"problem": "Half of 1?", "solution": "$\\boxed{\\frac12}$",
                      "answer": "\\frac{1}{2}"}],
            "amc": [{"problem": "What is $6 \\cdot 7$?", "answer": 42.0},
                    {"problem": "What is $1+1$?", "answer": 2.0}]}
    if c.data.source in rows:  # countdown and sudoku: generated offline by d1's rules
        path = tmp_path / f"{c.data.source}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows[c.data.source]))
        c.data.test_path = str(path)
    return c


# llada_gsm8k's prompt (four worked examples, 5,466 characters) is too long for the
# tiny model's character tokenizer in a test; its prompt and grader are tested above
@pytest.mark.parametrize("arg", ["d1_gsm8k_128", "d1_math500_256", "d1_countdown_512",
                                 "d1_sudoku_128", "llada_math_512", "dream_gsm8k_256",
                                 "dream_gsm8k_strict_256", "dream_minerva_math_512",
                                 "igpo_gsm8k_256", "igpo_math500_512", "igpo_amc_256"])
def test_each_recipe_evaluates_the_tiny_model_with_its_protocol(arg, tmp_path):
    from configs import eval_protocols
    from igpo_jax import evaluate, experiment
    from igpo_jax.configlib import validate
    name, length = arg.rsplit("_", 1)
    p = P.PROTOCOLS[name]
    full = eval_protocols.get_config(arg)  # the recipe as published
    assert (full.sampler.gen_length, full.sampler.block_length, full.sampler.steps) == (
        int(length), p.block_length or int(length), int(int(length) * p.steps_per_token))
    assert (full.sampler.temperature, full.sampler.top_p, full.sampler.remasking,
            full.sampler.schedule, full.eval.k) == (
        p.temperature, p.top_p, p.remasking, p.schedule, p.k)
    assert full.model.preset == {"llada": "llada_8b", "dream": "dream_7b"}[p.model]
    assert full.eval.protocol == name and full.eval.exact_sampler
    c = validate(_recipe(arg, tmp_path))
    summary = evaluate.run_eval(c, str(tmp_path / "run"), show_progress=False)
    assert summary["protocol"] == name and summary["num_examples"] == 2
    assert summary["metric"] == ("pass@1" if p.k == 1 else f"avg@{c.eval.k}")
    assert summary["sampler"]["remasking"] == p.remasking
    rows = [json.loads(line) for line in open(tmp_path / "run" / "eval" / "generations.jsonl")]
    examples = evaluate.eval_examples(c)
    tok = experiment.build_tokenizer(c)
    assert len(rows) == c.eval.k * len(examples)  # avg@k: k samples of every problem
    assert [r["question"] for r in rows] == [examples[r["index"]].question for r in rows]
    assert sorted({r["index"] for r in rows}) == list(range(len(examples)))
    for r in rows:
        e = examples[r["index"]]
        assert 0 <= r["score"] <= 1 and r["correct"] == (r["score"] == 1)
        # the model was asked the protocol's prompt (its ids, left-padded)
        ids = p.prompt_ids(tok, e)
        assert tok.decode(ids) == tok.decode(tok.encode(p.prompt_text(e)[len("<|startoftext|>"):]))
    assert summary["accuracy"] == pytest.approx(sum(r["score"] for r in rows) / len(rows))


def test_minerva_exact_match_recipe_needs_sympys_latex_parser(tmp_path):
    """dream_minerva_math_em grades with sympy's LaTeX parser (antlr 4.11): without it the
    run stops before generating anything, saying what to install; with it, it runs."""
    from igpo_jax import evaluate
    from igpo_jax.configlib import validate
    c = validate(_recipe("dream_minerva_math_em_512", tmp_path))
    try:
        G.sympy_latex_parser()
    except ImportError:
        with pytest.raises(ImportError, match="antlr4-python3-runtime==4.11"):
            evaluate.run_eval(c, str(tmp_path / "run"), show_progress=False)
        assert not (tmp_path / "run" / "eval" / "generations.jsonl").exists()
    else:
        summary = evaluate.run_eval(c, str(tmp_path / "run"), show_progress=False)
        assert summary["protocol"] == "dream_minerva_math_em" and summary["num_examples"] == 2


def test_the_recipe_refuses_an_unpublished_length_and_an_unknown_protocol():
    from configs import eval_protocols
    with pytest.raises(ValueError, match="published at generation lengths"):
        eval_protocols.get_config("llada_gsm8k_512")
    with pytest.raises(ValueError, match="PROTOCOL_LENGTH"):
        eval_protocols.get_config("d2_gsm8k_256")
    from igpo_jax.evaluate import EvalConfig
    from igpo_jax.sections import ConfigError
    with pytest.raises(ConfigError, match="eval.protocol"):
        EvalConfig(protocol="nope")


def test_the_hf_tokenizer_encodes_a_protocol_prompt_to_exactly_its_text(tmp_path):
    """Through a byte-level BPE tokenizer.json with LLaDA's special tokens: the prompt
    ids decode back to the reference string, special tokens as single ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from igpo_jax import tokenizers
    specials = ["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|eot_id|>",
                "<|start_header_id|>", "<|end_header_id|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator([D1_GSM8K_JANET, D1_SUDOKU], trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tk.save(str(tmp_path / "tokenizer.json"))
    tok = tokenizers.load_tokenizer("hf", str(tmp_path))
    ids = P.PROTOCOLS["d1_gsm8k"].prompt_ids(tok, _gsm8k())
    assert tok.decode_raw(ids) == D1_GSM8K_JANET
    assert ids[0] == tok.bos_id and ids.count(tok.eot_id) == 1
    e = planning.make_sudoku_example("1030040220030320", "1234341221434321")
    assert tok.decode_raw(P.PROTOCOLS["d1_sudoku"].prompt_ids(tok, e)) == D1_SUDOKU
    # what d1's grader reads: the generated ids with special tokens written out
    comp = tok.encode("\n</reasoning>\n<answer>\n1234341221434321\n</answer>") + [
        tok.eot_id, tok.eos_id, tok.eos_id]
    text = P.PROTOCOLS["d1_sudoku"].completion_text(tok, comp)
    assert text.endswith("</answer><|eot_id|><|endoftext|><|endoftext|>")
    assert G.d1_sudoku_score(text, e) == 1.0
