"""The one interface every state backend offers, and the values it trades in.

A backend holds three things for a configuration: the operations journal (append-only
records), the operation lock, and small documents (canary state, the watcher's per-domain
state, leader leases) written with a precondition so two writers never overwrite each
other blindly. ``local`` keeps them in files (today's behaviour); ``s3`` keeps them in a
bucket with conditional writes, so a team shares one journal and one lock.

Nothing secret is ever stored: object keys and bodies hold names and records only.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from mxflip.errors import ExitCode, MxflipError

if TYPE_CHECKING:
    from mxflip.journal import JournalView

#: Document keys: lower-case names and slashes, no ``..``: they become object keys and
#: file names, so they must not escape the prefix or the state folder.
_KEY = re.compile(r"[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*")


class StateError(MxflipError):
    """The shared state cannot be read or written (exit 3: nothing starts without it)."""

    exit_code = ExitCode.FAILURE


class PreconditionFailed(StateError):
    """A conditional write was refused: another writer created or changed the object."""


@dataclass(frozen=True)
class Document:
    """A stored document and the version it was read at (an ETag, or a content hash)."""

    data: dict[str, Any]
    version: str


def check_key(key: str) -> str:
    """``key`` when it is a valid document key, else ValueError (a programming error)."""
    if not _KEY.fullmatch(key) or ".." in key or len(key) > 200:
        raise ValueError(f"{key!r} is not a state document key")
    return key


def encode(data: Mapping[str, Any]) -> bytes:
    """The one serialisation of documents and journal records (stable, compact)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@runtime_checkable
class JournalStore(Protocol):
    """What the engine, a rollout and a drill need: append, read, and the lock."""

    @property
    def path(self) -> Path | str:
        """Where the journal lives, for messages (a file, or ``s3://bucket/prefix/``)."""
        ...

    def append(self, record: Mapping[str, Any]) -> None: ...

    def flush(self) -> None:
        """Return once every record appended so far is where other readers see it: a
        rollout calls it before each DNS change (the records announcing the change land
        first). A backend may write records in the background until then."""
        ...

    def read(self) -> JournalView: ...

    def lock(self, command: str, *, now: float | None = None) -> AbstractContextManager[Any]: ...


class StateBackend(JournalStore, Protocol):
    """A journal store plus documents, the force-unlock and settling of pending records."""

    #: ``local`` or ``s3``.
    kind: str

    def get(self, key: str) -> Document | None:
        """The document at ``key`` and its version; None when there is none."""
        ...

    def put(self, key: str, data: Mapping[str, Any], *, version: str | None) -> str:
        """Write ``data`` at ``key`` only if it is still at ``version`` (None: only if it
        does not exist yet); returns the new version. Raises :class:`PreconditionFailed`."""
        ...

    def delete(self, key: str, *, version: str) -> None:
        """Remove ``key`` only if it is still at ``version`` (PreconditionFailed else)."""
        ...

    def force_unlock(self, lock_id: str, reason: str) -> dict[str, Any]:
        """Remove the operation lock ``lock_id`` for a person (journalled); returns what
        the lock held. UsageError when no such lock is held."""
        ...

    def settle(self) -> int:
        """Write records kept locally while the backend was unreachable; how many."""
        ...

    def holder(self) -> str | None:
        """Who holds the operation lock now (None: nobody, or it cannot be told)."""
        ...

    def close(self) -> None: ...


def update_document(
    store: StateBackend,
    key: str,
    change: Callable[[dict[str, Any] | None], dict[str, Any]],
    *,
    attempts: int = 5,
) -> tuple[dict[str, Any], str]:
    """Read-modify-write ``key``: ``change`` gets the stored data (None: absent) and
    returns the new data; it is called again (bounded) when another writer got there
    first. Returns what was written and its version."""
    for _ in range(attempts):
        doc = store.get(key)
        data = change(dict(doc.data) if doc else None)
        try:
            return data, store.put(key, data, version=doc.version if doc else None)
        except PreconditionFailed:
            continue
    raise PreconditionFailed(
        f"the state document {key} kept changing under {attempts} attempts to update it",
        hint="another process writes it in a loop; run the command again",
    )


_State = TypeVar("_State")


class WholeDocumentStore(Generic[_State]):
    """A whole state document loaded, changed and saved: the shape of the canary and watch
    stores, local or shared. Subclasses give ``load``/``save`` and, where the store needs
    it, a ``guard`` held across :meth:`update`."""

    def load(self) -> _State:
        raise NotImplementedError

    def save(self, state: _State) -> None:
        raise NotImplementedError

    def guard(self) -> AbstractContextManager[object]:
        """Held across ``update``'s read-modify-write: a file's lock locally. A shared
        document needs none: its save is conditional on the version it loaded."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def update(self) -> Iterator[_State]:
        """Load, let the caller change, save."""
        with self.guard():
            state = self.load()
            yield state
            self.save(state)


class VersionedDocument:
    """One document loaded and saved whole, saved only at the version last loaded: the
    shape of the canary and watch stores (``load``/``save``/``update``) over a backend."""

    def __init__(self, backend: StateBackend, key: str) -> None:
        self.backend = backend
        self.key = check_key(key)
        self.version: str | None = None

    def load(self) -> dict[str, Any] | None:
        doc = self.backend.get(self.key)
        self.version = doc.version if doc else None
        return doc.data if doc else None

    def save(self, data: Mapping[str, Any]) -> None:
        """Raises :class:`PreconditionFailed` when another writer saved it since."""
        self.version = self.backend.put(self.key, data, version=self.version)
