"""One run per workdir: a lock file that names its holder.

Two runs writing one workdir interleave their metrics and delete each other's
checkpoints. :func:`acquire` creates ``WORKDIR/.lock`` atomically with the holder's
PID, host and start time; a second run refuses with those. A lock whose process is
gone (same host, PID not alive) is stale: it is taken over, with a message. The lock
is released when the process exits. Only process 0 of a multi-host run locks.

In a bucket (``gs://``) the lock is an object written after checking that none
exists: two runs started within the same second could both take it (object stores
have no exclusive create through this interface); the lock still stops the common
mistake of starting a second run on a live workdir.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import time

from igpo_jax import storage

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_HELD: set[str] = set()


class WorkdirBusy(RuntimeError):
    """Another live run holds the workdir."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: str) -> dict:
    try:
        return json.loads(storage.read_text(path))
    except (OSError, ValueError):
        return {}


def _create(path: str, me: dict) -> bool:
    """Writes the lock file unless it exists; False if it did."""
    if storage.is_cloud(path):
        if storage.exists(path):
            return False
        storage.write_text(path, json.dumps(me))
        return True
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(me, f)
    return True


def acquire(workdir: str) -> str:
    """Locks ``workdir`` for this process (re-entrant); returns the lock file's path."""
    path = os.path.join(storage.absolute(workdir), LOCK_NAME)
    if path in _HELD:
        return path
    me = dict(pid=os.getpid(), host=socket.gethostname(), since=time.strftime("%Y-%m-%d %H:%M:%S"))
    for _ in range(3):
        if not _create(path, me):
            h = _holder(path)
            pid, host = h.get("pid"), h.get("host")
            if host == me["host"] and isinstance(pid, int) and pid != me["pid"] and _alive(pid):
                raise WorkdirBusy(
                    f"workdir {workdir} is in use by another run: PID {pid} on {host} (since "
                    f"{h.get('since', '?')}). Wait for it to finish or stop it; two runs on "
                    f"one workdir would corrupt each other's checkpoints and metrics") from None
            if host not in (None, me["host"]):
                raise WorkdirBusy(
                    f"workdir {workdir} is locked by PID {pid} on host {host} (since "
                    f"{h.get('since', '?')}); this host cannot tell whether that run is alive. "
                    f"If it is gone, delete {path}") from None
            log.warning("taking over the stale lock of %s (PID %s on %s is gone)", workdir,
                        pid, host)
            storage.remove(path)
            continue
        _HELD.add(path)
        return path
    raise WorkdirBusy(f"could not lock {workdir}: another run keeps taking the lock")


def release(workdir: str) -> None:
    path = os.path.join(storage.absolute(workdir), LOCK_NAME)
    if path in _HELD:
        _HELD.discard(path)
        if _holder(path).get("pid") == os.getpid():
            storage.remove(path)


@atexit.register
def _release_all() -> None:
    for path in list(_HELD):
        release(os.path.dirname(path))
