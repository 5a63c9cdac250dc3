"""lm-eval 0.4.8's graders (igpo_jax/graders/lm_eval.py, Dream-v0-Instruct-7B's
evaluation): gsm8k_cot's filters and minerva_math's metrics on the cases traced through
lm-eval's code."""

import pytest

from igpo_jax import graders as G
from tests.graders import _gsm8k, _math


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
