"""Private: an exclusive advisory lock on a sidecar file, so two writers never interleave.

The zone file itself cannot carry the lock: it is replaced by a rename on every write, and
a lock on the old inode would not stop a writer that opened the new one. The sidecar
(``.NAME.mxflip-lock`` beside the zone file) is never replaced or removed.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mxflip import Sleep, retrying

LOCK_SUFFIX = ".mxflip-lock"


class LockBusy(Exception):
    """Another process holds the lock (raised only after waiting ``timeout``)."""


def lock_path(zone_file: Path) -> Path:
    """The sidecar lock file of ``zone_file``."""
    return zone_file.with_name(f".{zone_file.name}{LOCK_SUFFIX}")


@contextmanager
def exclusive_lock(
    zone_file: Path, *, timeout: float, sleep: Sleep | None = None
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the sidecar of ``zone_file`` for the ``with`` body.

    Waits with jittered backoff (at most ``timeout`` seconds, and a bounded number of
    tries) while another process holds it, then raises :class:`LockBusy`. Raises
    ``OSError`` when the sidecar cannot be created.
    """
    # Read-only is enough for flock, so another user who may write the zone can still take
    # a lock file first created by someone else.
    fd = os.open(lock_path(zone_file), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:

        def take() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockBusy from None

        retry = retrying(
            lambda exc: isinstance(exc, LockBusy),
            attempts=10_000,
            max_wait=0.5,
            max_total=timeout,
            sleep=sleep,
        )
        for attempt in retry:
            with attempt:
                take()
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
