"""OpenCompass's graders (igpo_jax/graders/opencompass.py): GSM8K, and MATH's
math_postprocess_v2 / MATHEvaluator v2 on the cases traced through OpenCompass's own code."""

import pytest

from igpo_jax import graders as G
from tests.graders import _gsm8k, _math


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
