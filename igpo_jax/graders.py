"""Answer graders of published evaluation code, re-written: each reads a completion as
its reference reads it and returns a score in [0, 1] (igpo_jax/protocols.py pairs them
with prompts and generation settings).

- d1 (``dllm-reasoning/d1``, ``eval/``): GSM8K (the first ``\\boxed{...}`` number, else
  the last number), MATH500 (the last box, Hendrycks-style normalisation with the raw
  strings as a fallback), Countdown (an expression over the given numbers, each once,
  equal to the target) and 4x4 Sudoku (the share of blanks filled right);
- OpenCompass's GSM8K grader (LLaDA-8B-Instruct's evaluation): the last number before
  any ``Question:``.
"""

from __future__ import annotations

import re

from igpo_jax.data import Example, planning


# ---- d1's graders --------------------------------------------------------------------
def _d1_number(text: str, last: bool) -> float | None:
    """A number as d1 reads one from a box or an answer block: the text as a float, else
    the first (box) or last (answer block) ``-?\\d+\\.?\\d*`` in it."""
    try:
        return float(text)
    except ValueError:
        found = re.findall(r"-?\d+\.?\d*", text)
        return float(found[-1 if last else 0]) if found else None


def d1_gsm8k_gold(answer: str) -> float | None:
    """GSM8K's gold number as d1 reads ``#### ANSWER``: digits, commas and a decimal part
    after an optional ``$``; no sign, so the two test problems with negative answers
    get none and are never scored correct (d1's number counts them as wrong)."""
    m = re.match(r"\s*\$?([\d,]+(?:\.\d+)?)", answer)
    return float(m.group(1).replace(",", "")) if m else None


def d1_gsm8k_extract(completion: str) -> float | None:
    """The first ``\\boxed{...}`` (up to its first ``}``) that holds a number, skipping
    empty and ``...`` boxes; without one, the last number of the first ``<answer>``
    block."""
    for box in re.findall(r"\\boxed{(.*?)}", completion):
        box = box.strip()
        if box and not re.fullmatch(r"\.+", box):
            value = _d1_number(box, last=False)
            if value is not None:
                return value
    m = re.search(r"<answer>(.*?)</answer>", completion, re.DOTALL)
    if m and m.group(1).strip():
        return _d1_number(m.group(1).strip(), last=True)
    return None


def d1_gsm8k_score(completion: str, example: Example) -> float:
    pred, gold = d1_gsm8k_extract(completion), d1_gsm8k_gold(example.answer)
    return float(pred is not None and pred == gold)


def last_boxed(text: str) -> str | None:
    """The last ``\\boxed{...}`` (or ``\\fbox{...}``) with its braces balanced, as the MATH
    benchmark's code finds it; ``\\boxed X`` (a space) runs to the next ``$``; ``None``
    when the braces never close; the whole text when there is no box at all."""
    if "\\boxed " in text:
        return "\\boxed " + text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return text
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if text[i] == "}" and depth == 0:
            return text[start:i + 1]
    return None


def unbox(s: str) -> str:
    """``\\boxed{X}`` -> ``X`` (``\\boxed X`` -> ``X``); anything else unchanged. ``None``
    raises ``TypeError``, as in the reference."""
    if "\\boxed " in s:
        if not s.startswith("\\boxed "):
            raise ValueError(s)
        return s[len("\\boxed "):]
    return s[len("\\boxed{"):-1] if s.startswith("\\boxed{") and s.endswith("}") else s


class _Unnormalisable(Exception):
    """A string the MATH normalisation fails on: the reference then compares raw."""


def _frac_braces(s: str) -> str:
    head, *parts = s.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if not part:
            raise _Unnormalisable(s)
        if part[0] == "{":
            out += part
        elif len(part) < 2:
            return s
        elif part[1] == "{":
            out += "{" + part[0] + "}" + part[1:]
        else:
            out += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
    return out


