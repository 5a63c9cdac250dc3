"""Step records (igpo_jax/metrics.py): metrics.jsonl read back (a half-written last record
dropped, a bad one named), a fresh start truncates, and the Weights & Biases run
(offline) holds the same fields as metrics.jsonl, read back from W&B's own transaction
log by an independent reader."""

import glob
import json
import logging
import os
import struct
import sys
import time

import pytest

from configs import tiny
from igpo_jax.configlib import typed
from igpo_jax.metrics import MetricsConfig, MetricsWriter, read_metrics
from igpo_jax.sections import ConfigError


def read_wandb_log(path):
    """The records of a ``.wandb`` file: a ``:W&B`` header, then LevelDB-log blocks of
    32 KiB whose chunks (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last) hold
    serialised ``wandb_internal_pb2.Record`` protobufs."""
    from wandb.proto import wandb_internal_pb2 as pb
    data = open(path, "rb").read()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    block, pos, chunk, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if n == 0 and kind == 0:
            break
        chunk += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(chunk)
            out.append(rec)
            chunk = b""
    return out


def wandb_history(workdir):
    """step -> {key: value} of every history row of the run files under workdir/wandb."""
    rows = {}
    for f in sorted(glob.glob(os.path.join(workdir, "wandb", "offline-run-*", "run-*.wandb"))):
        for rec in read_wandb_log(f):
            if rec.WhichOneof("record_type") == "history":
                row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                       for i in rec.history.item}
                rows.setdefault(row["_step"], row)
    return rows


def test_a_wandb_run_offline_holds_every_field_of_the_jsonl_record(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from igpo_jax.rl import trainer
    monkeypatch.setenv("WANDB_SILENT", "true")
    c = tiny.get_config("rl")
    c.rl.num_steps, c.eval.every, c.checkpoint.every = 3, 0, 100
    c.metrics.wandb = True
    workdir = str(tmp_path / "run")
    trainer.train(typed(c), workdir)
    jsonl = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    history = wandb_history(workdir)
    assert sorted(history) == [r["step"] for r in jsonl]
    assert len(jsonl) == 3 * c.rl.num_iterations  # a record per optimiser update
    for r in jsonl:
        h = history[r["step"]]
        fields = {k: v for k, v in r.items() if k != "step" and isinstance(v, (int, float))}
        assert fields, r
        for k, v in fields.items():
            assert h[k] == v, (r["step"], k)  # the same float, through JSON both ways
    run_id = open(os.path.join(workdir, "wandb_id.txt")).read().strip()
    runs = glob.glob(os.path.join(workdir, "wandb", "offline-run-*"))
    assert len(runs) == 1 and runs[0].endswith(run_id)
    # the run's config is the run's config
    config = {}
    for f in glob.glob(os.path.join(runs[0], "run-*.wandb")):
        for rec in read_wandb_log(f):
            if rec.WhichOneof("record_type") == "run":
                config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
    assert config["rl"]["algo"] == c.rl.algo and config["rl"]["num_steps"] == 3


def test_a_resumed_stage_continues_its_wandb_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    settings = MetricsConfig(wandb=True)
    for step in (1, 2):  # two starts of one stage: one run id
        w = MetricsWriter(str(tmp_path), settings=settings, config={"seed": 0})
        w.write({"step": step, "loss": 0.5 / step})
        w.close()
        time.sleep(1.1)  # W&B names a start's folder by the second it began
    ids = {os.path.basename(p).split("-")[-1]
           for p in glob.glob(str(tmp_path / "wandb" / "offline-run-*"))}
    assert ids == {open(tmp_path / "wandb_id.txt").read().strip()}
    assert {s: h["loss"] for s, h in wandb_history(str(tmp_path)).items()} == {1: 0.5, 2: 0.25}


def test_wandb_settings_errors_name_the_key_and_the_package(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="metrics.wandb_mode"):
        MetricsConfig(wandb=True, wandb_mode="cloud")
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install wandb"):
        MetricsWriter(str(tmp_path), settings=MetricsConfig(wandb=True))
    # off by default: no wandb files, no import
    MetricsWriter(str(tmp_path / "plain"), settings=MetricsConfig()).close()
    assert not os.path.exists(tmp_path / "plain" / "wandb")


def _write(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(lines))


def test_half_written_last_record_is_dropped_with_a_warning(tmp_path, caplog):
    p = tmp_path / "metrics.jsonl"
    _write(p, ['{"step": 1}\n', '{"step": 2}\n', '{"step": 3, "loss": 0.'])
    with caplog.at_level(logging.WARNING):
        assert read_metrics(str(p)) == [{"step": 1}, {"step": 2}]
    assert "metrics.jsonl:3" in caplog.text and "unfinished last record" in caplog.text


def test_bad_record_before_the_last_names_file_and_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    _write(p, ['{"step": 1}\n', 'garbage\n', '{"step": 3}\n'])
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON record"):
        read_metrics(str(p))


def test_fresh_start_starts_a_fresh_record(tmp_path, caplog):
    """A run killed before its first checkpoint left rows; the rerun starts at step 0
    and its record must not keep them (steps would read 1, 2, 1, 2, 3, ...)."""
    _write(tmp_path / "metrics.jsonl", ['{"step": 1}\n', '{"step": 2}\n'])
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    with caplog.at_level(logging.WARNING):
        w.truncate_after(0)
    assert "dropping the 2 records" in caplog.text
    w.write({"step": 1, "loss": 1.0})
    assert [r["step"] for r in read_metrics(str(tmp_path / "metrics.jsonl"))] == [1]
