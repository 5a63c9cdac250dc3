"""Data sources: each returns a list of :class:`Example` for a split.

``synthetic`` (offline default), ``gsm8k`` (``question``, ``answer`` with
``####``), ``metamath`` (``query``, ``response``, ``type``; GSM_AnsAug and
MATH_AnsAug, de-duplicated), ``math`` (``problem``, ``solution``, ``answer``),
``amc`` (``problem``, ``answer``) and ``jsonl`` (field names from config); and
``tfds``: a tensorflow-datasets dataset read through ``tfds.data_source``
(array_record files, random access, no TensorFlow), whose rows are parsed by one
of the formats above (``data.tfds.format``).

A malformed row stops loading with an error naming the file and line, unless
``skip_bad_rows`` is set: then it is skipped and counted.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping

import dataclasses

from igpo_jax import storage
from igpo_jax.sections import Section, check, field, sub
from igpo_jax.data import Example, answers, format_trace, planning, synthetic
from igpo_jax.data.planning import PlanningConfig
from igpo_jax.data.synthetic import SyntheticConfig

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data file or row that cannot be used."""


def read_json_rows(path: str) -> list[tuple[int, Any]]:
    """(line number, parsed row) for JSONL, or for a JSON list (line = index + 1)."""
    if not storage.exists(path):
        raise FileNotFoundError(f"data file {path} does not exist")
    raw = storage.read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text at byte {e.start} (a binary or "
                        f"compressed file? JSONL / JSON files are read as UTF-8)") from None
    if text.lstrip().startswith("["):
        try:
            return list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON: {e}") from e
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            rows.append((n, DataError(f"{path}:{n}: bad JSON: {e.msg}")))
    return rows


def _field(row: Mapping, name: str, where: str) -> str:
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: row is not a JSON object")
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: missing or empty field {name!r}")
    return str(value)


def _marked_solution(question: str, solution: str, parse, marker: str, where: str) -> Example:
    """An example from a worked solution whose answer follows ``marker``."""
    try:
        ans = parse(solution)
    except ValueError as e:
        raise DataError(f"{where}: {e}") from e
    return Example(question, ans, format_trace(solution.split(marker)[0].strip(), ans), where)


def _gsm8k(row, where, cfg) -> Example:
    return _marked_solution(_field(row, "question", where), _field(row, "answer", where),
                            answers.gsm8k_answer, "####", where)


def _metamath(row, where, cfg) -> Example | None:
    kind = str(row.get("type", "")) if isinstance(row, Mapping) else ""
    if cfg.get("metamath_types") and kind not in cfg["metamath_types"]:
        return None
    return _marked_solution(_field(row, "query", where), _field(row, "response", where),
                            answers.metamath_answer, "The answer is:", where)


def _math(row, where, cfg) -> Example:
    q, sol = _field(row, "problem", where), str(row.get("solution") or "")
    ans = row.get("answer") or answers.extract_boxed(sol, "last")
    if not ans:
        raise DataError(f"{where}: no 'answer' field and no \\boxed answer in the solution")
    return Example(q, str(ans), format_trace(sol, str(ans)) if sol else "", where)


def _amc(row, where, cfg) -> Example:
    ans = row.get("answer") if isinstance(row, Mapping) else None
    if ans is None or str(ans).strip() == "":
        raise DataError(f"{where}: missing or empty field 'answer'")
    return Example(_field(row, "problem", where), str(ans), "", where)


def _generic(row, where, cfg) -> Example:
    q = _field(row, cfg.get("question_field", "question"), where)
    a = _field(row, cfg.get("answer_field", "answer"), where)
    trace_field = cfg.get("trace_field")
    trace = ""
    if trace_field:
        reasoning = _field(row, trace_field, where)
        trace = reasoning if "<answer>" in reasoning else format_trace(reasoning, a)
    return Example(q, a, trace, where)


def _planning(parse):
    def read(row, where, cfg) -> Example:
        try:
            return parse(row, where)
        except ValueError as e:
            raise DataError(str(e)) from None
    return read


