"""d1's planning tasks: Countdown and 4x4 Sudoku (generation, files, graders, rewards)."""

import itertools
import json
import re
from fractions import Fraction

import pytest

from igpo_jax import configlib, rewards
from igpo_jax.data import planning, sources


# ---- Countdown ----------------------------------------------------------------------
@pytest.mark.parametrize("expr,ok", [
    ("30-(100-93)", True),        # 30 - 7 = 23
    ("(30+93)-100", True),
    ("30 - ( 100 - 93 )", True),  # spaces
    ("100-93+30", False),         # 37
    ("30+30-37", False),          # 30 twice, 100 and 93 missing
    ("30-(100-93)+0", False),     # an extra literal
    ("30-(100-93", False),        # unbalanced
    ("30-(100-93)*1", False),     # extra literal 1
    ("23", False),
    ("30-(100**1-93)", False),    # power (and a literal 1)
    ("93-100+30", True),
    ("x+30-(100-93)", False),     # a letter
])
def test_countdown_grader_on_hand_worked_cases(expr, ok):
    assert planning.countdown_correct(expr, [30, 100, 93], 23) is ok


def test_countdown_real_division_and_division_by_zero():
    assert planning.countdown_correct("(90-6)/7", [90, 6, 7], 12)
    assert planning.countdown_correct("90/6/7", [90, 6, 7], 2) is False  # 2.142..., not floor
    assert planning.countdown_correct("6/(7-7)", [6, 7, 7], 0) is False
    # 8/(3-8/3) = 24 needs exact arithmetic to land within 1e-5 of the target
    assert planning.countdown_correct("8/(3-8/3)", [8, 3, 8, 3], 24)


@pytest.mark.parametrize("completion,expr", [
    ("<reasoning>\n100-93=7\n</reasoning>\n<answer>\n\\boxed{30-(100-93)}\n</answer>",
     "30-(100-93)"),
    ("\\boxed{1+2} then \\boxed{30-(100-93) = 23}", "30-(100-93)"),  # the last box, "= 23" cut
    ("\\boxed{30 \\times 2 \\div 3}", "30 * 2 / 3"),
])
def test_countdown_expression_is_read_as_d1_reads_it(completion, expr):
    assert planning.countdown_expression(completion) == expr


def test_countdown_without_a_box_reads_the_whole_text_as_d1_does():
    # d1 reads the whole completion when it has no box, so the reasoning's numbers
    # count as literals and the answer fails; the same answer in a box passes
    plain = "<reasoning>\n100-93=7\n</reasoning>\n<answer>\n30-(100-93)\n</answer>"
    boxed = plain.replace("30-(100-93)", "\\boxed{30-(100-93)}")
    gold = planning.countdown_gold([30, 100, 93], 23)
    reward = rewards.CountdownReward()
    assert reward.score(plain, gold)[1] is False
    r, ok, failed = reward.score(boxed, gold)
    assert ok and not failed and r == 3.0 + rewards.format_reward(boxed)
    assert planning.countdown_correct(planning.countdown_expression("30-(100-93)"), [30, 100, 93],
                                      23)


def test_generated_countdown_problems_are_solvable_distinct_and_split():
    train = planning.generate_countdown(300, "train", seed=1)
    test = planning.generate_countdown(200, "test", seed=1)
    assert train == planning.generate_countdown(300, "train", seed=1)
    assert {e.question for e in train}.isdisjoint({e.question for e in test})
    assert len({e.question for e in test}) == 200
    for e in train[:100] + test[:100]:
        numbers, target = planning.parse_countdown_gold(e.answer)
        assert e.question == f"Numbers: {numbers}\nTarget: {target}"
        assert len(numbers) == 3 and all(1 <= n <= 100 for n in numbers) and 1 <= target <= 100
        expr = re.search(r"\\boxed\{(.*)\}", e.trace).group(1)
        # an independent check of the shipped solution: Python's own arithmetic
        assert sorted(int(n) for n in re.findall(r"\d+", expr)) == sorted(numbers)
        assert abs(eval(expr, {"__builtins__": {}}) - target) < 1e-9  # noqa: S307
        assert rewards.CountdownReward().score(e.trace, e.answer)[1]
        # every reasoning line is an arithmetic fact
        for line in e.trace.split("<reasoning>\n")[1].split("\n</reasoning>")[0].split("\n"):
            lhs, rhs = line.split("=")
            assert Fraction(eval(lhs, {"__builtins__": {}})) == Fraction(rhs)  # noqa: S307


# ---- Sudoku -------------------------------------------------------------------------
def _all_grids():
    """Every valid 4x4 Sudoku grid, by brute force over row permutations."""
    perms = ["".join(p) for p in itertools.permutations("1234")]
    out = []
    for rows in itertools.product(perms, repeat=4):
        cols_ok = all(len({r[c] for r in rows}) == 4 for c in range(4))
        boxes_ok = all(len({rows[r][c] for r in (br, br + 1) for c in (bc, bc + 1)}) == 4
                       for br in (0, 2) for bc in (0, 2))
        if cols_ok and boxes_ok:
            out.append("".join(rows))
    return out


