"""OpenCompass's graders, re-written (LLaDA-8B-Instruct's evaluation, ``EVAL.md``): GSM8K
(the last number before any ``Question:``) and MATH (``math_postprocess_v2`` and
``MATHEvaluator(version='v2')`` of ``opencompass/datasets/math.py``)."""

from __future__ import annotations

import re

from igpo_jax.data import Example
from igpo_jax.data.answers import closing_brace
from igpo_jax.graders.lm_eval import MINERVA_REMOVED, MINERVA_SUBSTITUTIONS, unwrap_markup


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
    end = closing_brace(s, idx)
    return None if end is None else s[idx:end + 1]


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


_OC_SUBSTITUTIONS = MINERVA_SUBSTITUTIONS + (("\\le", "<"),)
_OC_REMOVED = MINERVA_REMOVED + ("\n", "\r", "\f")


def opencompass_normalize(s: str) -> str:
    """OpenCompass's ``normalize_final_answer`` (datasets/math.py), step for step."""
    for before, after in _OC_SUBSTITUTIONS:
        s = s.replace(before, after)
    for expr in _OC_REMOVED:
        s = s.replace(expr, "")
    s = unwrap_markup(re.sub(r"(\\text\{)\((.*?)\)(\})", "\\2", s))
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
