"""The local state backend: today's files in the user's state folder.

The journal and its lock are :class:`mxflip.journal.Journal` itself (one lock, one append);
documents are JSON files under ``state/`` beside the journal, replaced atomically under a
short lock, their version a hash of their bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mxflip.clock import Clock
from mxflip.errors import UsageError
from mxflip.files import LockBusy, atomic_write, ensure_private_folder, locked, read_bytes
from mxflip.journal import Journal, JournalError
from mxflip.state.base import Document, PreconditionFailed, StateError, check_key, encode


class LocalBackend(Journal):
    """Files: the journal (JSON lines), its flock, and documents."""

    kind = "local"

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        super().__init__(path, clock=clock)
        self.problems: list[str] = []

    @property
    def home(self) -> Path:
        return self.path.parent

    def _doc_path(self, key: str) -> Path:
        return self.home / "state" / (check_key(key) + ".json")

    @contextlib.contextmanager
    def _documents_locked(self) -> Iterator[None]:
        """One writer of documents at a time (a check and a write are one step)."""
        folder = self.home / "state"
        try:
            ensure_private_folder(folder)
            with locked(folder / ".lock", wait=30.0):
                yield
        except LockBusy:
            raise StateError(
                f"the state folder {folder} stayed locked by another mxflip for 30 s"
            ) from None
        except OSError as exc:
            raise StateError(
                f"cannot lock the state folder {folder}: {exc.strerror or exc}",
                hint="set [journal] path to a writable, private place",
            ) from None

    def _load(self, path: Path) -> Document | None:
        try:
            raw = read_bytes(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise StateError(f"the state file {path} is damaged", hint="move it aside")
        return Document(data, hashlib.sha256(raw).hexdigest()[:32])

    def get(self, key: str) -> Document | None:
        return self._load(self._doc_path(key))

    def put(self, key: str, data: Mapping[str, Any], *, version: str | None) -> str:
        path = self._doc_path(key)
        body = encode(data)
        with self._documents_locked():
            current = self._load(path)
            if (current.version if current else None) != version:
                raise PreconditionFailed(
                    f"the state file {path} was changed by another process",
                    hint="run the command again",
                )
            try:
                ensure_private_folder(path.parent)
                atomic_write(path, body, mode=0o600)
            except OSError as exc:
                raise StateError(f"cannot write {path}: {exc.strerror or exc}") from None
        return hashlib.sha256(body).hexdigest()[:32]

    def delete(self, key: str, *, version: str) -> None:
        path = self._doc_path(key)
        with self._documents_locked():
            current = self._load(path)
            if current is None or current.version != version:
                raise PreconditionFailed(f"the state file {path} was changed by another process")
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def force_unlock(self, lock_id: str, reason: str) -> dict[str, Any]:
        raise UsageError(
            "the local lock needs no force: it is released when its holder process ends",
            hint="'mxflip unlock --force' is for the shared ([state] backend = \"s3\") lock",
        )

    def settle(self) -> int:
        return 0

    def close(self) -> None:
        return None


__all__ = ["JournalError", "LocalBackend"]
