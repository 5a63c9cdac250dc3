import os

import jax.numpy as jnp
import numpy as np
import pytest

from igpo_jax import configlib, experiment, optim, run
from igpo_jax.checkpoint import Checkpointer
from igpo_jax.metrics import read_metrics
from igpo_jax.rl import grpo, trainer
from igpo_jax.configlib import typed

REQUIRED = {"step", "stage", "loss", "reward_mean", "accuracy", "frac_all_wrong_groups",
            "inpaint_triggered", "num_replaced", "hint_tokens_kept", "clip_frac", "kl",
            "grad_norm", "lr", "rollout_seconds", "update_seconds", "logprob_seconds"}


def tiny(**rl):
    from configs import tiny as tiny_cfg
    c = tiny_cfg.get_config("rl")
    c.eval.every = 0
    c.rl.update(**{"num_steps": 1, "num_iterations": 1, **rl})
    return c


def _init(c):
    tok = experiment.build_tokenizer(typed(c))
    cfg = experiment.model_config(typed(c), tok)
    return experiment.initial_params(typed(c), cfg, experiment.build_mesh(typed(c)))


def _changed(a, b):
    return max(float(jnp.abs(a[k] - b[k]).max()) for k in a)


@pytest.mark.parametrize("algo,cache,unmask", [("grpo", "none", "fixed"),
                                               ("igpo", "dual", "threshold")])
def test_one_step_changes_parameters_and_writes_metrics(tmp_path, algo, cache, unmask):
    c = tiny(algo=algo)
    c.sampler.update(cache=cache, unmask=unmask, threshold=0.3)
    # a group with rewards that differ (format reward) gives a gradient under both algos
    before = _init(c)
    out = trainer.train(typed(c), str(tmp_path))
    assert _changed(before, out["params"]) > 0
    rows = read_metrics(os.path.join(tmp_path, "metrics.jsonl"))
    assert len(rows) == 1 and REQUIRED <= set(rows[0])
    assert rows[0]["stage"] == algo
    mode = c.sampler.steps if unmask == "fixed" else None
    assert rows[0]["rollout_mode"] == ("exact" if cache == "none" else
                                       "cache=dual,unmask=threshold0.3")
    if mode:  # the exact sampler runs every step; threshold finishes blocks early
        assert rows[0]["forward_passes"] == mode
    else:
        assert 0 < rows[0]["forward_passes"] <= c.sampler.steps
    if algo == "igpo":  # an untrained model fails every group: inpainting triggers
        assert rows[0]["frac_all_wrong_groups"] == 1.0
        assert rows[0]["inpaint_triggered"] == c.rl.prompts_per_step
    else:
        assert rows[0]["inpaint_triggered"] == 0


@pytest.mark.slow
def test_igpo_replacement_gives_gradient_where_grpo_has_none(tmp_path):
    """Full-trace hints make hinted samples correct; the all-wrong groups get signal."""
    def cfg(algo):
        c = tiny(algo=algo)
        c.reward.format_weight = 0.0  # correctness only: all-wrong groups have zero advantage
        c.rl.beta = 0.0  # no KL term: the GRPO gradient is exactly zero
        c.igpo.update(eta_low=1.0, eta_high=1.0, min_chunk=1, max_chunk=1, reserve=0,
                      reveal_last_chunk=True, exclude_last_step=False, tau=0.2)
        return c
    g = trainer.train(typed(cfg("grpo")), str(tmp_path / "grpo"))["last"]
    i = trainer.train(typed(cfg("igpo")), str(tmp_path / "igpo"))["last"]
    assert g["frac_all_wrong_groups"] == 1.0 and g["grad_norm"] == 0.0
    # every hinted completion holds the whole trace; the random model's tail after it can
    # open a second (wrong) answer span, and the last span is the one graded
    assert 2 <= i["num_replaced"] <= 4 * 2  # at most floor(0.5 * 8) per group, 2 groups
    assert i["frac_all_wrong_after"] == 0.0
    assert i["grad_norm"] > 0
    # entropy filter: 20% of each replaced row's hint tokens (at least one) are kept
    assert 0 < i["hint_tokens_kept"] < i["hint_tokens"]
    # diagnostics: both groups rescued; hinted success by difficulty; hint vs generated
    assert i["all_wrong_rescued"] == 2
    assert sum(v[1] for v in i["hinted_by_meta"].values()) == i["hinted_samples"] == 16
    assert sum(v[0] for v in i["hinted_by_meta"].values()) == round(16 * i["hinted_accuracy"])
    for k in ("entropy_hint", "entropy_gen", "ratio_hint", "ratio_gen", "clip_frac_hint",
              "clip_frac_gen"):
        assert i[k] is not None and np.isfinite(i[k]), k
    assert g["entropy_hint"] is None and g["clip_frac_hint"] is None  # GRPO has no hints
    # the compute-matched control: as many extra samples for the same groups, no hints
    r = trainer.train(typed(cfg("resample")), str(tmp_path / "resample"))["last"]
    assert r["inpaint_triggered"] == i["inpaint_triggered"] == 2
    assert r["hinted_samples"] == i["hinted_samples"]
    assert r["hint_tokens"] == 0 and r["entropy_hint"] is None
    # an untrained model never answers correctly without hints: nothing to swap in
    assert r["num_replaced"] == 0 and r["all_wrong_rescued"] == 0 and r["grad_norm"] == 0.0


