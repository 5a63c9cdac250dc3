"""d1's graders (``dllm-reasoning/d1``, ``eval/``), re-written: GSM8K (the first
``\\boxed{...}`` number, else the last number), MATH500 (the last box, Hendrycks-style
normalisation with the raw strings as a fallback), Countdown (an expression over the
given numbers, each once, equal to the target) and 4x4 Sudoku (the share of blanks filled
right); and this package's AMC grader, which reads answers as d1's MATH grader does."""

from __future__ import annotations

import re

from igpo_jax.data import Example, planning
from igpo_jax.data.answers import closing_brace


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
    end = closing_brace(text, start)
    return None if end is None else text[start:end + 1]


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
