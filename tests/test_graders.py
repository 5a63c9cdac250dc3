"""The graders of published evaluation code: known completions graded as the reference's
code grades them (d1's eval/, OpenCompass's GSM8K), and MATH's normalisation on
hand-worked strings."""

import pytest

from igpo_jax import graders as G
from igpo_jax.data import Example, planning

JANET_GOLD = "18"


def _gsm8k(answer=JANET_GOLD):
    return Example("Janet's ducks lay 16 eggs per day. How much does she make?", answer, "", "")


E = "<|eot_id|><|endoftext|><|endoftext|>"  # what d1's decode keeps after a completion


@pytest.mark.parametrize("completion,answer,score", [
    ("\nJanet has 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n</reasoning>\n<answer>\n\\boxed{18}\n</answer>" + E, "18", 1),
    ("\n...\n</reasoning>\n<answer>\n\\boxed{\\$18}\n</answer>" + E, "18", 1),  # first number
    ("\n...\n</reasoning>\n<answer>\n\\boxed{...}\n</answer> so \\boxed{18.00}" + E, "18", 1),
    ("\n...\n</reasoning>\n<answer>\n\\boxed{1,800}\n</answer>" + E, "18", 0),  # reads 1
    ("\n...\n</reasoning>\n<answer>\nShe sells 9 eggs for $2 each, so $18.\n</answer>" + E, "18", 1),
    ("\n...\n</reasoning>\n<answer>\n18 dollars from 9 eggs\n</answer>" + E, "18", 0),  # last: 9
    ("\nShe makes 18 dollars." + E, "18", 0),  # no box, no answer block
    ("\n...\\boxed{\\frac{1}{2}}" + E, "0.5", 0),  # the box ends at the first }
    ("\n\\boxed{-10}" + E, "-10", 0),  # d1 reads no gold number for a negative answer
])
def test_d1_gsm8k_grades_as_d1(completion, answer, score):
    assert G.d1_gsm8k_score(completion, _gsm8k(answer=answer)) == score


def _answer_block(x):
    return "\n...\n</reasoning>\n<answer>\n" + x + "\n</answer>" + E


@pytest.mark.parametrize("x,gold,score", [
    ("\\boxed{\\frac{14}{3}}", "\\frac{14}{3}", 1),
    ("\\boxed{14/3}", "\\frac{14}{3}", 1),
    ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", 1),
    ("\\boxed{x = 5}", "5", 1),
    ("\\boxed{16\\sqrt{3}}", "16 \\sqrt{3}", 1),
    ("\\boxed{(3, \\frac{\\pi}{2})}", "\\left( 3, \\frac{\\pi}{2} \\right)", 1),
    ("\\boxed{0.5}", "\\frac{1}{2}", 1),
    ("\\boxed{90}", "90^\\circ", 1),
    ("\\boxed{\\$5}", "5", 1),
    ("\\boxed{10\\%}", "10", 1),
    ("\\boxed{5 \\text{ cm}}", "5", 1),
    ("\\boxed{Evelyn}", "\\text{Evelyn}", 0),
    ("\\boxed{x/y}", "\\frac{x}{y}", 0),  # the normalisation fails: compared raw
    ("9", "9", 0),  # no box: d1 takes the whole completion
    ("9\n</answer> \\boxed{", "9", 1),  # an unclosed last box: the answer block
])
def test_d1_math500_grades_as_d1(x, gold, score):
    assert G.d1_math_score(_answer_block(x), Example("q", gold, "", "")) == score


def test_math_normalisation_on_hand_worked_strings():
    assert G.math_normalise("\\dfrac12") == "\\frac{1}{2}"
    assert G.math_normalise("k = \\sqrt3") == "\\sqrt{3}"
    assert G.math_normalise(".5") == "\\frac{1}{2}"  # 0.5
    assert G.math_normalise("\\left( 1, 2 \\right)") == "(1,2)"
    assert G.math_normalise("3/4") == "\\frac{3}{4}" and G.math_normalise("03/4") == "03/4"
    with pytest.raises(G._Unnormalisable):
        G.math_normalise("a/b")
    assert G.last_boxed("a \\boxed{1} b \\boxed{\\frac{2}{3}} c") == "\\boxed{\\frac{2}{3}}"
    assert G.last_boxed("no box") == "no box" and G.last_boxed("\\boxed{open") is None


