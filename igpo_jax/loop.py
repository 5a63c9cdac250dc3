"""The training loop every stage shares (SFT and RL): steps, periodic held-out
evaluation, checkpoints, the stop signal and closing.

A stage builds its parts (igpo_jax/experiment.py: mesh, tokenizer, model config,
parameters and the :class:`experiment.TrainingStart` that resumes from the workdir),
then hands :func:`run` one function that does a step. The loop owns everything
around the step:

* after each step, the periodic evaluation (``heldout``: ``eval.every``);
* a checkpoint every ``checkpoint.every`` steps and at the last step of the call, with
  the data iterator's state, so a resumed run continues with the next batch;
* SIGTERM / SIGINT (or a preemption notice): the current step finishes, a checkpoint
  is written and :class:`preemption.Preempted` is raised;
* closing: pending checkpoint writes are waited for and the checkpointer and the
  metrics writer are closed, whatever happened.
"""

from __future__ import annotations

from typing import Callable

from igpo_jax import preemption
from igpo_jax.experiment import TrainingStart

# (trainable, opt_state, step index) -> (trainable, opt_state, record or None)
StepFn = Callable[[dict, object, int], tuple[dict, object, "dict | None"]]


def run(ts: TrainingStart, step: StepFn, *, stage: str, end: int, checkpoint_every: int,
        data_iter, heldout: Callable[[int, dict], object] | None = None
        ) -> tuple[dict, object, dict]:
    """Runs steps ``ts.start .. end - 1``. ``step`` does one (and writes its record);
    ``heldout(steps_done, params)`` evaluates when due. Returns the final trainable
    parameters, the optimiser state and the last record a step returned."""
    trainable, opt_state, last = ts.trainable, ts.opt_state, {}
    with preemption.StopRequest() as stop:
        try:
            for i in range(ts.start, end):
                trainable, opt_state, record = step(trainable, opt_state, i)
                last = record or last
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
