"""Every file the project reads or writes, local or in a bucket, goes through here.

A TPU slice has no shared disk: its runs keep their workdir in a bucket
(``--workdir gs://bucket/runs/x``). Paths stay plain strings everywhere (configs,
checkpoint records, logs); the functions below open, list, move and delete them through
``etils.epath``, which serves local paths with the OS and cloud URLs (``gs://``,
``s3://``) with fsspec (``gcsfs`` for ``gs://``: ``pip install -e ".[gcs]"``). Orbax
writes its arrays to the same URLs through TensorStore. ``os.path.join``, ``basename``
and ``dirname`` are correct on URLs and are used as they are; ``os.path.abspath`` is
not (it turns ``gs://b/x`` into ``$PWD/gs:/b/x``), hence :func:`absolute`.

Writes are whole-file: :func:`write_text` replaces a local file atomically (temporary
file + rename) and a cloud object is replaced in one upload; :func:`append_text`
rewrites the object on a bucket (objects cannot be appended), which suits the small
JSONL records this project appends to.
"""

from __future__ import annotations

import os
from typing import Iterator

CLOUD_SCHEMES = ("gs://", "s3://")


def is_cloud(p) -> bool:
    return str(p).startswith(CLOUD_SCHEMES)


def _check_backend(p: str) -> None:
    if str(p).startswith("gs://"):
        import importlib.util
        if (importlib.util.find_spec("gcsfs") is None
                and importlib.util.find_spec("tensorflow") is None):
            raise ImportError(f"{p}: a gs:// path needs gcsfs (pip install -e \".[gcs]\")")


def path(p):
    """``etils.epath.Path`` of ``p`` (a local path or a cloud URL)."""
    from etils import epath
    s = str(p)
    if is_cloud(s):
        _check_backend(s)
    return epath.Path(s)


def absolute(p: str) -> str:
    """``os.path.abspath`` for local paths; cloud URLs are returned unchanged."""
    s = str(p)
    return s.rstrip("/") if is_cloud(s) else os.path.abspath(s)


def exists(p) -> bool:
    return path(p).exists() if is_cloud(p) else os.path.exists(p)


def isdir(p) -> bool:
    return path(p).is_dir() if is_cloud(p) else os.path.isdir(p)


def makedirs(p) -> None:
    """Creates ``p`` and its parents (a no-op on buckets, which have no folders)."""
    if is_cloud(p):
        path(p).mkdir(parents=True, exist_ok=True)
    else:
        os.makedirs(p, exist_ok=True)


def open_file(p, mode: str = "r", encoding: str | None = "utf-8"):
    if "b" in mode:
        encoding = None
    if is_cloud(p):
        return path(p).open(mode, encoding=encoding) if encoding else path(p).open(mode)
    return open(p, mode, encoding=encoding)


def read_text(p) -> str:
    with open_file(p) as f:
        return f.read()


def read_bytes(p) -> bytes:
    with open_file(p, "rb") as f:
        return f.read()


def write_text(p, text: str) -> None:
    """Replaces ``p`` with ``text`` as one step: readers see the old or the new file,
    never half of one."""
    if is_cloud(p):
        path(p).write_text(text)
        return
    tmp = f"{p}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, p)


def append_text(p, text: str) -> None:
    if is_cloud(p):
        old = read_text(p) if exists(p) else ""
        path(p).write_text(old + text)
        return
    with open(p, "a", encoding="utf-8") as f:
        f.write(text)


def remove(p) -> None:
    """Deletes the file ``p`` if it exists."""
    try:
        if is_cloud(p):
            if exists(p):
                path(p).unlink()
        else:
            os.remove(p)
    except FileNotFoundError:
        pass


def listdir(p) -> list[str]:
    """Names (not paths) of the entries of folder ``p``."""
    if is_cloud(p):
        return sorted(q.name for q in path(p).iterdir())
    return sorted(os.listdir(p))


def files_under(p) -> Iterator[str]:
    """Paths relative to ``p`` of every file below folder ``p``."""
    if not is_cloud(p):
        for root, _, files in os.walk(p):
            for name in files:
                yield os.path.relpath(os.path.join(root, name), p)
        return
    base = str(p).split("://", 1)[1].rstrip("/")  # walk() names folders without the scheme
    for root, _, files in path(p).walk():
        r = str(root).split("://", 1)[-1]
        rel = r[len(base):].strip("/") if r.startswith(base) else r
        for name in files:
            yield f"{rel}/{name}" if rel else name


def move(src, dst) -> None:
    """Moves a file or a folder (on a bucket: copies every object, then deletes)."""
    if not is_cloud(src) and not is_cloud(dst):
        import shutil
        shutil.move(src, dst)
        return
    if isdir(src):
        for rel in list(files_under(src)):
            path(os.path.join(dst, rel)).write_bytes(read_bytes(os.path.join(src, rel)))
        path(src).rmtree()
    else:
        path(dst).write_bytes(read_bytes(src))
        remove(src)


def rmtree(p) -> None:
    if isdir(p):
        path(p).rmtree()


def copy_file(src, dst) -> None:
    path(dst).write_bytes(read_bytes(src))
