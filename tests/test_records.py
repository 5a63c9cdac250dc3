"""Typed step records: written flat in a fixed key order, read back typed, older rows
(without the keys later versions added) read with the defaults."""

import json

from igpo_jax.records import RolloutRecord, SFTRecord, UpdateRecord, read_updates

ROLLOUT = dict(accuracy=0.25, reward_mean=0.3, frac_all_wrong_groups=0.5,
               inpaint_triggered=1, num_replaced=2, hinted_accuracy=0.5, hinted_samples=4,
               hint_tokens=7, all_wrong_rescued=1, hinted_by_meta={"3": [2, 4]},
               frac_all_wrong_after=0.0, frac_zero_adv_groups=0.5, completion_tokens=11.5,
               reward_failures=0, rollout_mode="exact", forward_passes=40.0,
               rollout_seconds=1.5)
UPDATE = dict(step=3, rollout_step=2, inner_iter=0, stage="igpo", loss=0.1, grad_norm=1.0,
              clip_frac=0.0, kl=0.01, loss_tokens=80.0, ratio_mean=1.0, clip_frac_gen=0.0,
              ratio_gen=1.0, clip_frac_hint=None, ratio_hint=None, lr=1e-5,
              skipped_updates=0, hint_tokens_kept=2.0, update_seconds=0.5,
              logprob_seconds=0.25, rollouts_per_step=8, entropy_hint=None,
              entropy_gen=0.7, groups_per_step=2)


def test_an_update_record_is_written_flat_in_the_historical_key_order():
    rec = UpdateRecord(**UPDATE, rollout=RolloutRecord(**ROLLOUT))
    row = rec.to_json()
    # the update's fields, then the rollout batch's, as the trainer always wrote them
    assert list(row) == list(UPDATE) + list(ROLLOUT)
    assert row == {**UPDATE, **ROLLOUT}
    assert UpdateRecord.from_json(json.loads(json.dumps(row))) == rec


def test_rows_of_older_versions_read_with_defaults(tmp_path):
    old = {k: UPDATE[k] for k in ("step", "rollout_step", "stage", "loss", "grad_norm", "lr",
                                  "rollouts_per_step")}
    old.update(accuracy=0.5, reward_mean=0.5, frac_all_wrong_groups=0.25, unknown_key=1)
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(old) + "\n" + json.dumps({"step": 1, "stage": "eval"}) + "\n")
    (rec,) = read_updates(str(path))  # the row without rollout_step is not an update
    assert rec.rollout.hinted_samples == 0 and rec.rollout.hinted_accuracy is None
    assert rec.rollout.hinted_by_meta == {} and rec.groups_per_step == 1
    assert rec.entropy_hint is None and rec.rollout.accuracy == 0.5
    assert read_updates(str(tmp_path / "missing.jsonl")) == []


def test_sft_record_roundtrip():
    rec = SFTRecord(step=5, stage="sft", loss=1.5, grad_norm=2.0, lr=1e-4, skipped_updates=0,
                    seconds=3.0)
    assert list(rec.to_json()) == ["step", "stage", "loss", "grad_norm", "lr",
                                   "skipped_updates", "seconds"]
    assert SFTRecord.from_json(rec.to_json()) == rec
