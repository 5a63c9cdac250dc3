import json
import os
import shutil

import pytest

from igpo_jax import configlib, pipeline, run
from tests.conftest import LORA_SFT


def _tiny():
    from configs import tiny
    return tiny.get_config()


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_and_resume(tmp_path, capsys):
    c = _tiny()
    results = run.run(c, str(tmp_path))
    assert set(results) == {"sft", "grpo", "igpo"}
    saved = json.load(open(tmp_path / "results.json"))
    assert saved.keys() == results.keys()
    for name in ("grpo", "igpo"):
        r = saved[name]
        for key in ("heldout_accuracy", "frac_all_wrong_groups", "frac_all_wrong_after",
                    "inpaint_trigger_rate", "num_replaced", "samples_used", "curve",
                    "heldout_curve"):
            assert key in r, (name, key)
        assert os.path.exists(tmp_path / name / "DONE.json")
        # held-out accuracy before RL (step 0), at step 2 and at the end
        assert [h["step"] for h in r["heldout_curve"]] == [0, 2, 3]
    assert saved["grpo"]["inpaint_trigger_rate"] == 0.0
    assert saved["igpo"]["inpaint_trigger_rate"] > 0.0
    assert saved["igpo"]["samples_used"] > saved["grpo"]["samples_used"]  # hinted samples count
    assert "heldout_accuracy" in saved["sft"]
    assert os.path.exists(tmp_path / "results.png")
    capsys.readouterr()
    run.run(_tiny(), str(tmp_path))  # everything finished: nothing is re-run
    out = capsys.readouterr().out
    assert out.count("finished earlier, skipping") == 3

    # a finished stage exported as a shipped asset replaces that stage in a new run
    pipeline.export_stage(str(tmp_path / "sft"), str(tmp_path / "asset"))
    c = _tiny()
    c.pipeline.shipped = {"sft": str(tmp_path / "asset")}
    c.pipeline.only = "grpo"
    run.run(c, str(tmp_path / "again"))
    assert "installed from the shipped result" in capsys.readouterr().out
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa
    from igpo_jax.metrics import read_metrics
    assert strip(read_metrics(tmp_path / "again" / "grpo" / "metrics.jsonl")) == \
        strip(read_metrics(tmp_path / "grpo" / "metrics.jsonl"))
    c = _tiny()
    c.pipeline.update(shipped={"sft": str(tmp_path / "asset")}, use_shipped=False, only="sft")
    run.run(c, str(tmp_path / "fresh"))  # asked to re-create: the stage runs
    assert "installed from the shipped result" not in capsys.readouterr().out
    assert os.path.exists(tmp_path / "fresh" / "sft" / "checkpoints")


def test_print_commands_and_only(tmp_path, capsys):
    c = _tiny()
    c.pipeline.print_commands = True
    run.run(c, str(tmp_path))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("--config.pipeline.only=" in x for x in lines)
    assert lines[1].endswith("--config.pipeline.only=grpo")
    c = _tiny()
    c.pipeline.only = "nope"
    with pytest.raises(configlib.ConfigError, match="pipeline.only"):
        run.run(c, str(tmp_path))


def test_product_and_overrides(tmp_path):
    members = pipeline.product({"mode": "rl"}, **{"igpo.tau": [0.2, 1.0], "rl.algo": ["igpo"]})
    assert [m[0] for m in members] == ["tau=0.2,algo=igpo", "tau=1.0,algo=igpo"]
    sub = pipeline.apply_overrides(_tiny(), members[1][1], str(tmp_path))
    assert sub.igpo.tau == 1.0 and sub.mode == "rl"
    with pytest.raises(configlib.ConfigError, match="unknown key"):
        pipeline.apply_overrides(_tiny(), {"rl.nope": 1}, str(tmp_path))
    sub = pipeline.apply_overrides(_tiny(), {"model.init_from": "{workdir}/sft"}, "/w")
    assert sub.model.init_from == "/w/sft"


