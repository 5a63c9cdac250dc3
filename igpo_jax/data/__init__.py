"""Data: the Example record, sources, and grain pipelines."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Example:
    """One problem: what the model sees, the graded answer, the reference completion.

    ``trace`` is the ground-truth completion in the recipe's format
    (``<reasoning>...</reasoning>\\n<answer>\\n\\boxed{...}\\n</answer>``); IGPO
    builds hints from it and SFT trains on it. It may be empty for eval-only data.
    """

    question: str
    answer: str
    trace: str = ""
    meta: str = ""  # e.g. "n_terms=4" or the source file and line


def format_trace(reasoning: str, answer: str) -> str:
    """The recipe's completion format around a reasoning text and a final answer."""
    return (f"<reasoning>\n{reasoning.strip()}\n</reasoning>\n<answer>\n\\boxed{{{answer}}}\n"
            f"</answer>")


def split_trace(trace: str, exclude_last_step: bool = False) -> tuple[str, str]:
    """Cuts a trace into (revealable prefix, rest) for IGPO hints.

    Nothing from the first answer marker on is revealable (``<answer>``, a
    ``\\boxed`` / ``\\fbox`` anywhere, also inside the reasoning as MATH-style
    solutions write them, ``The answer is``): a hint never shows an answer marker or
    what it marks. With ``exclude_last_step`` the last reasoning line before that cut
    is not revealable either (it usually states the answer value). A trace without
    any marker is revealable up to its end.
    """
    from igpo_jax.data.answers import ANSWER_MARKERS
    cuts = [i for i in (trace.find(m) for m in ANSWER_MARKERS) if i >= 0]
    cut = min(cuts) if cuts else len(trace)
    if exclude_last_step:
        end = trace.find("</reasoning>")
        end = cut if end < 0 else min(end, cut)
        body = trace[:end].rstrip("\n")
        last = body.rfind("\n")
        cut = min(cut, last + 1 if last >= 0 else 0)
    return trace[:cut], trace[cut:]