def _sqrt_braces(s: str) -> str:
    head, *parts = s.split("\\sqrt")
    out = head
    for part in parts:
        if not part:
            raise _Unnormalisable(s)
        out += "\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:])
    return out


def _slash_to_frac(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        raise _Unnormalisable(s) from None
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def math_normalise(s: str) -> str:
    """The MATH benchmark's answer normalisation (Hendrycks et al.; d1's ``strip_string``):
    no line breaks, ``\\!``, ``\\left``/``\\right``, degrees, ``\\$``, ``\\%`` or spaces;
    ``tfrac``/``dfrac`` -> ``frac``; a unit after ``\\text{ `` dropped; ``.5`` -> ``0.5``;
    a short ``k = `` prefix dropped; ``\\sqrt3`` -> ``\\sqrt{3}``; ``\\frac12`` ->
    ``\\frac{1}{2}``; ``0.5`` -> ``\\frac{1}{2}``; ``a/b`` of integers -> ``\\frac{a}{b}``.
    Raises :class:`_Unnormalisable` where the reference's code raises."""
    for old, new in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"),
                     ("dfrac", "frac"), ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""),
                     ("^\\circ", ""), ("\\$", "")):
        s = s.replace(old, new)
    if "\\text{ " in s:
        pieces = s.split("\\text{ ")
        if len(pieces) != 2:
            raise _Unnormalisable(s)
        s = pieces[0]
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _frac_braces(_sqrt_braces(s).replace(" ", ""))
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _slash_to_frac(s)


def math_equiv(pred: str | None, gold: str | None) -> bool:
    """The MATH benchmark's ``is_equiv``: equal after :func:`math_normalise`, or equal as
    raw strings where the normalisation fails."""
    if pred is None or gold is None:
        return pred is None and gold is None
    try:
        return math_normalise(pred) == math_normalise(gold)
    except (_Unnormalisable, IndexError):
        return pred == gold


def d1_math_extract(completion: str) -> str | None:
    """d1's MATH answer: the last balanced box, unboxed (no box: the whole completion);
    where that fails or is empty, the first ``<answer>`` block."""
    try:
        pred = unbox(last_boxed(completion))
    except (TypeError, ValueError):
        pred = None
    if not pred:
        m = re.search(r"<answer>(.*?)</answer>", completion, re.DOTALL)
        if m:
            pred = m.group(1).strip()
    return pred


def d1_math_score(completion: str, example: Example) -> float:
    pred = d1_math_extract(completion)
    return float(pred is not None and math_equiv(pred, example.answer))


def d1_countdown_score(completion: str, example: Example) -> float:
    numbers, target = planning.parse_countdown_gold(example.answer)
    return float(planning.countdown_correct(planning.countdown_expression(completion),
                                            numbers, target))


def d1_sudoku_score(completion: str, example: Example) -> float:
    """d1's Sudoku metric: the fraction of the puzzle's blanks filled with the solution's
    digit (the benchmark's number is the mean over puzzles; d1's puzzles all have 8
    blanks, so it equals d1's count over all cells)."""
    puzzle, solution = planning.parse_sudoku_gold(example.answer)
    right, blanks = planning.sudoku_cells(planning.sudoku_grid(completion), puzzle, solution)
    return right / blanks if blanks else 0.0


# ---- OpenCompass's GSM8K grader (LLaDA-8B-Instruct's evaluation) ------------------------
def opencompass_gsm8k_extract(completion: str) -> str:
    """The last number (``-?digits`` with an optional decimal part; a comma splits a
    number) before the first ``Question:``; ``NULL`` when there is none."""
    found = re.findall(r"-?\d+\.\d+|-?\d+", completion.split("Question:")[0])
    return found[-1] if found else "NULL"


