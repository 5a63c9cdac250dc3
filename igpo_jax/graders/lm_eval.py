"""lm-evaluation-harness 0.4.8's graders, re-written (Dream-v0-Instruct-7B's evaluation:
Dream's ``eval_instruct/`` vendors that version): ``gsm8k_cot``'s strict-match and
flexible-extract filters with its exact match, and ``minerva_math``'s exact match
(Minerva's answer phrase, normalisation and sympy equivalence) and math-verify metric."""

from __future__ import annotations

import re

from igpo_jax.data import Example


# ---- lm-evaluation-harness 0.4.8 (Dream-v0-Instruct-7B's evaluation) --------------------
# gsm8k_cot's two filters: "strict-match" (the first "The answer is N." ; the final '.'
# is any character, so the number needs one more character after it) and
# "flexible-extract" (the last number-like run)
LM_EVAL_GSM8K_STRICT = r"The answer is (\-?[0-9\.\,]+)."
LM_EVAL_GSM8K_FLEXIBLE = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
LM_EVAL_INVALID = "[invalid]"
# gsm8k_cot's exact_match: these removed from prediction and target, then compared
# lower-cased
LM_EVAL_GSM8K_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")


def lm_eval_regex(text: str, pattern: str, group_select: int) -> str:
    """lm-eval's ``RegexFilter`` on one response: the ``group_select``-th match; with
    several groups, its first non-empty group; stripped; ``[invalid]`` without a match."""
    found = re.findall(pattern, text)
    if not found:
        return LM_EVAL_INVALID
    match = found[group_select]
    if isinstance(match, tuple):
        match = [m for m in match if m]
        match = match[0] if match else LM_EVAL_INVALID
    return match.strip()


def lm_eval_exact_match(pred: str, gold: str, ignore: tuple[str, ...] = LM_EVAL_GSM8K_IGNORE
                        ) -> float:
    for pattern in ignore:
        pred, gold = re.sub(pattern, "", pred), re.sub(pattern, "", gold)
    return float(pred.lower() == gold.lower())


def lm_eval_gsm8k_gold(example: Example) -> str:
    """gsm8k_cot's target: the text after ``####`` (this package's GSM8K source keeps
    exactly that, commas dropped; exact_match drops commas from both sides anyway)."""
    return example.answer.split("####")[-1].strip()


def lm_eval_gsm8k_flexible_score(completion: str, example: Example) -> float:
    pred = lm_eval_regex(completion, LM_EVAL_GSM8K_FLEXIBLE, -1)
    return lm_eval_exact_match(pred, lm_eval_gsm8k_gold(example))


def lm_eval_gsm8k_strict_score(completion: str, example: Example) -> float:
    pred = lm_eval_regex(completion, LM_EVAL_GSM8K_STRICT, 0)
    return lm_eval_exact_match(pred, lm_eval_gsm8k_gold(example))


# minerva_math (lm-eval 0.4.8's tasks/minerva_math/utils.py)
MINERVA_INVALID = "[invalidanswer]"
MINERVA_SUBSTITUTIONS = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""),
    ("mbox", "text"), (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"))
MINERVA_REMOVED = (
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units",
    "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm",
    "pounds", "meters", "meals", "edges", "students", "childrentickets", "multiples",
    "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}",
    "\\text{}", r"\mathrm{th}", r"^\circ", r"^{\circ}", r"\;", r",\!", "{,}", '"', "\\dots")


def minerva_unnormalized(text: str) -> str:
    """The answer of the Minerva phrase ``Final Answer: The final answer is X. I hope it
    is correct.`` (the first one; both dots are any character), else ``[invalidanswer]``.
    The candidate is never searched for a box."""
    m = re.search(r"Final Answer: The final answer is(.*?). I hope it is correct.",
                  text + "I hope it is correct.")
    return m.group(1).strip() if m else MINERVA_INVALID


def unwrap_markup(s: str) -> str:
    """Minerva's (and OpenCompass's) ``\\text{X}``, ``\\textbf{X}``, ``\\overline{X}`` ->
    ``X`` (the first closing brace ends each) and ``\\boxed{X}`` -> ``X`` (the last one)."""
    s = re.sub(r"(\\text\{)(.*?)(\})", "\\2", s)
    s = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", s)
    s = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", s)
    return re.sub(r"(\\boxed\{)(.*)(\})", "\\2", s)


def minerva_normalize(final_answer: str) -> str:
    """Minerva's ``normalize_final_answer`` (Lewkowycz et al., appendix D), step for step."""
    final_answer = final_answer.split("=")[-1]
    for before, after in MINERVA_SUBSTITUTIONS:
        final_answer = final_answer.replace(before, after)
    for expr in MINERVA_REMOVED:
        final_answer = final_answer.replace(expr, "")
    final_answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", final_answer)
    final_answer = unwrap_markup(final_answer)
    final_answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", final_answer)
    final_answer = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", final_answer)
    final_answer = final_answer.replace("$", "")
    if final_answer.replace(",", "").isdigit():
        final_answer = final_answer.replace(",", "")
    return final_answer


def minerva_gold(example: Example) -> str:
    """minerva_math's target: the solution's last box, unboxed and normalised (this
    package's MATH source keeps the unboxed last box, or the row's ``answer``)."""
    return minerva_normalize(example.answer)


def sympy_latex_parser():
    """sympy's LaTeX parser, which needs ``antlr4-python3-runtime==4.11`` (math-verify
    itself works with other versions)."""
    from sympy.parsing.latex import parse_latex
    try:
        parse_latex("1")
    except ImportError as e:
        raise ImportError(
            "minerva_math's exact_match parses LaTeX with sympy, which needs "
            "antlr4-python3-runtime 4.11: pip install 'antlr4-python3-runtime==4.11' (the "
            "math_verify metric works without it)") from e
    return parse_latex


def sympy_equiv(x1: str, x2: str, parse=None, timeout_s: int = 5) -> bool:
    """minerva_math's ``is_equiv``: both sides parsed as LaTeX by sympy, equal when their
    difference simplifies to 0; any parse or arithmetic failure, or ``timeout_s`` seconds
    (main thread only, as the reference's ``signal.alarm``), is not equal. No string
    comparison: identical strings sympy cannot parse are not equal."""
    import signal
    import threading

    import sympy

    parse = parse or sympy_latex_parser()
    use_alarm = threading.current_thread() is threading.main_thread()

    def body() -> bool:
        # every failure the reference catches (parse errors, a TypeError in the difference,
        # a ValueError or anything else in simplify) ends as "not equal"
        try:
            return bool(sympy.simplify(parse(x1) - parse(x2)) == 0)
        except Exception:
            return False

    if not use_alarm:
        return body()

    def alarm(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout_s)
    try:
        return body()
    except TimeoutError:
        return False
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def minerva_exact_match_score(completion: str, example: Example, parse=None) -> float:
    answer = minerva_normalize(minerva_unnormalized(completion))
    return float(sympy_equiv(answer, minerva_gold(example), parse))


def minerva_math_verify_score(completion: str, example: Example) -> float:
    """minerva_math's ``math_verify`` metric (lm-eval 0.4.8, the version Dream's fork
    vendors): math-verify's default ``parse`` of the normalised target and of the whole
    response, then ``verify(gold, prediction)``."""
    from math_verify import parse, verify
    return float(bool(verify(parse(minerva_gold(example)), parse(completion))))