@pytest.mark.parametrize("x,score", [
    ("\\boxed{3 * 5 + 7}", 1), ("\\boxed{3 \\times 5 + 7}", 1), ("\\boxed{7 + 3 \\cdot 5}", 1),
    ("\\boxed{3 * 5 + 7 = 22}", 1), ("\\boxed{(7 + 5) * 3}", 0), ("\\boxed{5 * 3 + 7 + 0}", 0),
])
def test_d1_countdown_grades_as_d1(x, score):
    e = planning.make_countdown_example([3, 5, 7], 22)
    assert G.d1_countdown_score(_answer_block(x), e) == score
    assert G.d1_countdown_score("\n3 * 5 + 7" + E, e) == 0  # no box: the whole text


@pytest.mark.parametrize("completion,score", [
    ("\n...\n</reasoning>\n<answer>\n1234341221434321\n</answer>" + E, 8 / 8),
    ("...<answer>\n1234\n3412\n2143\n4321\n</answer>" + E, 8 / 8),
    ("...<answer>\n1234341221434312\n</answer>" + E, 7 / 8),
    ("...<answer>\n1234341\n</answer>" + E, 4 / 8),  # padded with 0
    ("...<answer>\n1 2 3 4 | 3 4 1 2 | 2 1 4 3 | 4 3 2 1\n</answer>" + E, 3 / 8),
    ("...<answer>\n[1234341221434321]\n</answer>" + E, 0 / 8),  # shifted by the bracket
    ("...<answer>\n1030040220030320\n</answer>" + E, 0 / 8),  # the puzzle copied
    ("\nThe solved grid is 1234341221434321 and that's it." + E, 8 / 8),  # 16 digits
])
def test_d1_sudoku_scores_the_share_of_blanks_as_d1(completion, score):
    e = planning.make_sudoku_example("1030040220030320", "1234341221434321")
    assert G.d1_sudoku_score(completion, e) == score


@pytest.mark.parametrize("completion,answer,score", [
    ("Janet's ducks lay 16 eggs per day. She eats 3 for breakfast and uses 4 for muffins, so "
     "she has 16 - 3 - 4 = 9 eggs left.\nShe sells them for $2 each, so she makes 9 * 2 = 18 "
     "dollars.\nThe answer is 18", "18", 1),
    ("She has 16 - 3 - 4 = 9 eggs to sell, so she makes 9 * $2 = $18 per day.\nThe answer is "
     "18\nQuestion: A robe takes 2 bolts of blue fiber and half that much white fiber. How "
     "many bolts in total does it take?\nLet's think step by step\nAnswer: 2 + 1 = 3", "18", 1),
    ("She sells 9 eggs and makes 9 * 2 = $18.00. That is $18 from 16 eggs.", "18", 0),
    ("He earns 12 * 90 = $1,080 in total.\nThe answer is 1,080", "1080", 0),  # reads 080
    ("nothing", "18", 0),  # NULL
])
def test_llada_gsm8k_grades_as_opencompass(completion, answer, score):
    assert G.opencompass_gsm8k_score(completion, _gsm8k(answer=answer)) == score


# ---- OpenCompass's MATH (LLaDA-8B-Instruct: math_0shot_gen_11c4b5, MATHEvaluator v2) ----
def _math(answer):
    return Example("Find x.", answer, "", "")


@pytest.mark.parametrize("completion,extracted", [
    ("We get $x=\\frac12$. So the answer is $\\boxed{\\frac12}$.", "\\frac12"),
    ("First I thought $\\boxed{3}$ but actually it is $\\boxed{4}$.", "4"),  # the last box
    ("We compute 3+4=7. The answer is 7. Done", "7"),  # the first 'answer is' piece
    ("The answer is 3.5", "3"),  # the split on '.' cuts the decimal
    ("7 is the result\nbecause", "7istheresultbecause"),  # the first piece, normalised
    ("The final answer is 5. $\\boxed{}$", "5"),  # an empty box is no answer
    ("So $\\boxed{7}$ maybe. Actually $\\boxed{\\frac{8}{", "7"),  # unclosed last box
    ("$\\fbox{5}$", "\\fbox{5}"),
    ("$\\boxed{{1},{2}}$", "1},{2"),  # one outer brace pair stripped by a regex
    ("so \\boxed 5.", "so\\boxed5"),
    ("I think it's $\\dfrac{3}{4}$", "\\df\\frac{3}{4}"),  # 'rac' -> '\\frac'
    ("Final Answer: The final answer is $12$. I hope it is correct.", "12"),
])
def test_opencompass_math_extracts_as_math_postprocess_v2(completion, extracted):
    assert G.opencompass_math_extract(completion) == extracted


