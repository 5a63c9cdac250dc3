"""Answer parsing (igpo_jax/data/answers.py): boxed answers, the final answer span, the
ground-truth formats of the sources."""

import pytest

from igpo_jax.data import answers

# MATH-style completions box intermediate results inside the reasoning.
MATH_STYLE = ("<reasoning>\nFirst $x = \\boxed{3}$, then $y = \\boxed{4}$.\n</reasoning>\n"
              "<answer>\n\\boxed{7}\n</answer>")


@pytest.mark.parametrize("text,want", [
    ("so \\boxed{42}.", "42"), ("\\boxed{\\frac{1}{2}} and \\boxed{3}", "\\frac{1}{2}"),
    ("\\boxed{{a}+{b}}", "{a}+{b}"), ("\\boxed 5$ end", "5"), ("\\fbox{7}", "7"),
    ("no box here", None), ("\\boxed{unclosed", None), ("", None),
    ("\\fbox{1} then \\boxed{2}", "1"), ("\\boxed{2} then \\fbox{1}", "2"),
])
def test_extract_boxed(text, want):
    assert answers.extract_boxed(text) == want


def test_ground_truth_parsers():
    assert answers.gsm8k_answer("Natalia sold ... 72 clips.\n#### 1,072") == "1072"
    assert answers.metamath_answer("... so 3 + 4 = 7.\nThe answer is: 7") == "7"
    with pytest.raises(ValueError, match="####"):
        answers.gsm8k_answer("no marker")


@pytest.mark.parametrize("text,want", [
    (MATH_STYLE, "7"),
    ("<answer>\n\\boxed{1} no, \\boxed{2}\n</answer>", "2"),  # last box of the span
    ("<reasoning>\n\\boxed{9}\n</reasoning>\n<answer>\n42\n</answer>", "42"),  # unboxed span
    ("So \\boxed{1}, finally \\boxed{2}.", "2"),  # no answer span: last box
    ("<answer>\n\\boxed{5}", "5"),  # unterminated span
    ("<reasoning>\n\\boxed{9}\n</reasoning>\n<answer>\n</answer>", None),
    ("nothing", None), (None, None),
])
def test_extract_answer_reads_the_final_answer(text, want):
    assert answers.extract_answer(text) == want
