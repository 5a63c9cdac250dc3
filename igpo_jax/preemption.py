"""Graceful stops: SIGTERM / SIGINT (and JAX's preemption notice on multi-host
TPU) make a training loop finish its current step, write a checkpoint and exit
with :data:`EXIT_PREEMPTED`; re-running the same command resumes.

A second SIGINT (Ctrl-C twice) stops at once.
"""

from __future__ import annotations

import logging
import signal
import threading

from igpo_jax import distributed

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: try again (resume) later


class Preempted(Exception):
    """Raised by a training loop after it saved a checkpoint on a stop request."""

    def __init__(self, stage: str, step: int, reason: str):
        super().__init__(f"{stage} stopped at step {step} ({reason}); checkpoint written, "
                         f"re-run the same command to resume")
        self.stage, self.step, self.reason = stage, step, reason


class StoppedOutsideLoop(Preempted):
    """SIGTERM / SIGINT outside a training loop (start-up, compile, evaluation)."""

    def __init__(self, reason: str):
        Exception.__init__(self, f"{reason} outside a training step (start-up, compilation or "
                                 f"evaluation): stopped; nothing was lost, re-run the same "
                                 f"command to resume")
        self.stage, self.step, self.reason = "", 0, reason


def install_outside_loop_handler() -> None:
    """SIGTERM outside a training loop exits like a preemption (code 75, a message)
    instead of dying silently with the signal's code; the loops install their own
    handler (:class:`StopRequest`) and restore this one after."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum, frame):
        global _OUTSIDE_STOP
        _OUTSIDE_STOP = StoppedOutsideLoop(signal.Signals(signum).name)
        raise _OUTSIDE_STOP
    signal.signal(signal.SIGTERM, handle)


_OUTSIDE_STOP: StoppedOutsideLoop | None = None


def outside_stop() -> StoppedOutsideLoop | None:
    """The stop raised by the outside-loop handler, if one was. The exception raised
    from a signal handler can reach the caller replaced by another one (seen: raised
    while JAX filters a traceback, it comes back as a TypeError of that filter), so
    the command line checks this, not only the exception's type."""
    return _OUTSIDE_STOP


class StopRequest:
    """Context manager: installs the signal handlers, exposes ``requested``."""

    def __init__(self):
        self.reason: str | None = None
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = name
        log.warning("%s received: finishing the current step, then checkpointing", name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False

    def check(self, ckpt_manager, step: int) -> str | None:
        """The reason to stop after ``step``, if any (signal or JAX preemption notice).
        In a multi-process run a signal delivered to one process stops every process
        after the same step (one small all-gather per step), so that all of them take
        part in the same checkpoint."""
        if distributed.any_process(self.reason is not None):
            return self.reason or "a stop signal on another process"
        try:
            if ckpt_manager.reached_preemption(step):
                return "preemption notice"
        except Exception:  # noqa: BLE001 - no preemption service (single process)
            pass
        return None


def end_of_step(stop: StopRequest, ckpt, step: int, end: int, every: int, save, stage: str
                ) -> None:
    """Saves when due (every ``every`` steps, at ``end``, or on a stop request) and
    raises :class:`Preempted` after saving if a stop was requested."""
    reason = stop.check(ckpt.manager, step)
    if step % every == 0 or step == end or reason:
        save()
    if reason:
        ckpt.wait()
        raise Preempted(stage, step, reason)
