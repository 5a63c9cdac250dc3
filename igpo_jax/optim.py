"""The optimiser: AdamW with warm-up, a decay schedule and global-norm clipping, and
the jitted update step that SFT and RL share (gradient accumulation over
micro-batches, only the trainable parameters in the optimiser)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from igpo_jax.sections import Section, check, field

SCHEDULES = ("constant", "linear", "cosine")
MOMENTS_DTYPES = ("float32", "param")


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


def make_optimizer(cfg: "OptimConfig | Mapping[str, Any]", total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with the schedule, clipping and non-finite guard of ``cfg`` (the ``optim``
    section, or a mapping with its keys)."""
    sched = learning_rate_schedule(cfg["lr"], cfg["warmup_steps"], total_steps, cfg["schedule"])
    tx = optax.chain(
        optax.clip_by_global_norm(cfg["grad_clip"]) if cfg["grad_clip"] > 0 else optax.identity(),
        optax.adamw(sched, b1=cfg["b1"], b2=cfg["b2"], weight_decay=cfg["weight_decay"]),
    )
    # a non-finite gradient skips the update (never applied, however many in a row);
    # the training loop counts them and stops after optim.max_nonfinite in a row.
    tx = optax.apply_if_finite(tx, max_consecutive_errors=2**30)
    if cfg.get("moments_dtype", "float32") == "float32":
        tx = in_float32(tx)  # keeps apply_if_finite's state (and counters) on top
    return tx, sched


def in_float32(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """Runs ``tx`` on float32 copies of gradients and parameters, so its state (AdamW's
    moments) is float32 whatever the parameters' dtype; the updates are float32 and
    ``optax.apply_updates`` casts the new parameters back to their own dtype."""
    def cast(tree):
        return jax.tree.map(lambda x: x.astype(jnp.float32)
                            if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)

    def update(updates, state, params=None):
        return tx.update(cast(updates), state, None if params is None else cast(params))
    return optax.GradientTransformation(lambda params: tx.init(cast(params)), update)


def nonfinite_counts(opt_state) -> tuple[int, int]:
    """(consecutive, total) skipped updates of an :func:`make_optimizer` state."""
    return int(opt_state.notfinite_count), int(opt_state.total_notfinite)


class NonFiniteError(RuntimeError):
    """Too many non-finite updates in a row; the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class OptimConfig(Section):
    """The config's ``optim`` section."""

    lr: float = field(5e-07, "peak learning rate")
    warmup_steps: int = field(50, "linear warm-up from 0")
    schedule: str = field("linear", "after warm-up: linear (to 0) | cosine | constant")
    b1: float = field(0.9, "AdamW beta1")
    b2: float = field(0.99, "AdamW beta2")
    weight_decay: float = field(0.1, "AdamW weight decay")
    grad_clip: float = field(0.2, "global gradient-norm clip")
    moments_dtype: str = field("float32", "AdamW moments: float32 | param (the parameters' dtype)")
    max_nonfinite: int = field(5, "stop after this many skipped (non-finite) updates in a row")

    def __post_init__(self):
        check(self.lr >= 0 and self.warmup_steps >= 0, "optim.lr/warmup_steps",
              (self.lr, self.warmup_steps), "must be >= 0")
        check(self.schedule in SCHEDULES, "optim.schedule", self.schedule,
              f"expected one of {SCHEDULES}")
        check(self.moments_dtype in MOMENTS_DTYPES, "optim.moments_dtype", self.moments_dtype,
              f"expected one of {MOMENTS_DTYPES}")


def check_finite(opt_state, limit: int, stage: str, step: int, last_good: int | None) -> int:
    """Raises :class:`NonFiniteError` after ``limit`` skipped updates in a row;
    returns the total number skipped."""
    return check_counts(*nonfinite_counts(opt_state), limit, stage, step, last_good)


def check_counts(consecutive: int, total: int, limit: int, stage: str, step: int,
                 last_good: int | None) -> int:
    """:func:`check_finite` on counts already read from the device."""
    consecutive, total = int(consecutive), int(total)
    if consecutive >= limit:
        raise NonFiniteError(f"{stage}: {consecutive} non-finite losses/gradients in a row at "
                             f"step {step}; stopping. The last good checkpoint (step "
                             f"{last_good}) is intact; lower optim.lr or check the data")
    return total


def accumulate_gradients(loss_fn, params, batch, n_micro: int, key: jax.Array):
    """Sums ``value_and_grad(loss_fn)`` over ``n_micro`` micro-batches (leading axis split).

    ``loss_fn(params, micro_batch, key) -> (loss, stats dict)`` with the key
    ``fold_in(key, i)`` of micro-batch i; the loss must already be normalised by the
    full batch's denominator, so the sum is the full-batch loss. Returns
    ``(grads, loss, stats)`` with stats summed; gradients in the params' dtypes.
    """
    micro = jax.tree.map(lambda x: x.reshape((n_micro, x.shape[0] // n_micro) + x.shape[1:]),
                         batch)
    first = jax.tree.map(lambda x: x[0], micro)
    stats_shape = jax.eval_shape(lambda: loss_fn(params, first, key)[1])

    def body(carry, xs):
        g_sum, l_sum, st_sum = carry
        mb, i = xs
        (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(
            params, mb, jax.random.fold_in(key, i))
        return (jax.tree.map(jnp.add, g_sum, g), l_sum + loss,
                jax.tree.map(jnp.add, st_sum, stats)), None

    init = (jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32),
            jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), stats_shape))
    (grads, loss, stats), _ = jax.lax.scan(body, init, (micro, jnp.arange(n_micro)))
    return grads, loss, stats


LossBuilder = Callable[[Any, jax.Array], tuple[Callable, Any]]


def make_update_step(make_loss: LossBuilder, tx: optax.GradientTransformation, n_micro: int,
                     trainable, opt_state):
    """The jitted update shared by SFT and RL.

    ``step(trainable, opt_state, frozen, batch, key) -> (trainable, opt_state, out)``:
    ``make_loss(batch, key)`` returns ``(loss_fn, batch)`` (it may add per-batch noise
    or a denominator) with ``loss_fn(params, micro_batch, dropout_key) -> (loss,
    stats)`` over the full parameters ``frozen | trainable``. Gradients, the optimiser
    and the update touch only ``trainable`` (LoRA adapters, or everything without
    them); ``frozen`` is read, never donated or changed. Donates ``trainable`` and
    ``opt_state`` and keeps their shardings (arrays, or the dry run's abstract
    ``ShapeDtypeStruct`` s). ``out``: ``loss``, ``grad_norm`` and the summed stats.
    """
    def step(trainable, opt_state, frozen, batch, key):
        loss_fn, batch = make_loss(batch, key)
        grads, loss, stats = accumulate_gradients(
            lambda t, mb, k: loss_fn({**frozen, **t}, mb, k), trainable, batch, n_micro,
            jax.random.fold_in(key, 1))
        updates, opt_state = tx.update(grads, opt_state, trainable)
        trainable = optax.apply_updates(trainable, updates)
        return trainable, opt_state, dict(loss=loss, grad_norm=optax.tree.norm(grads), **stats)

    shardings = (jax.tree.map(lambda x: x.sharding, trainable),
                 jax.tree.map(lambda x: x.sharding, opt_state), None)
    return jax.jit(step, donate_argnums=(0, 1), out_shardings=shardings)