@pytest.mark.parametrize("pred,ref", [
    ("\\frac12", "\\frac{1}{2}"), ("5\\text{ cm}", "5"), ("5\\text{cm}", "5"), ("5 cm", "5"),
    ("\\dfrac{3}{4}", "\\frac34"), ("x=5", "5"), ("y = 2x+3", "2x+3"), ("\\$10.00", "\\$10"),
    ("25\\%", "25"), ("1,000", "1000"), ("3/4", "\\frac{3}{4}"), ("30^\\circ", "30"),
    ("2\\sqrt3", "2\\sqrt{3}"), ("\\text{(A)}", "\\text{(A)}"), ("(-\\infty, 3]", "(-\\infty,3]"),
    ("(1, 2)", "(1,2)"), ("2.0", "2"), ("\\left( 1, 2 \\right)", "(1,2)"),
    ("Tuesday", "\\text{Tuesday}"), ("\\infty", "infinity"), ("\\frac 1 2", "\\frac{1}{2}"),
])
def test_opencompass_math_v2_equivalent(pred, ref):
    assert G.opencompass_math_equiv(pred, ref)


@pytest.mark.parametrize("pred,ref", [
    ("0.5", "\\frac{1}{2}"),  # v2 has no 0.5 special case
    ("x/2", "\\frac{x}{2}"),  # int('x') raises: only the raw normalisation runs
    ("-3/4", "-\\frac{3}{4}"), ("\\frac{-3}{4}", "-\\frac{3}{4}"), ("2.50", "2.5"),
    ("18.9", "18.90"), ("(A)", "\\text{(A)}"), ("\\pm 2", "2,-2"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"), ("f(x) = 2x", "2x"), ("x \\in [1,2]", "[1,2]"),
])
def test_opencompass_math_v2_not_equivalent(pred, ref):
    assert not G.opencompass_math_equiv(pred, ref)


def test_opencompass_math_score_reads_then_compares():
    assert G.opencompass_math_score("so $\\boxed{\\dfrac{3}{4}}$.", _math("\\frac34")) == 1
    assert G.opencompass_math_score("It is $\\boxed{4}$. Check: $\\boxed{3}$", _math("4")) == 0
    assert G.opencompass_math_extract("\\boxed{{5}}") == "5"  # then equal to 5
    assert G.opencompass_math_score("\\boxed{{5}}", _math("5")) == 1


# ---- lm-eval 0.4.8 gsm8k_cot (Dream-v0-Instruct-7B) --------------------------------------
@pytest.mark.parametrize("response,strict,flexible", [
    # the wrapper's response (cut at <|endoftext|>, then at Q:, </s>, <|im_end|>)
    ("Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4, so she uses 3 + 4 = 7 "
     "eggs.\nShe has 16 - 7 = 9 eggs left to sell.\nShe sells them for $2 each, so she makes "
     "9 * $2 = $18.\nThe answer is 18.", 1, 1),
    ("She makes 9 * $2 = $18 per day.\n\nSo, Janet makes $18 every day at the farmers' "
     "market.", 0, 1),
    ("The answer is 18", 0, 1),  # strict's final '.' takes the 8: it reads '1'
    ("She sells 9 eggs at $2 each, so she makes $18 per day. (9 x 2)", 0, 0),  # last: '2'
    ("She makes $18.00 every day.", 0, 0),  # '18.00' is not '18'
])
def test_dream_gsm8k_grades_as_lm_eval(response, strict, flexible):
    ex = _gsm8k()
    assert G.lm_eval_gsm8k_strict_score(response, ex) == strict
    assert G.lm_eval_gsm8k_flexible_score(response, ex) == flexible


def test_lm_eval_regex_filter_on_hand_worked_strings():
    s = G.LM_EVAL_GSM8K_STRICT
    assert G.lm_eval_regex("The answer is 18\n", s, 0) == "1"
    assert G.lm_eval_regex("The answer is 7", s, 0) == "[invalid]"
    assert G.lm_eval_regex("The answer is $18.", s, 0) == "[invalid]"
    assert G.lm_eval_regex("the answer is 18.", s, 0) == "[invalid]"
    assert G.lm_eval_regex("The answer is 18. The answer is 20.", s, 0) == "18."
    text = "The total is 1,200 + 34 = 1,234. The answer is 1,234."
    assert G.lm_eval_gsm8k_strict_score(text, _gsm8k("1234")) == 1
    assert G.lm_eval_gsm8k_flexible_score(text, _gsm8k("1234")) == 1
    assert G.lm_eval_regex(text, G.LM_EVAL_GSM8K_FLEXIBLE, -1) == "1,234."


# ---- lm-eval 0.4.8 minerva_math (Dream-v0-Instruct-7B) -----------------------------------
@pytest.mark.parametrize("raw,normalised", [
    ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"), ("x = \\dfrac{3}{4}", "\\dfrac{3}{4}"),
    ("\\$18.00", "18.00"), ("$10\\%$", "10\\%"), ("\\text{(B)}", "(B)"), ("$x^2+1$.", "x^2+1"),
    ("an integer 7", "integer7"), ("\\frac32", "\\frac{3}{2}"), ("12^\\circ", "12"),
    ("100,000", "100000"), ("5 units", "5"), ("$-\\frac{2}{3}$", "-\\frac{2}{3}"),
])
def test_minerva_normalisation_on_hand_worked_strings(raw, normalised):
    assert G.minerva_normalize(raw) == normalised


def test_minerva_reads_only_its_phrase():
    assert G.minerva_unnormalized("Final Answer: The final answer is 7") == "[invalidanswer]"
    assert G.minerva_unnormalized("Final Answer: The final answer is $7$.") == "[invalidanswer]"
    assert G.minerva_unnormalized(
        "Final Answer: The final answer is 3.5. I hope it is correct.") == "3.5"
    assert G.minerva_unnormalized("The final answer is $7$. I hope it is correct.") == \
        "[invalidanswer]"
    assert G.minerva_unnormalized("so $\\boxed{5}$.") == "[invalidanswer]"  # no box search


def _sympy_parse(s):
    """A stand-in for sympy's LaTeX parser (which needs antlr 4.11) on the plain
    expressions below: \\frac{a}{b} rewritten, then sympify; anything else fails."""
    import re

    import sympy
    if "[" in s or "invalid" in s:
        raise ValueError(s)
    return sympy.sympify(re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s))