def opencompass_gsm8k_score(completion: str, example: Example) -> float:
    pred, gold = opencompass_gsm8k_extract(completion), example.answer
    if pred == gold:
        return 1.0
    try:
        return float(abs(float(pred) - int(gold)) < 1e-6)
    except ValueError:  # 'NULL', or a gold answer that is not an integer
        return 0.0


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
_MINERVA_SUBSTITUTIONS = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""),
    ("mbox", "text"), (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"))
_MINERVA_REMOVED = (
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


def minerva_normalize(final_answer: str) -> str:
    """Minerva's ``normalize_final_answer`` (Lewkowycz et al., appendix D), step for step."""
    final_answer = final_answer.split("=")[-1]
    for before, after in _MINERVA_SUBSTITUTIONS:
        final_answer = final_answer.replace(before, after)
    for expr in _MINERVA_REMOVED:
        final_answer = final_answer.replace(expr, "")
    final_answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", final_answer)
    final_answer = re.sub(r"(\\text\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", final_answer)
    final_answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", final_answer)
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
        try:
            a, b = parse(x1), parse(x2)
        except Exception:  # LaTeXParsingError, SympifyError, TypeError
            return False
        try:
            diff = a - b
        except TypeError:
            return False
        try:
            return bool(sympy.simplify(diff) == 0)
        except ValueError:
            return False
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


# ---- this package's AMC grader (the IGPO-lineage recipe; IGPO ships no evaluation code) --
def amc_score(completion: str, example: Example) -> float:
    """d1's MATH reading (the last box, MATH's normalisation), and also right when both
    answers are numbers of equal value (AMC sets store answers such as ``142.0``)."""
    pred = d1_math_extract(completion)
    if pred is None:
        return 0.0
    if math_equiv(pred, example.answer):
        return 1.0
    try:
        return float(abs(float(pred.replace(",", "")) - float(example.answer)) < 1e-9)
    except ValueError:
        return 0.0


# ---- OpenCompass's MATH grader (LLaDA-8B-Instruct's MATH: math_0shot_gen_11c4b5) --------
def _oc_last_boxed(s: str) -> str | None:
    """OpenCompass's ``last_boxed_only_string``: the last ``\\boxed`` (else ``\\fbox``) up
    to the brace that closes its first ``{``; ``None`` when there is none or it never
    closes."""
    idx = s.rfind("\\boxed")
    if idx < 0:
        idx = s.rfind("\\fbox")
        if idx < 0:
            return None
    depth = 0
    for i in range(idx, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[idx:i + 1]
    return None


def opencompass_boxed_answer(s: str, strip_double_curly_brace: bool = False) -> str | None:
    """OpenCompass's ``extract_boxed_answer``: the inside of the last ``\\boxed{...}``
    (``None`` for ``\\fbox`` or ``\\boxed X``); with the flag, one outer ``{...}`` removed."""
    boxed = _oc_last_boxed(s)
    if boxed is None or not (boxed.startswith("\\boxed{") and boxed.endswith("}")):
        return None
    answer = boxed[len("\\boxed{"):-1]
    if strip_double_curly_brace:
        m = re.match(r"^\{(.*)\}$", answer)
        if m:
            answer = m.group(1)
    return answer


_OC_SUBSTITUTIONS = _MINERVA_SUBSTITUTIONS + (("\\le", "<"),)
_OC_REMOVED = _MINERVA_REMOVED + ("\n", "\r", "\f")


def opencompass_normalize(s: str) -> str:
    """OpenCompass's ``normalize_final_answer`` (datasets/math.py), step for step."""
    for before, after in _OC_SUBSTITUTIONS:
        s = s.replace(before, after)
    for expr in _OC_REMOVED:
        s = s.replace(expr, "")
    s = re.sub(r"(\\text\{)\((.*?)\)(\})", "\\2", s)
    s = re.sub(r"(\\text\{)(.*?)(\})", "\\2", s)
    s = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", s)
    s = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", s)
    s = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", s)
    for pattern in (r"finalansweris(.*)", r"answer?is:?(.*)", r"oxed\{(.*?)\}", r"\$(.*?)\$"):
        found = re.findall(pattern, s)
        if found:
            s = found[-1]
    s = s.strip()
    if "rac" in s and "\\frac" not in s:
        s = s.replace("rac", "\\frac")
    s = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", s)
    s = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", s)
    s = s.replace("$", "")
    if s.replace(",", "").isdigit():
        s = s.replace(",", "")
    return s


def opencompass_math_extract(text: str) -> str:
    """OpenCompass's ``math_postprocess_v2``: the last box (raw, one outer brace pair
    dropped) when it is non-empty; else the first ``.``-separated piece that says "final
    answer" or "answer is", normalised; else the first piece, normalised."""
    candidate = opencompass_boxed_answer(text, strip_double_curly_brace=True)
    if candidate:
        return candidate
    pieces = text.split(".")
    for piece in pieces:
        if re.search("final answer|answer is", piece.lower()):
            return opencompass_normalize(piece)
    return opencompass_normalize(pieces[0])


def _oc_fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr and substr[0] == "{":
            new_str += substr
        elif len(substr) < 2:
            return string
        elif substr[1] != "{":
            new_str += "{" + substr[0] + "}{" + substr[1] + "}" + substr[2:]
        else:
            new_str += "{" + substr[0] + "}" + substr[1:]
    return new_str


def _oc_fix_a_slash_b(s: str) -> str:
    """``a/b`` of integers -> ``\\frac{a}{b}``; a side that is no integer raises
    ``ValueError``, as the reference's ``int()`` does."""
    parts = s.split("/")
    if len(parts) != 2:
        return s
    a, b = int(parts[0]), int(parts[1])
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def opencompass_strip_v2(s) -> str:
    """OpenCompass's ``MATHEvaluator._strip_string_v2``, step for step."""
    s = str(s).strip().replace("\n", "").rstrip(".")
    for old, new in (("\\!", ""), ("\\ ", ""), ("\\\\", "\\"), ("\\\\", "\\"),
                     ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""), ("\\right", "")):
        s = s.replace(old, new)
    without_unit = re.sub(r"\\text{.*?}$", "", s).strip()
    if without_unit != "" and without_unit != s:
        s = without_unit
    for old, new in (("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""), ("$", ""), ("\\text", ""),
                     ("x\\in", ""), ("\\%", ""), ("%", ""), (" .", " 0."), ("{.", "{0."),
                     ("\\cdot", ""), ("infinity", "\\infty")):
        s = s.replace(old, new)
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("+\\inity", "\\infty").replace("and", "").replace("\\mathbf", "")
    s = re.sub(r"\\mbox{.*?}", "", s)
    if "j" in s and "i" not in s:
        s = s.replace("j", "i")
    s = re.sub(r"(\d+)\.0+([^\d])", r"\1\2", s)
    s = re.sub(r"(\d+)\.0+$", r"\1", s)
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    return _oc_fix_a_slash_b(_oc_fix_fracs(s))


def opencompass_math_equiv(pred: str | None, ref: str | None) -> bool:
    """OpenCompass's ``MATHEvaluator(version='v2').is_equiv``: equal after the v2
    stripping, or after stripping and normalising, or after normalising the raw strings,
    or equal raw; a step that raises skips to the next."""
    if pred is None or ref is None:
        return pred is None and ref is None
    try:
        s1, s2 = opencompass_strip_v2(pred), opencompass_strip_v2(ref)
        if s1 == s2:
            return True
        if opencompass_normalize(s1) == opencompass_normalize(s2):
            return True
    except Exception:
        pass
    try:
        if opencompass_normalize(pred) == opencompass_normalize(ref):
            return True
    except Exception:
        pass
    return pred == ref


def opencompass_math_score(completion: str, example: Example) -> float:
    """The reference is the example's answer (this package's MATH source: the unboxed
    last box of the solution, as OpenCompass's loader keeps it)."""
    return float(opencompass_math_equiv(opencompass_math_extract(completion), example.answer))
