"""Where mxflip keeps its state: the operations journal, the operation lock, canary
state and the watcher's documents — in local files (``[state] backend = "local"``, the
default) or shared in an S3 bucket (``"s3"``) so that a team sees one journal and one lock.

:func:`open_state` builds the configured backend; the S3 one (and botocore) is imported
only when configured.

For the watcher (and anything else keeping small state): ``backend.get(key)`` returns a
:class:`Document` (data and version) or None; ``backend.put(key, data, version=...)``
writes only if the document is still at that version (None: only if absent) and raises
:class:`PreconditionFailed` otherwise; :func:`update_document` wraps the two in a bounded
read-modify-write, and :class:`VersionedDocument` loads and saves one whole document (the
shape of the canary and watch stores). Keys are lower-case paths such as ``watch/example.com``.
:class:`mxflip.state.lease.Leader` elects one leader among several watchers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mxflip.state.base import (
    Document,
    JournalStore,
    PreconditionFailed,
    StateBackend,
    StateError,
    VersionedDocument,
    update_document,
)

if TYPE_CHECKING:
    from mxflip.clock import Clock
    from mxflip.config import Config
    from mxflip.retry import Sleep

__all__ = [
    "Document",
    "JournalStore",
    "PreconditionFailed",
    "StateBackend",
    "StateError",
    "VersionedDocument",
    "open_state",
    "update_document",
]


def open_state(
    config: Config,
    *,
    journal_path: Path | None = None,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
) -> StateBackend:
    """The configured backend. ``journal_path`` overrides where local files live (the
    S3 backend keeps only its pending-records file there). ``clock`` dates the lock and
    judges the S3 lease (the command's clock, so tests control expiry without sleeping)."""
    from mxflip.journal import default_journal_path

    path = journal_path or default_journal_path(config.journal.path)
    if config.state.backend == "s3":
        from mxflip.state.s3 import S3Backend

        return S3Backend(config.state, home=path.parent, clock=clock, sleep=sleep)
    from mxflip.state.local import LocalBackend

    return LocalBackend(path, clock=clock)