def test_sampler_early_stop_key_reaches_the_sampler():
    from igpo_jax import evaluate, sampling
    c = tiny()
    assert not sampling.SamplerConfig.from_config(c.sampler).early_stop
    c.sampler.early_stop = True
    assert sampling.SamplerConfig.from_config(c.sampler).early_stop
    assert evaluate.sampler_for_eval(c).early_stop


@pytest.mark.slow
def test_resume_equals_uninterrupted(tmp_path):
    c = tiny(algo="igpo", num_steps=3, num_iterations=2)
    full = trainer.train(typed(c), str(tmp_path / "full"))
    part = trainer.train(typed(c), str(tmp_path / "part"), stop_after=2)
    assert part["steps"] == 2
    resumed = trainer.train(typed(c), str(tmp_path / "part"))
    for k in full["params"]:
        np.testing.assert_array_equal(np.asarray(full["params"][k]),
                                      np.asarray(resumed["params"][k]))
    a = read_metrics(os.path.join(tmp_path / "full", "metrics.jsonl"))
    b = read_metrics(os.path.join(tmp_path / "part", "metrics.jsonl"))
    assert [r["step"] for r in b] == list(range(1, 7))
    drop = {"rollout_seconds", "update_seconds", "logprob_seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
        [{k: v for k, v in r.items() if k not in drop} for r in b]


def test_config_errors_name_the_key(tmp_path):
    c = tiny()
    c.rl.micro_batch_size = 5
    with pytest.raises(configlib.ConfigError, match="rl.micro_batch_size"):
        run.run(c, str(tmp_path))
    c = tiny()
    c.sampler.steps = 7
    with pytest.raises(configlib.ConfigError, match="sampler.steps"):
        run.run(c, str(tmp_path))
    for key, value, match in (("cache", "kv", "sampler.cache"),
                              ("unmask", "threshold", "needs remasking=low_confidence")):
        c = tiny()
        c.sampler.remasking = "random"
        c.sampler[key] = value
        with pytest.raises(configlib.ConfigError, match=match):
            run.run(c, str(tmp_path))
    c = tiny()
    c.igpo.update(eta_low=0.7, eta_high=0.3)
    with pytest.raises(configlib.ConfigError, match="eta_low"):
        run.run(c, str(tmp_path))


def test_tiny_config_exercises_replacement(tmp_path):
    """configs/tiny.py's IGPO really swaps hinted completions in, and its update differs
    from GRPO's on the same rollouts' prompts."""
    outs = {}
    for algo in ("grpo", "igpo"):
        c = tiny(algo=algo)
        outs[algo] = trainer.train(typed(c), str(tmp_path / algo))
    assert outs["igpo"]["last"]["num_replaced"] > 0
    assert outs["grpo"]["last"]["num_replaced"] == 0
    assert _changed(outs["igpo"]["params"], outs["grpo"]["params"]) > 0


def test_train_accepts_a_custom_reward_and_data(tmp_path):
    """A researcher swaps the reward (and the data) without editing the trainer."""
    from igpo_jax import rewards
    from igpo_jax.data import synthetic

    class EvenLength(rewards.MathReward):
        """1 for a completion of even length, else 0 ("correct" when rewarded): about
        half of an untrained model's completions, which the math reward scores 0."""

        def score(self, completion, gold):
            ok = len(completion) % 2 == 0
            return float(ok), ok, False

    c = tiny(algo="grpo")
    data = synthetic.generate(8, "train", modulus=5, min_terms=2, max_terms=3)
    out = trainer.train(typed(c), str(tmp_path), reward=EvenLength(), examples=data)
    rows = read_metrics(os.path.join(tmp_path, "metrics.jsonl"))
    # the logged rewards are the custom reward's: its mean equals the correct share
    assert 0 < rows[0]["accuracy"] < 1
    assert rows[0]["reward_mean"] == pytest.approx(rows[0]["accuracy"])
    assert out["steps"] == 1
    from igpo_jax import configlib
    c.reward.name = "nope"
    with pytest.raises(configlib.ConfigError, match="reward.name"):
        configlib.validate(c)


def _guard_transfers(monkeypatch, name: str) -> list[dict]:
    """Runs ``trainer.<name>`` with host<->device transfer guards on "disallow" (any
    implicit transfer fails; moves between devices are allowed), failing on float()/
    int()/bool() of a device scalar (the guard lets scalars through on CPU), and counts
    its explicit transfers: puts of host data, and gets. Returns the counts, one dict
    per call."""
    import jax
    from jax._src.array import ArrayImpl
    real, real_put, real_get = getattr(trainer, name), jax.device_put, jax.device_get
    calls, seen = {"put": 0, "get": 0}, []

    def put(*a, **k):
        # a put of device arrays only (re-placing parameters) crosses no host boundary
        if not all(isinstance(x, jax.Array) for x in jax.tree.leaves(a[0])):
            calls["put"] += 1
        return real_put(*a, **k)

    def get(*a, **k):
        calls["get"] += 1
        return real_get(*a, **k)

    def no_scalar_read(self, *a):
        raise AssertionError(f"a device scalar was read in trainer.{name}")

    def guarded(*args):
        with monkeypatch.context() as m:
            m.setattr(jax, "device_put", put)
            m.setattr(jax, "device_get", get)
            for dunder in ("__float__", "__int__", "__bool__"):
                m.setattr(ArrayImpl, dunder, no_scalar_read)
            with jax.transfer_guard_host_to_device("disallow"), \
                    jax.transfer_guard_device_to_host("disallow"):
                out = real(*args)
        seen.append(dict(calls))
        calls.update(put=0, get=0)
        return out
    monkeypatch.setattr(trainer, name, guarded)
    return seen


def test_update_moves_the_batch_once_each_way(tmp_path, monkeypatch):
    """The device side of a step (advantages, prompt masks, old and reference log-probs,
    every inner update, the records' numbers; here GRPO with LoRA adapters, IGPO in the
    whole-step test below) makes one explicit host-to-device transfer of the whole batch
    and none back: it is device-only. The host step that writes the records makes one
    explicit device-to-host transfer of the results and none the other way. Nothing
    implicit in either."""
    c = tiny(algo="grpo", num_steps=2, num_iterations=2, p_mask_prompt=0.15, beta=0.02)
    c.model.lora.rank = 4
    seen = _guard_transfers(monkeypatch, "_update")
    seen_host = _guard_transfers(monkeypatch, "_write_records")
    trainer.train(typed(c), str(tmp_path / "run"))
    assert seen == [{"put": 1, "get": 0}] * 2
    assert seen_host == [{"put": 0, "get": 1}] * 2
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 4 and all(np.isfinite(r["loss"]) for r in rows)


@pytest.mark.parametrize("estimator", ["one_step", "trajectory", "block"])
def test_whole_step_crosses_host_and_device_only_in_counted_explicit_transfers(
        tmp_path, monkeypatch, estimator):
    """A whole IGPO step with guards on: no implicit host<->device transfer and no
    device scalar read, anywhere (rollouts, hints, replacement plan, update). Explicit
    transfers per step: the step's key; per sampler call its inputs; the traces of the
    hinted groups and the replacement plan's input; the batch of the update (+ the eta
    bounds once) one way; per sampling round (plain, hinted) the tokens, the hints, the
    plan and the update's results the other way."""
    c = tiny(algo="igpo", num_steps=2, num_iterations=2, p_mask_prompt=0.15, beta=0.02)
    c.sampler.rollout_batch_size = 8  # several sampler calls per round
    # every estimator: the sampler's write orders travel with the batch, no extra transfer
    c.rl.update(estimator=estimator, trajectory_passes=2, mc_samples=2)
    seen = _guard_transfers(monkeypatch, "_rl_step")
    trainer.train(typed(c), str(tmp_path / "run"))
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    rows = rows[1::2]  # one record per inner update: the step's last
    assert len(rows) == 2 and all(r["inpaint_triggered"] > 0 for r in rows)
    n = c.rl.prompts_per_step * c.rl.group_size
    for i, (r, got) in enumerate(zip(rows, seen)):
        plain_calls = n // 8
        hinted_calls = -(-r["hinted_samples"] // 8)
        puts = 1 + plain_calls + 1 + hinted_calls + 1 + 1 + (1 if i == 0 else 0)
        assert got == {"put": puts, "get": 5}, (i, got, r["hinted_samples"])


def test_nan_loss_in_training_is_skipped_then_stops(tmp_path, monkeypatch):
    from configs import tiny
    c = tiny.get_config("rl")
    c.rl.num_steps, c.rl.num_iterations, c.eval.every, c.optim.max_nonfinite = 3, 1, 0, 2
    real = grpo.policy_loss

    def nan_loss(*a, **k):
        s, d, st = real(*a, **k)
        return s * jnp.nan, d, st
    monkeypatch.setitem(grpo.POLICY_LOSSES, "clipped_surrogate", nan_loss)
    with pytest.raises(optim.NonFiniteError, match="last good checkpoint"):
        trainer.train(typed(c), str(tmp_path))
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[0]["skipped_updates"] == 1
    assert Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 1
