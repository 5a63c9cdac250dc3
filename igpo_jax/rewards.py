"""Math rewards: answer equivalence and the xmlcount format reward (answer extraction
is in ``data/answers.py``).

docs/ALGORITHM.md section 6. Nothing here raises on model output: garbage, empty or huge
strings score 0. Symbolic equivalence (math-verify) runs in a separate, killable
worker process with a wall-clock bound (:class:`_Grader`), so no model output can
hang the trainer, and the reward is safe to call from any thread.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import re
import threading
import time

from igpo_jax.data.answers import MAX_ANSWER_CHARS, extract_answer, normalize
from igpo_jax.sections import Section, check, field

log = logging.getLogger(__name__)

def _math_verify_equal(pred: str, gold: str) -> bool:
    import math_verify
    # Timeouts are ours (a bounded future), not math-verify's signal alarms, which
    # only work in the main thread; silence its warning about that.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold_p = math_verify.parse("$" + gold + "$", parsing_timeout=None)
    pred_p = math_verify.parse("$" + pred + "$", parsing_timeout=None)
    if not gold_p or not pred_p:
        return False
    return bool(math_verify.verify(gold_p, pred_p, timeout_seconds=None))


def serve() -> None:
    """The grading worker (``python -m igpo_jax.rewards``): imports math-verify, says
    ``ready``, then answers one JSON line ``[equivalent, failed]`` per JSON line
    ``[pred, gold]`` read from stdin, until EOF."""
    import json
    import sys
    delay = float(os.environ.get("IGPO_TEST_SLOW_GRADER_START", "0"))  # tests: a slow import
    if delay:
        time.sleep(delay)
    import math_verify  # noqa: F401  (imported before any check is timed)
    out = sys.stdout
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        try:
            pred, gold = json.loads(line)
            res = [bool(_math_verify_equal(pred, gold)), False]
        except Exception:  # noqa: BLE001 - a reward never raises on model output
            res = [False, True]
        out.write(json.dumps(res) + "\n")
        out.flush()


class _Grader:
    """One killable worker process for symbolic checks.

    sympy can work for minutes (or exhaust memory) on inputs such as ``10^{10^{10}}``
    while holding the GIL, so a thread with a timeout cannot bound it. The worker is a
    separate Python process (``python -m igpo_jax.rewards``: no fork of a JAX process,
    no re-import of the caller's script), started once; a check that overruns its
    time kills it and the next check starts a fresh one. Start-up (the math-verify
    import) is waited for before any check is timed, so a loaded machine changes no
    result. Checks from several threads are serialised.
    """

    START_TIMEOUT = 300.0

    def __init__(self, command: list[str] | None = None):
        import sys
        self.command = command or [sys.executable, "-m", "igpo_jax.rewards"]
        self.proc = None
        self.lock = threading.Lock()
        self.restarts = 0

    def _readline(self, timeout: float) -> str | None:
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if ready else None

    def _start(self) -> None:
        import subprocess
        self.proc = subprocess.Popen(self.command,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        if (self._readline(self.START_TIMEOUT) or "").strip() != '"ready"':
            self._stop()
            raise RuntimeError(f"the math-verify grading process did not start within "
                               f"{self.START_TIMEOUT:.0f}s")

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            for f in (self.proc.stdin, self.proc.stdout):
                f.close()
        self.proc = None

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def warm_up(self) -> None:
        """Starts the worker now (e.g. before a training loop), not inside a check."""
        with self.lock:
            if not self._alive():
                self._start()

    def check(self, pred: str, gold: str, timeout: float) -> tuple[bool, bool]:
        import json
        with self.lock:
            if not self._alive():
                self._start()
            try:
                self.proc.stdin.write(json.dumps([pred, gold]) + "\n")
                self.proc.stdin.flush()
                line = self._readline(timeout)
                if line:
                    ok, failed = json.loads(line)
                    return bool(ok), bool(failed)
                if line is not None:  # EOF: the worker died (e.g. out of memory)
                    self._stop()
                    return False, True
            except (OSError, ValueError):
                self._stop()
                return False, True
            log.warning("equivalence check timed out after %.1fs: %r vs %r; restarting the "
                        "grading process", timeout, pred[:50], gold[:50])
            self._stop()
            self.restarts += 1
            return False, True


GRADER = _Grader()
atexit.register(GRADER._stop)
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)")


def check_equiv(pred: str | None, gold: str, timeout: float = 2.0, symbolic: bool = True
                ) -> tuple[bool, bool]:
    """(equivalent, failed): ``failed`` when the check crashed or timed out (scored 0).

    Whatever the text holds, this returns within about ``timeout`` seconds (plus the
    grading process's one-time start-up, which is not timed)."""
    if pred is None or gold is None:
        return False, False
    try:
        p, g = normalize(pred), normalize(gold)
        if p == g:
            return True, False
        if _NUMBER.fullmatch(p) and _NUMBER.fullmatch(g):
            return False, False  # two different plain numbers: nothing symbolic to find
        if not symbolic or len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
            return False, False
        return GRADER.check(p or pred, g or gold, timeout)
    except Exception:  # noqa: BLE001 - a reward never raises on model output
        return False, True


def is_equiv(pred: str | None, gold: str, timeout: float = 2.0, symbolic: bool = True) -> bool:
    """Mathematical equivalence of an extracted answer and the ground truth.

    Normalised string equality first; then math-verify (symbolic, fractions vs
    decimals, percentages), bounded by ``timeout`` seconds. Never raises.
    """
    return check_equiv(pred, gold, timeout, symbolic)[0]


def format_reward(text: str) -> float:
    """xmlcount: 0.125 per tag present exactly once, +0.25 for ``\\boxed{`` (max 0.75)."""
    if not isinstance(text, str):
        return 0.0
    score = sum(0.125 for tag in ("<reasoning>\n", "</reasoning>", "<answer>\n", "</answer>")
                if text.count(tag) == 1)
    return score + (0.25 if "\\boxed{" in text else 0.0)


@dataclasses.dataclass(frozen=True)
class MathReward:
    """Correctness (``correct_weight`` or 0) plus ``format_weight`` x xmlcount."""

    correct_weight: float = 3.0
    format_weight: float = 1.0
    timeout: float = 2.0
    symbolic: bool = True

    @classmethod
    def from_config(cls, reward_cfg) -> "MathReward":
        """From the ``reward`` section of a config."""
        return cls(reward_cfg.correct_weight, reward_cfg.format_weight, reward_cfg.timeout)

    def score(self, completion: str, gold: str) -> tuple[float, bool, bool]:
        """(reward, correct, failed); a crash or timeout scores 0 and sets ``failed``."""
        try:
            ok, failed = check_equiv(extract_answer(completion), gold, self.timeout,
                                     self.symbolic)
            if failed:
                return 0.0, False, True
            return (self.correct_weight * ok + self.format_weight * format_reward(completion),
                    ok, False)
        except Exception:  # noqa: BLE001
            log.exception("reward failed; scoring 0")
            return 0.0, False, True

    def __call__(self, completion: str, gold: str) -> tuple[float, bool]:
        """(reward, correct)."""
        return self.score(completion, gold)[:2]

    def batch(self, completions: list[str], golds: list[str]
              ) -> tuple[list[float], list[bool], int]:
        """Rewards, correctness, and the number of failed (crashed / timed-out) checks."""
        out = [self.score(c, g) for c, g in zip(completions, golds)]
        return [r for r, _, _ in out], [c for _, c, _ in out], sum(f for _, _, f in out)


@dataclasses.dataclass(frozen=True)
class CountdownReward(MathReward):
    """d1's Countdown: ``correct_weight`` when the expression uses every given number
    once and equals the target (``data/planning.py``), plus the format reward. The
    gold answer is ``a,b,c=target``."""

    def score(self, completion: str, gold: str) -> tuple[float, bool, bool]:
        from igpo_jax.data import planning
        numbers, target = planning.parse_countdown_gold(gold)
        ok = planning.countdown_correct(planning.countdown_expression(completion), numbers,
                                        target)
        return self.correct_weight * ok + self.format_weight * format_reward(completion), ok, \
            False


@dataclasses.dataclass(frozen=True)
class SudokuReward(MathReward):
    """d1's 4x4 Sudoku: ``correct_weight`` x the fraction of blanks filled with the
    solution's digit (d1's cell accuracy), plus the format reward; *correct* when the
    whole grid is a solution that keeps the clues. The gold answer is
    ``PUZZLE:SOLUTION``."""

    def score(self, completion: str, gold: str) -> tuple[float, bool, bool]:
        from igpo_jax.data import planning
        puzzle, solution = planning.parse_sudoku_gold(gold)
        grid = planning.sudoku_grid(completion)
        right, blanks = planning.sudoku_cells(grid, puzzle, solution)
        ok = planning.sudoku_valid(grid, puzzle)
        return (self.correct_weight * right / max(blanks, 1) +
                self.format_weight * format_reward(completion), ok, False)


# Rewards by name (``reward.name``). A reward is an object with ``score(completion,
# gold) -> (reward, correct, failed)``, ``__call__(completion, gold) -> (reward,
# correct)`` and ``batch(completions, golds) -> (rewards, correct, failures)``;
# subclassing MathReward gives the last two. ``correct`` is what IGPO's trigger
# and the accuracy metrics use. Each entry builds one from the ``reward`` section.
REWARDS = {"math": MathReward.from_config, "countdown": CountdownReward.from_config,
           "sudoku": SudokuReward.from_config}


@dataclasses.dataclass(frozen=True)
class RewardConfig(Section):
    """The config's ``reward`` section (``name`` from :data:`REWARDS`)."""

    name: str = field("math", "math | countdown | sudoku (a name in rewards.REWARDS)")
    correct_weight: float = field(3.0, "reward of a correct final answer")
    format_weight: float = field(1.0, "weight of the xmlcount format reward (max 0.75)")
    timeout: float = field(2.0, "seconds a symbolic equivalence check may take (then it scores 0)")

    def __post_init__(self):
        check(self.name in REWARDS, "reward.name", self.name,
              f"expected one of {tuple(REWARDS)}")
        check(self.timeout > 0, "reward.timeout", self.timeout, "must be > 0 seconds")


def from_config(reward_cfg):
    """The reward ``reward.name`` names, built from the ``reward`` section."""
    name = reward_cfg.get("name", "math")
    if name not in REWARDS:
        raise ValueError(f"reward.name={name!r}; expected one of {tuple(REWARDS)}")
    return REWARDS[name](reward_cfg)


if __name__ == "__main__":
    serve()
