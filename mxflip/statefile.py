"""Small state files beside the journal (canary, watch): the one atomic write and the one
advisory lock for a read-modify-write by one process at a time."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``:
    a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def read_modify_write(
    path: Path,
    load: Callable[[], T],
    save: Callable[[T], None],
    cannot_lock: Callable[[OSError], Exception],
) -> Iterator[T]:
    """Load, let the caller change, save, holding ``PATH.lock`` (one process at a time).
    ``cannot_lock`` turns a folder or lock file that cannot be made into the caller's
    error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
    except OSError as exc:
        raise cannot_lock(exc) from None
    with lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        state = load()
        yield state
        save(state)