def test_generated_sudoku_puzzles_have_8_blanks_and_one_solution():
    grids = _all_grids()
    assert len(grids) == 288  # the known count of 4x4 Sudoku grids
    train = planning.generate_sudoku(100, "train", seed=2)
    test = planning.generate_sudoku(100, "test", seed=2)
    assert {e.question for e in train}.isdisjoint({e.question for e in test})
    assert len({e.question for e in test}) == 100
    for e in train + test:
        puzzle, solution = planning.parse_sudoku_gold(e.answer)
        assert e.question == f"Solve the following Sudoku puzzle: {puzzle}\n"
        assert puzzle.count("0") == 8
        matches = [g for g in grids if all(p in ("0", x) for p, x in zip(puzzle, g))]
        assert matches == [solution]
        r, ok, _ = rewards.SudokuReward().score(e.trace, e.answer)
        assert ok and r == 3.0 + rewards.format_reward(e.trace)


PUZZLE, SOLUTION = "3102200002100320", "3142243142131324"  # a row of d1's test file


@pytest.mark.parametrize("completion,grid", [
    ("<answer>\n3142243142131324\n</answer>", SOLUTION),
    ("<answer>\n```\n3142\n2431\n4213\n1324\n```\n</answer>", SOLUTION),
    ("<answer>3142 2431 4213 1324<|eot_id|>", SOLUTION),
    ("so: 3142243142131324", SOLUTION),
    ("<answer>\n3142\n</answer>", "3142" + "0" * 12),   # padded with 0
    ("nothing here", "0" * 16),
])
def test_sudoku_answers_are_read_as_d1_reads_them(completion, grid):
    assert planning.sudoku_grid(completion) == grid


def test_sudoku_cell_accuracy_and_correctness_by_hand():
    blanks = [i for i, p in enumerate(PUZZLE) if p == "0"]
    assert len(blanks) == 8 and planning.sudoku_valid(SOLUTION, PUZZLE)
    i, j = next((i, j) for i, j in itertools.combinations(blanks, 2) if SOLUTION[i] != SOLUTION[j])
    wrong = list(SOLUTION)
    wrong[i], wrong[j] = wrong[j], wrong[i]  # two blanks with different digits swapped
    wrong = "".join(wrong)
    assert planning.sudoku_cells(wrong, PUZZLE, SOLUTION) == (6, 8)
    assert not planning.sudoku_valid(wrong, PUZZLE)
    gold = f"{PUZZLE}:{SOLUTION}"
    r, ok, _ = rewards.SudokuReward().score(f"<answer>\n{wrong}\n</answer>", gold)
    assert not ok and r == pytest.approx(3.0 * 6 / 8 + 0.25)  # <answer> and </answer> once
    # a clue overwritten is not a solution even if rows / columns / boxes hold
    assert not planning.sudoku_valid(SOLUTION, "4" + PUZZLE[1:])


# ---- files, sources, config ---------------------------------------------------------
def test_d1_files_load_and_bad_rows_name_file_and_line(tmp_path):
    cd = tmp_path / "countdown_cd3_test.jsonl"
    cd.write_text(json.dumps({"input": "30,100,93", "output": "23"}) + "\n" +
                  json.dumps({"nums": [8, 3, 8, 3], "target": 24}) + "\n")
    exs = sources.load_file("countdown", str(cd))
    assert [e.answer for e in exs] == ["30,100,93=23", "8,3,8,3=24"]
    assert exs[0].question == "Numbers: [30, 100, 93]\nTarget: 23"
    assert rewards.CountdownReward().score(exs[1].trace, exs[1].answer)[1]
    sd = tmp_path / "4x4_test_sudoku.csv"
    sd.write_text(f"Puzzle,Solution\n{PUZZLE},{SOLUTION}\n3102200002100320,3142243142131323\n")
    with pytest.raises(sources.DataError, match=r"4x4_test_sudoku.csv:3: not a 4x4 sudoku"):
        sources.load_file("sudoku", str(sd))
    exs = sources.load_file("sudoku", str(sd), {"skip_bad_rows": True})
    assert [e.answer for e in exs] == [f"{PUZZLE}:{SOLUTION}"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "30,x", "output": "2"}) + "\n")
    with pytest.raises(sources.DataError, match=r"bad.jsonl:1: not a countdown row"):
        sources.load_file("countdown", str(bad))


def test_generated_sources_need_no_files_and_validate():
    c = configlib.base_config()
    c.data.source = "countdown"
    c.data.planning.update(num_train=20, num_test=10)
    c.reward.name = "countdown"
    configlib.validate(c)  # no data.train_path needed
    train = sources.load_examples(c.data, "train")
    assert len(train) == 20 and train[0].question.startswith("Numbers: [")
    c.data.source = "sudoku"
    assert len(sources.load_examples(c.data, "test")) == 10
    c.data.planning.sudoku_blanks = 13
    with pytest.raises(configlib.ConfigError, match="data.planning.sudoku_blanks"):
        configlib.validate(c)
