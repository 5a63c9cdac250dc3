"""The training loop every stage shares (SFT and RL): the start (optimiser,
checkpointer, resume), steps, periodic held-out evaluation, checkpoints, the stop
signal and closing.

A stage builds its parts (igpo_jax/experiment.py: mesh, tokenizer, model config,
parameters), gets a :class:`TrainingStart` from :func:`start_training` (which resumes
from the workdir's checkpoint when there is one), then hands :func:`run` one function
that does a step. The loop owns everything around the step:

* after each step, the periodic evaluation (``heldout``: ``eval.every``);
* a checkpoint every ``checkpoint.every`` steps and at the last step of the call, with
  the data iterator's state, so a resumed run continues with the next batch;
* SIGTERM / SIGINT (or a preemption notice): the current step finishes, a checkpoint
  is written and :class:`preemption.Preempted` is raised;
* closing: pending checkpoint writes are waited for and the checkpointer and the
  metrics writer are closed, whatever happened.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable

import jax

from igpo_jax import preemption
from igpo_jax import sharding as shd
from igpo_jax import storage
from igpo_jax.configlib import RunConfig
from igpo_jax.experiment import checkpoint_dir
from igpo_jax.models import lora

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingStart:
    """Optimiser, checkpointer, metrics writer and the state to start from."""

    tx: object
    schedule: object
    trainable: dict  # what the optimiser updates: LoRA adapters, or every parameter
    frozen: dict  # the rest (the base model under LoRA; empty otherwise)
    opt_state: object
    ckpt: object
    writer: object
    start: int  # steps already done (0 for a fresh run)
    run_meta: dict  # what every checkpoint records besides the step (see meta())

    def meta(self, **step_fields) -> dict:
        """A checkpoint's JSON record: the step's fields plus how to rebuild the frozen
        base of an adapters-only checkpoint (``lora``, ``init``) and the seed."""
        return {**self.run_meta, **step_fields}


def start_training(c: RunConfig, workdir: str, params: dict,
                   mesh: jax.sharding.Mesh, total_updates: int, data_iter,
                   records_per_step: int, stage: str) -> TrainingStart:
    """Builds the optimiser over the trainable parameters (the LoRA adapters when
    there are any) and resumes from ``workdir/checkpoints`` when it holds a
    checkpoint (trainable parameters, optimiser state, data-iterator state; metrics
    written after that checkpoint are dropped). Checkpoints hold only the trainable
    parameters: under LoRA the base is rebuilt from ``model.init_from`` /
    ``model.hf_dir`` / the seed, as the first start did."""
    from igpo_jax import optim
    from igpo_jax.checkpoint import Checkpointer
    from igpo_jax.metrics import MetricsWriter
    trainable, frozen = lora.split(params)
    n_train, n_all = lora.count(params)
    if frozen:
        log.info("LoRA: training %.3fM adapter parameters (%.3f%% of %.2fM); base frozen",
                 n_train / 1e6, 100 * n_train / n_all, n_all / 1e6)
    tx, schedule = optim.make_optimizer(c.optim, total_updates)
    opt_state = shd.replicate_unplaced(tx.init(trainable), mesh)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), c.checkpoint.keep,
                        checksums=c.checkpoint.checksums,
                        async_save=c.checkpoint.async_save)
    writer = MetricsWriter(workdir, settings=c.metrics, config=c.to_dict())
    run_meta = dict(seed=c.seed, lora=None, init=None)
    if frozen:
        lc = c.model.lora.config()
        init_from = c.model.init_from and storage.absolute(checkpoint_dir(c.model.init_from))
        hf_dir = c.model.hf_dir and storage.absolute(c.model.hf_dir)
        run_meta.update(lora=lc.to_dict(), init=dict(init_from=init_from or "",
                                                      hf_dir=hf_dir or "", seed=c.seed))
    start = 0
    if ckpt.latest_step() is not None:
        trainable, opt_state, meta = ckpt.restore(None, trainable, opt_state)
        start = int(meta["step"])
        data_iter.set_state(meta["data_state"])
        writer.truncate_after(start * records_per_step)
        log.info("resumed %s at step %d from %s", stage, start, ckpt.directory)
    else:
        writer.truncate_after(0)  # a fresh start starts a fresh record
    return TrainingStart(tx, schedule, trainable, frozen, opt_state, ckpt, writer, start,
                         run_meta)


# (trainable, opt_state, step index) -> (trainable, opt_state, the step's record or None)
StepFn = Callable[[dict, object, int], tuple[dict, object, object]]


def run(ts: TrainingStart, step: StepFn, *, stage: str, end: int, checkpoint_every: int,
        data_iter, heldout: Callable[[int, dict], object] | None = None
        ) -> tuple[dict, object, object]:
    """Runs steps ``ts.start .. end - 1``. ``step`` does one (and writes its record);
    ``heldout(steps_done, params)`` evaluates when due. Returns the final trainable
    parameters, the optimiser state and the last record a step returned (None when no
    step ran or none returned one)."""
    trainable, opt_state, last = ts.trainable, ts.opt_state, None
    with preemption.StopRequest() as stop:
        try:
            for i in range(ts.start, end):
                trainable, opt_state, record = step(trainable, opt_state, i)
                last = record if record is not None else last
                if heldout is not None:
                    heldout(i + 1, {**ts.frozen, **trainable})
                meta = ts.meta(step=i + 1, stage=stage, data_state=data_iter.get_state())
                preemption.end_of_step(
                    stop, ts.ckpt, i + 1, end, checkpoint_every,
                    lambda: ts.ckpt.save(i + 1, trainable, opt_state, meta, force=True), stage)
        finally:
            ts.ckpt.wait()
            ts.ckpt.close()
            ts.writer.close()
    return trainable, opt_state, last
