"""d1's two planning tasks: Countdown (3 numbers) and 4x4 Sudoku.

Both come as data sources (``data.source=countdown`` / ``sudoku``): read from d1's
files when ``data.train_path`` / ``data.test_path`` name them, or generated offline by
the rules d1's data follow when they are empty (``data.planning``). Their graders
(:func:`countdown_correct`, :func:`sudoku_cells`) are the rewards of the same names.

Countdown: the question gives numbers and a target (d1: ``Numbers: [30, 100, 93]\\n
Target: 23``); a completion is correct when its expression (the last ``\\boxed{}``;
without one, as in d1, the whole text; the ``<answer>`` block when a box is left
unclosed; an ``= target`` tail dropped) uses each given number exactly once (as a
multiset: no other literal), only ``+ - * /`` and parentheses, and equals the target
within 1e-5 (real division, computed exactly here). d1's ``eval`` would also take
``**`` and ``//``; here they score 0 (a power tower would never finish). The gold answer
is written ``30,100,93=23``. d1's test file: 3 numbers and a target, all in 1..100.

Sudoku: a 16-character row-major puzzle, ``0`` for a blank, 2x2 boxes. The gold
answer is ``PUZZLE:SOLUTION``. A completion's grid is read as d1 reads it (the first
non-empty of: a fenced block in ``<answer>``, the ``<answer>`` text, what follows
``</answer>``, 16 digits before ``</answer>``, any 16 digits; whitespace removed,
right-padded with ``0`` / cut to 16); its score is the fraction of blanks filled with
the solution's digit (d1's metric: cell accuracy), and it is *correct* when every
blank is filled so that the grid keeps the clues and every row, column and box
holds 1-4 once. d1's test puzzles have 8 blanks and one solution each.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import itertools
import operator
import re
from fractions import Fraction


from igpo_jax.data import Example, answers, format_trace, synthetic
from igpo_jax.sections import Section, check, field


# ---- Countdown --------------------------------------------------------------------
def countdown_question(numbers: list[int], target: int) -> str:
    return f"Numbers: {list(numbers)}\nTarget: {target}"


def countdown_gold(numbers: list[int], target: int) -> str:
    return ",".join(str(n) for n in numbers) + f"={target}"


def parse_countdown_gold(gold: str) -> tuple[list[int], int]:
    m = re.fullmatch(r"\s*(\d+(?:\s*,\s*\d+)*)\s*=\s*(-?\d+)\s*", gold)
    if not m:
        raise ValueError(f"countdown answer {gold!r}; expected 'a,b,c=target'")
    return [int(n) for n in m.group(1).split(",")], int(m.group(2))


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}
_ALLOWED = re.compile(r"^[\d+\-*/().\s]+$")


def _eval(node) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))  # 1/0 raises
    raise ValueError("not + - * / arithmetic")


def countdown_expression(completion: str) -> str:
    """The expression a completion proposes, as d1's grader extracts it."""
    text = completion if isinstance(completion, str) else ""
    boxed = answers.extract_boxed(text, "last")
    # d1: the last box's content; without a box, the whole text (its <answer> block
    # is read only when a box is left unclosed)
    if boxed is not None:
        expr = boxed
    elif re.search(r"\\boxed\s*\{", text):
        m = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
        expr = m.group(1) if m else text
    else:
        expr = text
    expr = expr.replace(r"\div", "/").replace(r"\times", "*").replace(r"\cdot", "*")
    m = re.search(r"([0-9+\-*/() ]+)=[0-9. ]+", expr)
    return (m.group(1) if m else expr).strip()


