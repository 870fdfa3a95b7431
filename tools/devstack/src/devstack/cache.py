"""The download/build cache: entries keyed by a content hash, built aside, renamed into place.

An interrupted download or build leaves only a ``.tmp-*`` directory, which the next attempt
removes; a cache entry either exists complete or not at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


def content_key(*files: Path, length: int = 16) -> str:
    """A hash of the files' names and contents (order matters)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:length]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the ``with`` block (blocks until free)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def provision(target: Path, build: Callable[[Path], None]) -> bool:
    """Make sure the directory ``target`` exists, building it with ``build(tmp_dir)`` if not.

    ``build`` fills a fresh temporary directory next to ``target``; only when it returns is that
    directory renamed to ``target``. Returns True when it built, False when the entry was cached.
    """
    if target.is_dir():
        return False
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with file_lock(parent / f".{target.name}.lock"):
        if target.is_dir():
            return False  # another process built it while we waited
        for stale in parent.glob(f".tmp-{target.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = parent / f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            build(tmp)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return True
