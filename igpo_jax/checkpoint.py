"""Checkpoints through Orbax ``CheckpointManager``: params, optimiser state and a
JSON record (step, stage, data-iterator state, seed, metrics summary).

Orbax writes each step to a temporary folder and renames it when complete, so
an interrupted write never becomes the latest checkpoint.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3, save_every: int = 1):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=save_every,
                                               create=True, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, params, opt_state, meta: dict[str, Any], force: bool = False
             ) -> bool:
        items = {"params": ocp.args.StandardSave(params), "meta": ocp.args.JsonSave(meta)}
        if opt_state is not None:
            items["opt_state"] = ocp.args.StandardSave(opt_state)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, step: int | None, params_like, opt_state_like=None):
        """Restores ``(params, opt_state, meta)`` with the shardings of the templates."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        items = {"params": ocp.args.StandardRestore(_abstract(params_like)),
                 "meta": ocp.args.JsonRestore()}
        if opt_state_like is not None:
            items["opt_state"] = ocp.args.StandardRestore(_abstract(opt_state_like))
        try:
            out = self.manager.restore(step, args=ocp.args.Composite(**items))
        except ValueError as e:
            raise ValueError(f"checkpoint step {step} in {self.directory} does not match the "
                             f"model/optimiser of this config: {e}") from e
        return out["params"], out.get("opt_state"), out["meta"]

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.close()


def load_params(directory: str, params_like, step: int | None = None):
    """Parameters only, from the latest (or given) step of another run's checkpoints."""
    ckpt = Checkpointer(directory)
    try:
        params, _, meta = ckpt.restore(step, params_like)
    finally:
        ckpt.close()
    return params, meta