def test_minerva_exact_match_is_sympy_equivalence_without_string_fallback():
    gold = _math("-\\frac{2}{3}")
    phrase = ("...so $b=-\\frac32 a$.\nFinal Answer: The final answer is $-\\frac{2}{3}$. "
              "I hope it is correct.")
    assert G.minerva_exact_match_score(phrase, gold, parse=_sympy_parse) == 1
    assert G.minerva_exact_match_score("... $\\frac{a}{b} = \\boxed{-\\frac{2}{3}}$.<|im_end|>",
                                       gold, parse=_sympy_parse) == 0  # no phrase
    assert G.sympy_equiv("0.5", "\\frac{1}{2}", parse=_sympy_parse)
    assert G.sympy_equiv("x^2+1".replace("^", "**"), "1+x**2", parse=_sympy_parse)
    assert not G.sympy_equiv("[2,5)", "[2,5)", parse=_sympy_parse)  # unparsable: not equal
    assert G.minerva_exact_match_score(
        "Final Answer: The final answer is 5 units. I hope it is correct.", _math("5"),
        parse=_sympy_parse) == 1


def test_minerva_exact_match_without_antlr_411_says_what_to_install():
    try:
        from sympy.parsing.latex import parse_latex
        parse_latex("1")
    except ImportError:
        with pytest.raises(ImportError, match="antlr4-python3-runtime==4.11"):
            G.minerva_exact_match_score(
                "Final Answer: The final answer is 5. I hope it is correct.", _math("5"))
    else:  # a machine with antlr 4.11: the real parser grades Dream's worked example
        assert G.minerva_exact_match_score(
            "Final Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct.",
            _math("-\\frac{2}{3}")) == 1


def test_minerva_math_verify_as_lm_eval_048():
    gold = _math("-\\frac{2}{3}")
    assert G.minerva_math_verify_score(
        "... so $\\frac{a}{b} = \\boxed{-\\frac{2}{3}}$.<|im_end|>", gold) == 1
    assert G.minerva_math_verify_score("... so $\\frac{a}{b} = \\boxed{\\frac{2}{3}}$.", gold) == 0
    # 0.4.8 parses the normalised target: a bare interval parses to nothing, never right
    assert G.minerva_math_verify_score(
        "So the domain is $[2,5)$.\nFinal Answer: The final answer is $[2,5)$. I hope it is "
        "correct.", _math("[2,5)")) == 0


# ---- AMC (this package's recipe) ---------------------------------------------------------
@pytest.mark.parametrize("completion,gold,score", [
    ("</reasoning>\n<answer>\n\\boxed{142}\n</answer>", "142.0", 1),  # equal numbers
    ("</reasoning>\n<answer>\n\\boxed{\\frac{1}{2}}\n</answer>", "\\frac12", 1),  # MATH's rules
    ("</reasoning>\n<answer>\n\\boxed{141}\n</answer>", "142.0", 0),
    ("no box, no answer block", "142", 0),
])
def test_amc_grader(completion, gold, score):
    assert G.amc_score(completion, _math(gold)) == score
