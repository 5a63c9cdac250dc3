"""Checkpoints through Orbax ``CheckpointManager``: params, optimiser state and a
JSON record (step, stage, data-iterator state, seed, metrics summary), in a local
folder or a bucket (``gs://...``).

Orbax writes each step to a temporary folder and renames it when complete (on a
bucket: writes a commit marker last), so an interrupted write never becomes the
latest checkpoint. Writes are asynchronous by default (``checkpoint.async_save``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from igpo_jax import storage
from igpo_jax.sections import Section, check, field

log = logging.getLogger(__name__)


def _is_json_error(e: BaseException | None) -> bool:
    import json
    while e is not None:
        if isinstance(e, json.JSONDecodeError) or "Expecting value" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


class DiskFullError(OSError):
    """A checkpoint write ran out of space (the previous checkpoint is intact)."""


def _is_disk_full(e: BaseException | None) -> bool:
    import errno
    seen = 0
    while e is not None and seen < 20:
        if getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


class CorruptCheckpointError(RuntimeError):
    """No checkpoint of a run restores."""


CHECKSUMS = "checksums.sha256.json"


# Orbax rewrites its step record (commit time) while committing: not checksummed.
_UNCHECKED = ("_CHECKPOINT_METADATA",)


def _file_digests(step_dir: str, only=None) -> dict[str, str]:
    import hashlib
    out = {}
    for rel in storage.files_under(step_dir):
        if rel == CHECKSUMS or rel.startswith(CHECKSUMS + ".tmp") or rel in _UNCHECKED:
            continue
        if only is not None and rel not in only:
            continue
        h = hashlib.sha256()
        with storage.open_file(os.path.join(step_dir, rel), "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        out[rel] = h.hexdigest()
    return out


def write_checksums(step_dir: str) -> None:
    """SHA-256 of every file of a finished checkpoint step (silent corruption, e.g.
    flipped bytes inside an array file, then fails the restore instead of loading)."""
    import json
    digests = _file_digests(step_dir)
    storage.write_text(os.path.join(step_dir, CHECKSUMS),
                       json.dumps(digests, indent=0, sort_keys=True))


def verify_checksums(step_dir: str) -> None:
    """Raises ValueError naming the first file whose content changed since the save
    (checkpoints written before checksums existed are not checked)."""
    import json
    path = os.path.join(step_dir, CHECKSUMS)
    if not storage.exists(path):
        return
    want = json.loads(storage.read_text(path))
    got = _file_digests(step_dir, only=want)
    for rel, digest in sorted(want.items()):
        if rel not in got:
            raise ValueError(f"checkpoint {step_dir} is corrupted: {rel} is missing")
        if got[rel] != digest:
            raise ValueError(f"checkpoint {step_dir} is corrupted: {rel} does not match the "
                             f"checksum recorded when it was saved")


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig(Section):
    """The config's ``checkpoint`` section."""

    every: int = field(1, "steps between checkpoints (SIGTERM always writes one)")
    keep: int = field(3, "checkpoints kept")
    checksums: bool = field(
        True,
        "SHA-256 of every saved file, verified on restore (catches silent corruption; reads the "
        "step back at ~0.7 GB/s on process 0, in the background with async_save)")
    async_save: bool = field(
        True,
        "write in a background thread while training goes on (the next save, SIGTERM and the end"
        " of a stage wait for it); False blocks each save until it is committed")

    def __post_init__(self):
        check(self.every >= 1 and self.keep >= 1, "checkpoint.every/keep",
              (self.every, self.keep), "must be >= 1")


