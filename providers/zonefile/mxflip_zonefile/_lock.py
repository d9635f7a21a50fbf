"""Private: where the zone file's lock lives, and holding it with mxflip's lock helper.

The zone file itself cannot carry the lock: it is replaced by a rename on every write, and
a lock on the old inode would not stop a writer that opened the new one. The sidecar
(``.NAME.mxflip-lock`` beside the zone file) is never replaced, truncated or removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mxflip import LockBusy, Sleep, locked

LOCK_SUFFIX = ".mxflip-lock"

__all__ = ["LOCK_SUFFIX", "LockBusy", "exclusive_lock", "lock_path"]


def lock_path(zone_file: Path) -> Path:
    """The sidecar lock file of ``zone_file``."""
    return zone_file.with_name(f".{zone_file.name}{LOCK_SUFFIX}")


@contextmanager
def exclusive_lock(
    zone_file: Path, *, timeout: float, sleep: Sleep | None = None
) -> Iterator[None]:
    """Hold an exclusive lock on the sidecar of ``zone_file`` for the ``with`` body,
    waiting at most ``timeout`` seconds (then :class:`LockBusy`). Raises ``OSError`` when
    the sidecar cannot be created."""
    # Read-only is enough for flock, so another user who may write the zone can still take
    # a lock file first created by someone else.
    with locked(lock_path(zone_file), wait=max(timeout, 1e-3), writable=False, sleep=sleep):
        yield
