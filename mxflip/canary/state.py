"""The canary state file: what was sent, when, and the last result per domain and path.

Kept beside the operations journal, wherever that is (``$MXFLIP_JOURNAL``, ``[journal]
path`` or the user state folder), unless ``[canary] state_file`` says otherwise; no
secret is ever written there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mxflip.canary._base import FAILING, CanaryError
from mxflip.config import Config
from mxflip.files import JSONStateFile, state_dir
from mxflip.state.base import (
    PreconditionFailed,
    StateBackend,
    VersionedDocument,
    WholeDocumentStore,
)

STATE_VERSION = 1
#: Resolved canaries kept in the state file for history (outstanding ones are always kept;
#: ``check`` gives up on them after twice the retry window, so they are bounded too).
_HISTORY = 200

# ------------------------------------------------------------------------- state


def default_state_dir() -> Path:
    """The user state folder (shared with the journal): see :func:`mxflip.files.state_dir`."""
    return state_dir()


def state_file(config: Config) -> Path:
    """Where canary state lives: ``[canary] state_file``, else ``canary.json`` beside the
    operations journal (wherever ``$MXFLIP_JOURNAL`` or ``[journal] path`` put it)."""
    from mxflip.journal import default_journal_path

    if config.canary is not None and config.canary.state_file is not None:
        return config.canary.state_file
    return default_journal_path(config.journal.path).parent / "canary.json"


@dataclass
class CanaryRecord:
    """One canary that was sent (or could not be): stored in the state file."""

    token: str
    domain: str  # display form, no trailing dot
    path: str  # "primary", "backup" or "live" (a set that is neither profile)
    via: str
    address: str
    sent_at: float
    status: str = "pending"
    host: str | None = None
    tls: str | None = None
    arrived_at: float | None = None
    delay: float | None = None
    checked_at: float | None = None
    error: str | None = None
    #: When ``check`` stopped looking for it: past twice the senders' retry window it can no
    #: longer arrive (the sender has bounced it), and keeping it would grow the state file
    #: for every canary lost during a long outage.
    given_up_at: float | None = None

    @property
    def outstanding(self) -> bool:
        """Still worth looking for: not found yet (a "missing" canary can still arrive,
        late — which is exactly what a delaying proxy does), and not given up on."""
        return (
            self.status in ("pending", "late", "missing")
            and self.arrived_at is None
            and self.given_up_at is None
        )


@dataclass
class PathSummary:
    """The last result for one domain and path, and how long it has been failing."""

    domain: str
    path: str
    status: str
    checked_at: float
    sent_at: float
    delay: float | None = None
    token: str | None = None
    last_success_at: float | None = None
    #: Send time of the first canary in the current run of late/missing/failed ones.
    failing_since: float | None = None


@dataclass
class CanaryState:
    """Everything in the state file. No secret is ever stored here."""

    records: list[CanaryRecord] = field(default_factory=list)
    paths: list[PathSummary] = field(default_factory=list)

    def summary(self, domain: str, path: str) -> PathSummary | None:
        for s in self.paths:
            if s.domain == domain and s.path == path:
                return s
        return None

    def record_result(self, record: CanaryRecord, status: str, now: float) -> None:
        """Fold one canary's result into the per-path summary."""
        old = self.summary(record.domain, record.path)
        if old is not None and record.sent_at < old.sent_at and status != "on_time":
            # An older canary turning up late says nothing newer than what we know.
            return
        new = PathSummary(
            domain=record.domain,
            path=record.path,
            status=status,
            checked_at=now,
            sent_at=record.sent_at,
            delay=record.delay if record.delay is not None else now - record.sent_at,
            token=record.token,
            last_success_at=old.last_success_at if old else None,
            failing_since=old.failing_since if old else None,
        )
        if status == "on_time":
            if old is not None and record.sent_at < old.sent_at:
                return
            new.last_success_at = record.arrived_at or now
            new.failing_since = None
        elif status in FAILING:
            new.failing_since = min(x for x in (new.failing_since, record.sent_at) if x is not None)
        else:
            return
        self.paths = [s for s in self.paths if (s.domain, s.path) != (new.domain, new.path)]
        self.paths.append(new)
        self.paths.sort(key=lambda s: (s.domain, s.path))