class Checkpointer:
    """Saves and restores the steps of one run.

    With ``async_save`` (the default) :meth:`save` returns once the arrays are copied
    off the devices; Orbax writes them in a background thread while training goes on,
    and the next save, :meth:`wait` and :meth:`close` wait for that write. The
    checksums of a step are computed in the same background thread, after its files
    are written and before Orbax commits the step (renames its temporary folder, or
    writes its commit marker on a bucket), so a committed step always has them.
    """

    def __init__(self, directory: str, keep: int = 3, save_every: int = 1,
                 checksums: bool = True, async_save: bool = True):
        self.directory = storage.absolute(directory)
        self.checksums = checksums
        self.async_save = async_save
        self._writing: int | None = None  # the step an asynchronous save is writing
        async_options = None
        if async_save and checksums:
            async_options = ocp.options.AsyncOptions(
                post_finalization_callback=self._checksum_written_step)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, save_interval_steps=save_every, create=True,
            enable_async_checkpointing=async_save, async_options=async_options)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def _uncommitted_dir(self, step: int) -> str:
        """Where Orbax writes ``step`` before committing it: a temporary sibling folder
        on a local disk, the final folder on a bucket (committed by a marker file)."""
        tmp = [d for d in storage.listdir(self.directory)
               if d.startswith(f"{step}.") and "tmp" in d]
        if len(tmp) == 1:
            return os.path.join(self.directory, tmp[0])
        return os.path.join(self.directory, str(step))

    def _checksum_written_step(self) -> None:
        """Orbax's post-finalisation hook (background thread, before the commit)."""
        step, self._writing = self._writing, None
        if step is None or jax.process_index() != 0:
            return
        try:
            write_checksums(self._uncommitted_dir(step))
        except Exception as e:  # noqa: BLE001 - a step without checksums still restores
            log.warning("could not write the checksums of checkpoint step %d: %s", step, e)

    def save(self, step: int, params, opt_state, meta: dict[str, Any], force: bool = False
             ) -> bool:
        items = {"params": ocp.args.StandardSave(params), "meta": ocp.args.JsonSave(meta)}
        if opt_state is not None:
            items["opt_state"] = ocp.args.StandardSave(opt_state)
        try:
            if self.async_save:
                self.manager.wait_until_finished()  # the previous write (and its checksums)
                self._writing = step
            saved = self.manager.save(step, args=ocp.args.Composite(**items), force=force)
            if saved and not self.async_save:
                self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - a full disk is named, anything else re-raised
            self._raise_disk_full(e, step)
            raise
        if not saved:
            self._writing = None
        elif self.checksums and not self.async_save and jax.process_index() == 0:
            write_checksums(os.path.join(self.directory, str(step)))
        return saved

    def _raise_disk_full(self, e: BaseException, step: int | None) -> None:
        if _is_disk_full(e):
            prev = [s for s in self.manager.all_steps() if s != step]
            raise DiskFullError(
                f"disk full: no space left on the device of {self.directory} while saving "
                f"checkpoint step {step}; the previous checkpoint "
                f"({'step ' + str(max(prev)) if prev else 'none'}) is intact. Free space "
                f"and re-run the same command to resume") from e

    def restore(self, step: int | None, params_like, opt_state_like=None):
        """Restores ``(params, opt_state, meta)`` with the shardings of the templates.

        With ``step=None`` the latest checkpoint that restores cleanly is used: a
        corrupted latest one is skipped with a warning (the previous one is the
        restore point). Unfinished writes (temporary folders) are never candidates.
        """
        if step is not None:
            return self._restore(step, params_like, opt_state_like)
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        leftovers = [d for d in storage.listdir(self.directory) if "tmp" in d]
        if leftovers:
            log.warning("ignoring unfinished checkpoint writes in %s: %s", self.directory,
                        leftovers)
        first_error, bad = None, []
        for s in steps:
            try:
                out = self._restore(s, params_like, opt_state_like)
            except Exception as e:  # noqa: BLE001 - try the previous checkpoint
                first_error = first_error or e
                bad.append(s)
                log.warning("checkpoint step %d in %s cannot be restored (%s: %s); trying the "
                            "previous one", s, self.directory, type(e).__name__, str(e)[:200])
                continue
            if bad:
                log.warning("restored step %d instead of the corrupted latest step %d", s,
                            steps[0])
                self._move_aside(bad)
            return out
        raise CorruptCheckpointError(
            f"no checkpoint in {self.directory} can be restored (steps {steps}); the first "
            f"error was {type(first_error).__name__}: {str(first_error)[:300]}. Delete the "
            f"folder to start over, or restore a backup") from first_error

    def _move_aside(self, steps: list[int]) -> None:
        """Moves corrupted steps to ``corrupted/STEP`` (kept for inspection), so that the
        recomputed step can be saved again."""
        if jax.process_index() == 0:
            aside = os.path.join(self.directory, "corrupted")
            storage.makedirs(aside)
            for s in steps:
                dst = os.path.join(aside, str(s))
                k = 1
                while storage.exists(dst):
                    dst, k = os.path.join(aside, f"{s}.{k}"), k + 1
                storage.move(os.path.join(self.directory, str(s)), dst)
                log.warning("moved the corrupted checkpoint step %d to %s", s, dst)
        self.manager.reload()

    def _restore(self, step: int, params_like, opt_state_like):
        verify_checksums(os.path.join(self.directory, str(step)))
        items = {"params": ocp.args.StandardRestore(_abstract(params_like)),
                 "meta": ocp.args.JsonRestore()}
        if opt_state_like is not None:
            items["opt_state"] = ocp.args.StandardRestore(_abstract(opt_state_like))
        try:
            out = self.manager.restore(step, args=ocp.args.Composite(**items))
        except ValueError as e:
            if _is_json_error(e):
                raise ValueError(f"checkpoint step {step} in {self.directory} is corrupted: a "
                                 f"metadata file is not valid JSON ({e})") from e
            raise ValueError(f"checkpoint step {step} in {self.directory} does not match the "
                             f"model/optimiser of this config: {e}") from e
        return out["params"], out.get("opt_state"), out["meta"]

    def wait(self):
        """Blocks until the write in flight (if any) is committed."""
        step = self._writing
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - a full disk is named, anything else re-raised
            self._raise_disk_full(e, step)
            raise

    def close(self):
        try:
            self.wait()
        finally:
            self.manager.close()


def read_meta(directory: str, step: int | None = None) -> dict:
    """The JSON record of the latest (or given) step, without reading any array."""
    ckpt = Checkpointer(directory)
    try:
        step = ckpt.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
        return dict(ckpt.manager.restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore()))["meta"])
    finally:
        ckpt.close()


def load_params(directory: str, params_like, step: int | None = None):
    """Parameters only, from the latest (or given) step of another run's checkpoints."""
    ckpt = Checkpointer(directory)
    try:
        params, _, meta = ckpt.restore(step, params_like)
    finally:
        ckpt.close()
    return params, meta
