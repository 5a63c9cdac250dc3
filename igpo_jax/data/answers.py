"""Answer parsing: where a text states its final answer, and the canonical form of an
answer string. Used by the rewards (grading completions) and by the data sources
(reading a dataset's ground truth); nothing here raises on model output except the
ground-truth readers (:func:`gsm8k_answer`, :func:`metamath_answer`), which name the row.
"""

from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
MAX_ANSWER_CHARS = 200  # longer "answers" are never sent to the symbolic checker



def closing_brace(text: str, start: int) -> int | None:
    """Index of the ``}`` that brings the brace depth counted from ``start`` back to 0
    (the end of the first ``{...}`` at or after ``start``; a ``}`` before any ``{`` does
    not end it); ``None`` when the braces never close."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return None

def _boxed_spans(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` (and ``\\boxed 5``) in order;
    an unbalanced box ends the scan."""
    out: list[str] = []
    if not isinstance(text, str):
        return out
    pos = 0
    while True:
        starts = [i for i in (text.find(c, pos) for c in _BOX_COMMANDS) if i >= 0]
        if not starts:
            return out
        start = min(starts)
        cmd = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
        i = start + len(cmd)
        pos = start + 1
        if i < len(text) and text[i] == " ":  # "\boxed 5": up to the next space or $
            m = re.match(r" +([^\s$]+)", text[i:])
            if m:
                out.append(m.group(1))
        elif i < len(text) and text[i] == "{":
            j = closing_brace(text, i)
            if j is None:
                return out  # unbalanced: nothing after it counts
            out.append(text[i + 1:j])
            pos = j + 1


def extract_boxed(text: str, which: str = "first") -> str | None:
    """Content of the first (or ``which="last"``) brace-matched ``\\boxed{...}``."""
    spans = _boxed_spans(text)
    if not spans:
        return None
    return spans[0] if which == "first" else spans[-1]


def extract_answer(text: str) -> str | None:
    """The final answer where the output format puts it.

    Inside the last ``<answer>...</answer>`` span when there is one: its last box, or
    the span's text when it holds no box. Without an answer span: the last box of
    the text. Boxes inside the reasoning (MATH-style traces often box intermediate
    results) never count when an answer span exists.
    """
    if not isinstance(text, str):
        return None
    k = text.rfind("<answer>")
    if k < 0:
        return extract_boxed(text, "last")
    span = text[k + len("<answer>"):]
    end = span.find("</answer>")
    span = span if end < 0 else span[:end]
    boxed = extract_boxed(span, "last")
    if boxed is not None:
        return boxed
    span = span.strip()
    return span if span and len(span) <= MAX_ANSWER_CHARS else None


# Strings that mark where a trace states its final answer: hints never reveal them
# or anything after the first of them (rl/igpo.py, data.split_trace).
ANSWER_MARKERS = ("<answer>", "\\boxed", "\\fbox", "The answer is")


def gsm8k_answer(answer_field: str) -> str:
    """GSM8K ground truth: the number after ``####``."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer has no '####': {answer_field[-80:]!r}")
    return answer_field.split("####")[-1].strip().replace(",", "")


def metamath_answer(response: str) -> str:
    """MetaMathQA ground truth: the text after ``The answer is:``."""
    if "The answer is:" not in response:
        raise ValueError(f"MetaMathQA response has no 'The answer is:': {response[-80:]!r}")
    return response.split("The answer is:")[-1].strip()


_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_UNIT_WORDS = ("dollars", "dollar", "cents", "cm", "meters", "units", "degrees", "inches",
               "feet", "hours", "minutes", "miles", "km", "kg", "pounds")


def normalize(ans: str) -> str:
    """Canonical string form: no $, spaces, \\left/\\right, units, thousands separators."""
    s = str(ans).strip()
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", "")
    s = s.replace("\\$", "").replace("$", "").replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\circ", "")
    s = s.replace("\\%", "").replace("%", "")
    s = _TEXT_RE.sub(r"\1", s)
    s = s.strip().rstrip(".").strip()
    for unit in _UNIT_WORDS:
        s = re.sub(rf"(?<=\d)\s*{unit}$", "", s)
    s = re.sub(r"(?<=\d),(?=\d{3}(\D|$))", "", s)  # 1,000 -> 1000
    s = s.replace(" ", "")
    if s.startswith("x=") or s.startswith("y="):
        s = s[2:]
    frac = re.fullmatch(r"\\frac\{?(-?\d+)\}?\{?(-?\d+)\}?", s)
    if frac and int(frac.group(2)) != 0:
        s = _number_str(int(frac.group(1)) / int(frac.group(2)))
    elif re.fullmatch(r"-?\d+/\d+", s) and int(s.split("/")[1]) != 0:
        a, b = s.split("/")
        s = _number_str(int(a) / int(b))
    elif re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", s):
        s = _number_str(float(s))
    return s


def _number_str(x: float) -> str:
    return str(int(round(x))) if abs(x - round(x)) < 1e-9 else repr(round(x, 9))
