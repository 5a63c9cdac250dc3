"""d1's graders (igpo_jax/graders/d1.py): known completions graded as d1's eval/ code
grades them, MATH's normalisation on hand-worked strings, and the AMC grader."""

import pytest

from igpo_jax import graders as G
from igpo_jax.data import Example
from igpo_jax.data import planning
from tests.graders import _gsm8k, _math


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


# ---- AMC (this package's recipe) ---------------------------------------------------------
@pytest.mark.parametrize("completion,gold,score", [
    ("</reasoning>\n<answer>\n\\boxed{142}\n</answer>", "142.0", 1),  # equal numbers
    ("</reasoning>\n<answer>\n\\boxed{\\frac{1}{2}}\n</answer>", "\\frac12", 1),  # MATH's rules
    ("</reasoning>\n<answer>\n\\boxed{141}\n</answer>", "142.0", 0),
    ("no box, no answer block", "142", 0),
])
def test_amc_grader(completion, gold, score):
    assert G.amc_score(completion, _math(gold)) == score
