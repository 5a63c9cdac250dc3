import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from igpo_jax import rewards
from igpo_jax.data import answers
from tests.data.test_answers import MATH_STYLE

EQUIV = [
    ("72", "72"), ("72.0", "72"), ("72.00", "72"), ("1,000", "1000"), ("1,234,567", "1234567"),
    ("$18", "18"), ("\\$18", "18"), ("18 dollars", "18"), ("\\text{18}", "18"),
    ("18\\text{ cm}", "18"), ("10\\%", "10"), ("10%", "10"), ("\\frac{1}{2}", "0.5"),
    ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("1/2", "0.5"), ("0.5", "\\frac12"),
    ("-3", "-3"), ("-\\frac{3}{4}", "-0.75"), ("x = 5", "5"), ("5.", "5"), (" 5 ", "5"),
    ("90^\\circ", "90"), ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"), ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\pi", "\\pi"), ("3\\pi/2", "\\frac{3\\pi}{2}"), ("(1, 2)", "(1,2)"),
    ("\\left(1,2\\right)", "(1,2)"), ("0.333333333", "0.333333333"), ("\\frac{6}{4}", "\\frac{3}{2}"),
    ("0.25", "\\frac{1}{4}"), ("2^{10}", "1024"),
]
NOT_EQUIV = [
    ("71", "72"), ("7.2", "72"), ("1,001", "1000"), ("\\frac{1}{3}", "0.5"), ("-5", "5"),
    ("", "5"), (None, "5"), ("five", "5"), ("\\sqrt{2}", "2"), ("(2,1)", "(1,2)"),
    ("12", "1/2"), ("\\frac{2}{1}", "0.5"), ("3\\pi", "\\pi"), ("100", "10"),
]


@pytest.mark.parametrize("pred,gold", EQUIV)
def test_equivalent(pred, gold):
    assert rewards.is_equiv(pred, gold)


@pytest.mark.parametrize("pred,gold", NOT_EQUIV)
def test_not_equivalent(pred, gold):
    assert not rewards.is_equiv(pred, gold)


def test_table_size():
    assert len(EQUIV) + len(NOT_EQUIV) >= 40


def test_format_reward_xmlcount():
    good = "<reasoning>\n1+1=2\n</reasoning>\n<answer>\n\\boxed{2}\n</answer>"
    assert rewards.format_reward(good) == 0.75
    assert rewards.format_reward("<reasoning>\n<reasoning>\n") == 0.0
    assert rewards.format_reward("</answer> \\boxed{") == 0.375
    r = rewards.MathReward(correct_weight=3.0, format_weight=1.0)
    assert r(good, "2") == (3.75, True)
    assert r(good, "3") == (0.75, False)


def test_hostile_outputs_never_raise_and_are_fast():
    r = rewards.MathReward()
    hostile = ["{" * 10000, "}" * 10000, "\\boxed{" * 3000, "\\boxed{" + "9" * 10000 + "}",
               "\x00\xff\ud800?", "\\boxed{\\frac{1}{0}}", "\\boxed{" + "(" * 500 + "}",
               "\\boxed{x^{x^{x^{x^{x^{x^{x^{x}}}}}}}}", ""]
    t0 = time.time()
    for h in hostile:
        reward, ok = r(h, "5")
        assert isinstance(reward, float) and ok is False
    assert time.time() - t0 < 30


PATHOLOGICAL = [
    "10^{10^{10}}", "9^{9^{9^{9}}}", "(10^{10})!", "99999999!", "1" * 5000,
    "2^{" * 300 + "2" + "}" * 300, "{" * 100000 + "}" * 100000, "x" * 1_000_000,
    "\\frac{" * 2000 + "1" + "}{2}" * 2000,
]


@pytest.mark.parametrize("answer", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_every_grading_call_comes_back(answer):
    """Towers of powers, huge factorials and integers, megabyte strings, deep nesting:
    sympy would work on some of these for hours holding the GIL; the grading process
    is killed at the time bound instead, and the result is 0 (counted as failed when
    the check overran). The bound here is loose on purpose: the property is that the
    call returns, not how fast."""
    r = rewards.MathReward(timeout=1.0)
    t0 = time.time()
    reward, ok, failed = r.score(f"<answer>\n\\boxed{{{answer}}}\n</answer>", "5")
    assert time.time() - t0 < 60
    assert not ok and (reward == 0.0 or not failed)
    assert rewards.is_equiv("\\frac{1}{2}", "0.5")  # the grader still works afterwards


def test_tower_counts_as_a_failure():
    r = rewards.MathReward(timeout=1.0)
    before = rewards.GRADER.restarts
    assert r.batch(["<answer>\n\\boxed{10^{10^{10}}}\n</answer>"], ["5"]) == ([0.0], [False], 1)
    assert rewards.GRADER.restarts == before + 1


def test_slow_grader_start_is_not_timed(monkeypatch):
    """The first check waits for the grading process to import math-verify (here made
    3 s slow, as on a loaded machine) before its own 0.5 s bound starts: the result is
    the same as on an idle machine."""
    monkeypatch.setenv("IGPO_TEST_SLOW_GRADER_START", "3")
    grader = rewards._Grader()
    try:
        assert grader.check("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", timeout=0.5) == (True, False)
    finally:
        grader._stop()


def test_thread_safe():
    results = []

    def work():
        results.append(rewards.is_equiv("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_extract_never_raises(text):
    out = answers.extract_boxed(text)
    assert out is None or isinstance(out, str)
    assert rewards.format_reward(text) <= 0.75


def test_reward_grades_the_answer_span_not_boxes_in_the_reasoning():
    r = rewards.MathReward(symbolic=False)
    assert r(MATH_STYLE, "7")[1]
    assert not r(MATH_STYLE, "3")[1]  # the first box is an intermediate result
    assert answers.extract_boxed(MATH_STYLE, "last") == "7"


def test_reward_crash_scores_zero_and_is_counted(monkeypatch):
    from igpo_jax import rewards

    # a grading process that starts, then dies on its first check (as one killed by the
    # out-of-memory killer would)
    dying = rewards._Grader([sys.executable, "-c", "print('\"ready\"', flush=True)"])
    monkeypatch.setattr(rewards, "GRADER", dying)
    r = rewards.MathReward()
    assert r.score("\\boxed{\\sqrt{2}}", "\\frac{2}{\\sqrt{2}}") == (0.0, False, True)
    rew, ok, failed = r.batch(["\\boxed{\\sqrt{2}}", "\\boxed{5}"], ["\\frac{2}{\\sqrt{2}}", "5"])
    assert failed == 1 and ok == [False, True]