FILE_SOURCES: dict[str, Callable] = {"gsm8k": _gsm8k, "metamath": _metamath, "math": _math,
                                     "amc": _amc, "jsonl": _generic,
                                     "countdown": _planning(planning.countdown_row),
                                     "sudoku": _planning(planning.sudoku_row)}
# sources generated offline when their file paths are empty (d1's planning tasks)
GENERATED = {"countdown", "sudoku"}


def load_file(kind: str, path: str, cfg: Mapping[str, Any] | None = None) -> list[Example]:
    """Examples of a JSONL / JSON file (or, for CSV files such as d1's Sudoku sets, a
    CSV with a header row) in the row format ``kind``."""
    if path.endswith(".csv"):
        if not storage.exists(path):
            raise FileNotFoundError(f"data file {path} does not exist")
        rows = planning.read_csv_rows(storage.read_text(path))
    else:
        rows = read_json_rows(path)
    return _parse_rows(kind, ((f"{path}:{line}", row) for line, row in rows), dict(cfg or {}),
                       path)


def _parse_rows(kind: str, rows, cfg: dict, label: str) -> list[Example]:
    """Examples from ``(where, row)`` pairs in the row format ``kind``."""
    if kind not in FILE_SOURCES:
        raise ValueError(f"data source {kind!r}; expected one of {sorted(FILE_SOURCES)}")
    parse = FILE_SOURCES[kind]
    out, bad, seen = [], 0, set()
    for where, row in rows:
        try:
            if isinstance(row, Exception):
                raise row
            ex = parse(row, where, cfg)
        except DataError:
            if not cfg.get("skip_bad_rows"):
                raise
            bad += 1
            continue
        if ex is None:
            continue
        if kind == "metamath":  # de-duplicate queries
            if ex.question in seen:
                continue
            seen.add(ex.question)
        out.append(ex)
    if bad:
        log.warning("%s: skipped %d malformed rows (data.skip_bad_rows=True)", label, bad)
    if not out:
        raise DataError(f"{label}: no usable rows ({bad} malformed)")
    return out


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalars
        return _text(value.item())
    return value


def load_tfds(cfg: Mapping[str, Any], split: str) -> list[Example]:
    """Examples of a tensorflow-datasets dataset, read with ``tfds.data_source``.

    ``cfg["tfds"]``: ``name`` (e.g. ``gsm8k`` or ``my_math:1.0.0``), ``data_dir`` (where
    it was prepared; empty = the tfds default), ``train_split`` / ``test_split``
    (tfds split names, slicing like ``train[:90%]`` allowed) and ``format`` (the
    row format: one of the file sources' formats). Bytes fields are decoded as UTF-8.
    """
    t = dict(cfg.get("tfds") or {})
    if not t.get("name"):
        raise ValueError("data.source='tfds' needs data.tfds.name")
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError("data.source='tfds' needs tensorflow-datasets "
                          "(pip install 'igpo_jax[tfds]')") from e
    tfds_split = t.get(f"{split}_split") or split
    kwargs = {"data_dir": t["data_dir"]} if t.get("data_dir") else {}
    try:
        source = tfds.data_source(t["name"], split=tfds_split, **kwargs)
    except Exception as e:  # tfds raises several types for a missing dataset / split
        raise DataError(f"tfds dataset {t['name']!r} split {tfds_split!r} "
                        f"(data_dir={t.get('data_dir') or 'default'}) cannot be read: {e}") from e
    label = f"tfds:{t['name']}/{tfds_split}"
    rows = ((f"{label}[{i}]", {k: _text(v) for k, v in source[i].items()})
            for i in range(len(source)))
    return _parse_rows(t.get("format", "jsonl"), rows, cfg, label)


# data.source: the generated task, a file in one of the FILE_SOURCES formats, or tfds
def sources() -> tuple[str, ...]:
    """The valid ``data.source`` names, with :data:`FILE_SOURCES` as it is now (formats
    added from a user's file count)."""
    return ("synthetic",) + tuple(FILE_SOURCES) + ("tfds",)