def countdown_correct(expr: str, numbers: list[int], target: int) -> bool:
    """Each number used exactly once (multiset of the literals), only + - * / and
    parentheses, value within 1e-5 of the target (exact rational arithmetic here)."""
    if sorted(int(n) for n in re.findall(r"\d+", expr)) != sorted(numbers):
        return False
    if not _ALLOWED.match(expr) or "**" in expr or "//" in expr:
        return False
    try:
        value = _eval(ast.parse(expr.strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return False
    return abs(float(value) - target) < 1e-5


def _countdown_trees(values: list[tuple[Fraction, str]]):
    """Every (value, expression, steps) reachable by combining all ``values`` pairwise."""
    if len(values) == 1:
        yield values[0][0], values[0][1], []
        return
    for i, j in itertools.permutations(range(len(values)), 2):
        (a, ea), (b, eb) = values[i], values[j]
        rest = [v for k, v in enumerate(values) if k not in (i, j)]
        for sym, fn in (("+", operator.add), ("-", operator.sub), ("*", operator.mul),
                        ("/", operator.truediv)):
            if (sym in "+*" and i > j) or (sym == "/" and b == 0):
                continue
            v = fn(a, b)
            expr = f"({ea}{sym}{eb})"
            step = f"{_num(a)}{sym}{_num(b)}={_num(v)}"
            for value, full, steps in _countdown_trees(rest + [(v, expr)]):
                yield value, full, [step] + steps


def _num(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _strip_outer(expr: str) -> str:
    return expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr


def solve_countdown(numbers: list[int], target: int) -> tuple[str, list[str]] | None:
    """An expression using every number once that equals ``target``, and its steps
    (``100-93=7``, ``30-7=23``), or None."""
    found = None
    for value, expr, steps in _countdown_trees([(Fraction(n), str(n)) for n in numbers]):
        if value == target:
            if all(re.fullmatch(r".*=\d+", st) for st in steps):  # whole, >= 0 on the way
                return _strip_outer(expr), steps
            found = found or (_strip_outer(expr), steps)
    return found


def make_countdown_example(numbers: list[int], target: int, meta: str = "") -> Example:
    solved = solve_countdown(numbers, target)
    trace = format_trace("\n".join(solved[1]), solved[0]) if solved else ""
    return Example(countdown_question(numbers, target), countdown_gold(numbers, target),
                   trace, meta)


def generate_countdown(num: int, split: str, seed: int = 0, n_numbers: int = 3, lo: int = 1,
                       hi: int = 100, heldout_share: float = 0.2) -> list[Example]:
    """``n_numbers`` numbers in [lo, hi] and a target in [lo, hi] reached by combining
    all of them with + - * / (the shape of d1's test file). Train and held-out problems
    are split by a hash of the problem (disjoint for any seed); held-out ones are
    distinct."""
    def draw(rng):
        while True:
            numbers = [int(x) for x in rng.integers(lo, hi + 1, n_numbers)]
            reachable = sorted({int(v) for v, _, _ in _countdown_trees(
                [(Fraction(n), str(n)) for n in numbers])
                if v.denominator == 1 and lo <= v <= hi})
            if reachable:
                return numbers, int(rng.choice(reachable))
    return synthetic._draw(num, split, seed, heldout_share, f"{n_numbers} numbers", draw,
                           lambda p: countdown_gold(*p),
                           lambda p: make_countdown_example(*p, meta=f"countdown n={n_numbers}"))


# ---- Sudoku (4x4) -------------------------------------------------------------------
def _units():
    rows = [[4 * r + c for c in range(4)] for r in range(4)]
    cols = [[4 * r + c for r in range(4)] for c in range(4)]
    boxes = [[4 * (br + r) + bc + c for r in range(2) for c in range(2)]
             for br in (0, 2) for bc in (0, 2)]
    return rows + cols + boxes


UNITS = _units()


def sudoku_valid(grid: str, puzzle: str) -> bool:
    """A full grid of 1-4 that keeps the puzzle's clues and holds 1-4 once in every
    row, column and 2x2 box."""
    if not re.fullmatch(r"[1-4]{16}", grid):
        return False
    if any(p != "0" and p != g for p, g in zip(puzzle, grid)):
        return False
    return all(sorted(grid[i] for i in unit) == ["1", "2", "3", "4"] for unit in UNITS)


def sudoku_solutions(puzzle: str, limit: int = 2) -> list[str]:
    """Up to ``limit`` solutions of a 4x4 puzzle (backtracking)."""
    cells = list(puzzle)
    found: list[str] = []

    def fill():
        if len(found) >= limit:
            return
        try:
            i = cells.index("0")
        except ValueError:
            found.append("".join(cells))
            return
        used = {cells[j] for unit in UNITS if i in unit for j in unit}
        for d in "1234":
            if d not in used:
                cells[i] = d
                fill()
                cells[i] = "0"
    fill()
    return found


def generate_sudoku(num: int, split: str, seed: int = 0, blanks: int = 8,
                    heldout_share: float = 0.2) -> list[Example]:
    """Puzzles with exactly ``blanks`` blanks and one solution: a random valid grid
    (digits relabelled, rows and columns permuted within and across bands, maybe
    transposed), then cells blanked in random order while the solution stays unique.
    Split by a hash of the puzzle like :func:`generate_countdown`."""
    if not 1 <= blanks <= 12:
        raise ValueError(f"sudoku blanks={blanks}; a 4x4 puzzle with one solution has 1..12")
    base = "1234341221434321"

    def draw(rng):
        while True:
            digits = dict(zip("1234", (str(d) for d in rng.permutation([1, 2, 3, 4]))))
            bands = [list(rng.permutation([0, 1])), list(rng.permutation([2, 3]))]
            rows = [r for band in (bands if rng.random() < 0.5 else bands[::-1]) for r in band]
            stacks = [list(rng.permutation([0, 1])), list(rng.permutation([2, 3]))]
            cols = [c for st in (stacks if rng.random() < 0.5 else stacks[::-1]) for c in st]
            grid = [[digits[base[4 * r + c]] for c in cols] for r in rows]
            if rng.random() < 0.5:
                grid = [list(col) for col in zip(*grid)]
            solution = "".join("".join(r) for r in grid)
            puzzle, removed = list(solution), 0
            for i in rng.permutation(16):
                if removed == blanks:
                    break
                keep, puzzle[i] = puzzle[i], "0"
                if len(sudoku_solutions("".join(puzzle))) == 1:
                    removed += 1
                else:
                    puzzle[i] = keep
            if removed == blanks:
                return "".join(puzzle), solution
    return synthetic._draw(num, split, seed, heldout_share, f"{blanks} blanks", draw,
                           lambda p: p[0],
                           lambda p: make_sudoku_example(*p, meta=f"sudoku blanks={blanks}"))


def sudoku_question(puzzle: str) -> str:
    return f"Solve the following Sudoku puzzle: {puzzle}\n"


def make_sudoku_example(puzzle: str, solution: str, meta: str = "") -> Example:
    steps = [f"r{i // 4 + 1}c{i % 4 + 1}={solution[i]}" for i in range(16) if puzzle[i] == "0"]
    trace = ("<reasoning>\n" + "\n".join(steps) + "\n</reasoning>\n<answer>\n" + solution +
             "\n</answer>")
    return Example(sudoku_question(puzzle), f"{puzzle}:{solution}", trace, meta)


def parse_sudoku_gold(gold: str) -> tuple[str, str]:
    m = re.fullmatch(r"\s*([0-4]{16})\s*:\s*([1-4]{16})\s*", gold)
    if not m:
        raise ValueError(f"sudoku answer {gold!r}; expected 'PUZZLE:SOLUTION' (16 digits each)")
    return m.group(1), m.group(2)


_GRID_PATTERNS = (r"<answer>.*?```\s*([\d\s]+)```",
                  r"<answer>(.*?)(?:<\|eot_id\|>|<\|endoftext\|>|</answer>)",
                  r"</answer>\s*(.*?)(?:<\|eot_id\|>|<\|endoftext\|>|$)",
                  r".*?(\d{16})\s*</answer>",
                  r"\b(\d{16})\b")


def sudoku_grid(completion: str) -> str:
    """The 16 characters a completion answers, read as d1's grader reads them."""
    text = completion if isinstance(completion, str) else ""
    for pattern in _GRID_PATTERNS:
        m = re.search(pattern, text, re.DOTALL)
        if m and m.group(1).strip():
            s = re.sub(r"\s", "", m.group(1).strip())
            return (s + "0" * 16)[:16]
    return "0" * 16


def sudoku_cells(grid: str, puzzle: str, solution: str) -> tuple[int, int]:
    """(blanks filled with the solution's digit, blanks)."""
    blanks = [i for i, p in enumerate(puzzle) if p == "0"]
    return sum(grid[i] == solution[i] for i in blanks), len(blanks)


# ---- sources -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PlanningConfig(Section):
    """``data.planning``: the offline Countdown / Sudoku problems (used when the
    source's file paths are empty)."""

    num_train: int = field(20000, "generated training problems")
    num_test: int = field(256, "generated held-out problems (d1 evaluates 256 of each task)")
    countdown_numbers: int = field(3, "countdown: numbers per problem (d1: 3)")
    countdown_max: int = field(100, "countdown: numbers and targets lie in 1..this (d1: 100)")
    sudoku_blanks: int = field(8, "sudoku: blanks per puzzle (d1's test puzzles: 8)")

    def __post_init__(self):
        check(self.countdown_numbers >= 2, "data.planning.countdown_numbers",
              self.countdown_numbers, "needs at least 2 numbers")
        check(1 <= self.sudoku_blanks <= 12, "data.planning.sudoku_blanks", self.sudoku_blanks,
              "a 4x4 puzzle with one solution has 1..12 blanks")


def countdown_row(row, where: str) -> Example:
    """A row of d1's ``countdown_cd3_test.jsonl`` (``input: "30,100,93"``, ``output:
    "23"``) or of Countdown-Tasks-3to4 (``nums: [...]``, ``target: N``)."""
    try:
        if "nums" in row:
            numbers, target = [int(n) for n in row["nums"]], int(row["target"])
        else:
            numbers = [int(n) for n in str(row["input"]).split(",")]
            target = int(row["output"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: not a countdown row (input/output or nums/target): {e}"
                         ) from None
    return make_countdown_example(numbers, target, where)


def sudoku_row(row, where: str) -> Example:
    """A d1 Sudoku row (``Puzzle``, ``Solution``: 16 digits, 0 = blank), also with
    lower-case keys or Dream's ``input`` / ``output`` grids (4 lines of 4)."""
    get = {k.lower(): v for k, v in row.items()} if isinstance(row, dict) else {}
    puzzle = str(get.get("puzzle", get.get("input", ""))).replace("\n", "").strip()
    solution = str(get.get("solution", get.get("output", ""))).replace("\n", "").strip()
    if not re.fullmatch(r"[0-4]{16}", puzzle) or not sudoku_valid(solution, puzzle):
        raise ValueError(f"{where}: not a 4x4 sudoku row with a valid solution "
                         f"(puzzle {puzzle!r}, solution {solution!r})")
    return make_sudoku_example(puzzle, solution, where)


def read_csv_rows(text: str) -> list[tuple[int, dict]]:
    return [(n, row) for n, row in enumerate(csv.DictReader(io.StringIO(text)), start=2)]
