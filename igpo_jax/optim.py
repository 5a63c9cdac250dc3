"""The optimiser: AdamW with warm-up, a decay schedule and global-norm clipping."""

from __future__ import annotations

from typing import Any, Mapping

import optax

SCHEDULES = ("constant", "linear", "cosine")


def learning_rate_schedule(lr: float, warmup_steps: int, total_steps: int,
                           schedule: str = "constant") -> optax.Schedule:
    """Linear warm-up from 0, then constant, linear to 0, or cosine to 0."""
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule={schedule!r}; expected one of {SCHEDULES}")
    rest = max(total_steps - warmup_steps, 1)
    after = {"constant": optax.constant_schedule(lr),
             "linear": optax.linear_schedule(lr, 0.0, rest),
             "cosine": optax.cosine_decay_schedule(lr, rest)}[schedule]
    if warmup_steps <= 0:
        return after
    warm = optax.linear_schedule(0.0, lr, warmup_steps)
    return optax.join_schedules([warm, after], [warmup_steps])


def make_optimizer(cfg: Mapping[str, Any], total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    sched = learning_rate_schedule(cfg["lr"], cfg["warmup_steps"], total_steps, cfg["schedule"])
    tx = optax.chain(
        optax.clip_by_global_norm(cfg["grad_clip"]) if cfg["grad_clip"] > 0 else optax.identity(),
        optax.adamw(sched, b1=cfg["b1"], b2=cfg["b2"], weight_decay=cfg["weight_decay"]),
    )
    return tx, sched