@dataclasses.dataclass(frozen=True)
class TfdsConfig(Section):
    """``data.tfds``: a prepared tensorflow-datasets dataset."""

    name: str = field("", "dataset name (e.g. gsm8k or my_math:1.0.0)")
    data_dir: str = field("", "where it was prepared (empty: the tfds default)")
    train_split: str = field("train", "tfds split for training (slicing allowed)")
    test_split: str = field("test", "tfds split for evaluation")
    format: str = field("gsm8k", "row format: gsm8k|math|...")


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
    """The config's ``data`` section (``source`` from :func:`sources`; ``synthetic`` is
    passed to ``data/synthetic.py`` as it is)."""

    source: str = field("synthetic", "synthetic | gsm8k | metamath | math | amc | countdown | "
                        "sudoku | jsonl | tfds (countdown / sudoku without paths: generated)")
    seed: int = field(0, "data generation (synthetic); the run's shuffling uses config.seed")
    train_path: str = field("", "training file (JSONL / JSON / parquet) of a file source")
    test_path: str = field("", "held-out file of a file source")
    skip_bad_rows: bool = field(
        False, "drop (and count) malformed or too-long rows instead of stopping")
    system_prompt: str = field("", "system turn of every prompt (empty: none)")
    question_field: str = field("question", "source=jsonl: the question's field")
    answer_field: str = field("answer", "source=jsonl: the graded answer's field")
    trace_field: str = field("", "source=jsonl: the reference solution's field (hints, SFT)")
    metamath_types: tuple = field(('GSM_AnsAug', 'MATH_AnsAug'), "source=metamath: row types kept")
    tfds: TfdsConfig = sub(
        TfdsConfig,
        "source=\"tfds\": a prepared tensorflow-datasets dataset (array_record, no TensorFlow)")
    synthetic: SyntheticConfig = sub(
        SyntheticConfig, "source=synthetic: the offline task (data/synthetic.py)")
    planning: PlanningConfig = sub(
        PlanningConfig, "source=countdown / sudoku without file paths: the generated problems "
        "(data/planning.py)")

    def __post_init__(self):
        check(self.source in sources(), "data.source", self.source,
              f"expected one of {sources()}")
        check(self.source != "tfds" or self.tfds.name, "data.tfds.name", self.tfds.name,
              "data.source='tfds' needs the dataset's name")
        formats = tuple(FILE_SOURCES)
        check(self.source != "tfds" or self.tfds.format in formats, "data.tfds.format",
              self.tfds.format, f"expected one of {formats}")


def load_examples(data_cfg: Mapping[str, Any], split: str) -> list[Example]:
    """Examples of ``split`` (``train`` or ``test``) as the data config describes."""
    cfg = dict(data_cfg)
    source = cfg.get("source", "synthetic")
    if source == "synthetic":
        syn = dict(cfg.get("synthetic", {}))
        num = syn.pop(f"num_{split}", 1000)
        syn.pop("num_test" if split == "train" else "num_train", None)
        test_range = (syn.pop("test_min_terms", None), syn.pop("test_max_terms", None))
        syn["weights"] = tuple(syn.get("weights") or ()) or None
        if split == "test":
            syn["weights"] = None
            syn["min_terms"] = test_range[0] or syn.get("min_terms", 2)
            syn["max_terms"] = test_range[1] or syn.get("max_terms", 6)
        return synthetic.generate(num, split, seed=cfg.get("seed", 0), **syn)
    if source == "tfds":
        return load_tfds(cfg, split)
    path = cfg.get(f"{split}_path")
    if source in GENERATED and not path:
        p = PlanningConfig(**dict(cfg.get("planning") or {}))
        num = p.num_train if split == "train" else p.num_test
        if source == "countdown":
            return planning.generate_countdown(num, split, cfg.get("seed", 0),
                                               p.countdown_numbers, 1, p.countdown_max)
        return planning.generate_sudoku(num, split, cfg.get("seed", 0), p.sudoku_blanks)
    if not path:
        raise ValueError(f"data.source={source!r} needs data.{split}_path")
    return load_file(source, path, cfg)