class CanaryStore(WholeDocumentStore[CanaryState]):
    """The JSON state file, written atomically, locked while read-modify-written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = JSONStateFile(
            path,
            what="canary state",
            fail=lambda message, hint: CanaryError(message, hint=hint),
            setting="[canary] state_file",
            fresh="the next run starts a fresh history",
            wait=60.0,
            holder="another mxflip is checking canaries",
        )

    def load(self) -> CanaryState:
        """The stored state; empty when the file does not exist yet. A damaged file (not
        JSON, or values of the wrong type) is one clear error."""
        raw = self.file.read()
        return CanaryState() if raw is None else self._decode(raw)

    def _decode(self, raw: Any) -> CanaryState:
        try:
            if not isinstance(raw, dict):
                raise TypeError("not a JSON object")
            return CanaryState(
                records=[_typed(CanaryRecord, r) for r in _list(raw, "canaries")],
                paths=[_typed(PathSummary, p) for p in _list(raw, "paths")],
            )
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            raise self.file.damaged(exc) from None

    @staticmethod
    def _encode(state: CanaryState) -> dict[str, Any]:
        outstanding = [r for r in state.records if r.outstanding]
        done = [r for r in state.records if not r.outstanding][-_HISTORY:]
        return {
            "version": STATE_VERSION,
            "canaries": [asdict(r) for r in sorted(outstanding + done, key=_by_sent)],
            "paths": [asdict(p) for p in state.paths],
        }

    def save(self, state: CanaryState) -> None:
        """Write atomically (temporary file, then rename), readable by the owner only."""
        self.file.write(self._encode(state))

    def guard(self) -> contextlib.AbstractContextManager[object]:
        """One process at a time."""
        return self.file.updating()


def _list(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TypeError(f"{key!r} is not a list of objects")
    return value


def _typed(cls: Any, data: Mapping[str, Any]) -> Any:
    """``cls(**data)`` after checking each value against the field's declared type (a
    string where a time belongs would crash a later comparison)."""
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, kind = data[f.name], str(f.type)
        if value is None and "None" in kind:
            continue
        if kind.startswith("float"):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value):
                raise TypeError(f"{f.name!r} is not a finite number")
        elif kind.startswith("str") and not isinstance(value, str):
            raise TypeError(f"{f.name!r} is not a string")
    return cls(**data)


class SharedCanaryStore(CanaryStore):
    """Canary state as one document of a shared state backend ([state] backend = "s3"),
    written only at the version it was read (two checkers never overwrite each other)."""

    KEY = "canary"

    def __init__(self, backend: StateBackend) -> None:
        super().__init__(Path(f"{backend.path}state/{self.KEY}.json"))
        self.document = VersionedDocument(backend, self.KEY)

    def load(self) -> CanaryState:
        data = self.document.load()
        return self._decode(data) if data is not None else CanaryState()

    def save(self, state: CanaryState) -> None:
        try:
            self.document.save(self._encode(state))
        except PreconditionFailed:
            raise CanaryError(
                f"canary state {self.path} was changed by another run meanwhile",
                hint="run the command again",
            ) from None

    def guard(self) -> contextlib.AbstractContextManager[object]:
        # Not the file's lock: the save is conditional on the version loaded.
        return contextlib.nullcontext()


def canary_store(config: Config) -> CanaryStore:
    """Where this configuration keeps canary state: the shared backend, or the file."""
    if config.state.backend != "local":
        from mxflip.state import open_state

        return SharedCanaryStore(open_state(config))
    return CanaryStore(state_file(config))


def _by_sent(r: CanaryRecord) -> float:
    return r.sent_at