@pytest.mark.parametrize("config,asset", [("demo.py", "demo_sft"), ("pointer.py", "pointer_sft"),
                                          ("pointer.py", "pointer_sft_long")])
def test_shipped_sft_evaluation_is_on_the_recipes_heldout_problems(config, asset):
    """A recipe compares RL stages with a shipped SFT stage's stored evaluation: it must
    have been made on exactly the held-out problems the recipe evaluates RL on (a change
    of the held-out draw must re-evaluate the shipped stage, or the table mixes sets)."""
    import importlib.util
    import json

    from igpo_jax.data.sources import load_examples
    spec = importlib.util.spec_from_file_location("recipe_cfg", os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", config))
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    c = recipe.get_config()
    assert asset in dict(c.pipeline.shipped).values()
    want = [e.question for e in load_examples(c.data.to_dict(), "test")][:c.eval.num_examples]
    path = os.path.join(pipeline.ASSETS, asset, "eval", "generations.jsonl")
    rows = sorted((json.loads(line) for line in open(path)), key=lambda r: r["index"])
    assert [r["question"] for r in rows] == want
    assert len(set(want)) == len(want)  # distinct problems


def test_stage_position_and_command_line_keys_are_passed_not_global(tmp_path, capsys):
    from igpo_jax import metrics
    # the position a stage's progress lines carry: its place and the pipeline's ETA
    # (mean of the stages done, times the stages left, plus this stage's own ETA)
    pos = metrics.PipelinePosition(2, 3, (10.0, 30.0))
    assert pos.suffix(5.0) == " | pipeline 2/3 ETA 25s"
    assert metrics.PipelinePosition(1, 2).suffix(5.0) == " | pipeline 1/2"
    assert not hasattr(metrics, "PIPELINE")
    # keys set on the command line win over a stage's own value (and a line says so)
    sub = pipeline.apply_overrides(_tiny(), {"rl.num_steps": 7}, str(tmp_path), "grpo",
                                   command_line_keys={"rl.num_steps"})
    assert sub.rl.num_steps == _tiny().rl.num_steps
    assert "--config.rl.num_steps from the command line replaces" in capsys.readouterr().out
    assert pipeline.apply_overrides(_tiny(), {"rl.num_steps": 7}, str(tmp_path)).rl.num_steps == 7
    assert not hasattr(pipeline, "COMMAND_LINE_KEYS")


def test_report_only_reports_finished_members_and_runs_none(tmp_path, capsys):
    c = _tiny()
    c.pipeline.shipped = {}
    c.pipeline.stages = (("sft", {"mode": "sft"}), ("grpo", {"mode": "rl"}))
    c.pipeline.report_only = True
    os.makedirs(tmp_path / "sft")
    (tmp_path / "sft" / "DONE.json").write_text(json.dumps({"accuracy": 0.25}))
    ran = []
    results = pipeline.run_pipeline(c, str(tmp_path), lambda *a, **k: ran.append(a))
    assert ran == [] and list(results) == ["sft"]
    assert "grpo: not finished; not run (pipeline.report_only)" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "grpo")


@pytest.mark.slow
@pytest.mark.xdist_group(LORA_SFT)
def test_the_asset_export_refuses_an_adapters_only_stage(lora_sft_run, tmp_path):
    """A LoRA stage's checkpoint has no base to ship: the demo's asset export points to
    --export_hf, and writes nothing."""
    stage = tmp_path / "sft"
    shutil.copytree(lora_sft_run["workdir"], stage)
    with pytest.raises(FileNotFoundError, match="has no DONE.json"):
        pipeline.export_stage(str(stage), str(tmp_path / "asset"))
    (stage / "DONE.json").write_text("{}")
    with pytest.raises(ValueError, match="LoRA adapters only .* with --export_hf instead"):
        pipeline.export_stage(str(stage), str(tmp_path / "asset"))
    assert not (tmp_path / "asset").exists()
