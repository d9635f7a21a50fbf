"""Watch state that survives restarts: per-domain machine state, alert conditions,
proposals, the automatic-switch history and the last 24 h of canary delays.

Everything goes through one small interface (:class:`WatchStore`, a
:class:`~mxflip.state.base.WholeDocumentStore`: ``load``, ``save`` and ``update``). With
``[state] backend = "local"`` it is a JSON file beside the journal, written atomically,
mode 0600; with ``"s3"`` it is the shared document ``watch`` of the state backend
(:class:`SharedWatchStore`), saved only at the version last read, so a leader's round and
an ``approve`` elsewhere never overwrite each other blindly. No secret is ever stored
(alerts hold sentences, never channel URLs).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mxflip.errors import MxflipError
from mxflip.files import JSONStateFile
from mxflip.state.base import (
    PreconditionFailed,
    StateBackend,
    StateError,
    VersionedDocument,
    WholeDocumentStore,
)

STATE_VERSION = 1
STATE_NAME = "watch.json"
#: The watch state's document key in a shared backend.
WATCH_KEY = "watch"
#: Canary delay samples kept for the page's chart.
SERIES_SECONDS = 86400.0
#: Alerts that could not be delivered, kept to retry next round (oldest dropped first).
OUTBOX_MAX = 100


class WatchStateError(MxflipError):
    """The watch state cannot be read or written."""


class WatchStateConflict(WatchStateError):
    """The shared watch state changed since it was read (another writer saved first)."""


@dataclass
class Condition:
    """An alert condition that is (or was) active for a domain: raised once, reminded
    every ``remind_every``, resolved once. Not a :class:`mxflip.plan.Finding` (which
    blocks or warns about one operation): this remembers what people were told, and when."""

    message: str
    since: float
    last_sent: float
    severity: str = "warning"


@dataclass
class DomainState:
    """One domain's place in ``ok → suspect → failing → switched → recovering``."""

    state: str = "ok"
    since: float = 0.0
    #: Consecutive rounds the primary path failed while the backup path delivered.
    failing_rounds: int = 0
    #: Consecutive rounds the primary path delivered on time while on the backup set.
    recovered_rounds: int = 0
    last_switch_at: float | None = None
    #: Round-robin position among the live hosts for the per-host canary.
    host_cursor: int = 0
    #: Canary token → the MX host it was sent through (per-host verdicts).
    tokens: dict[str, str] = field(default_factory=dict)
    #: The provider's records seen last round ("PREF HOST." strings; None: none).
    last_records: list[str] | None = None
    last_round_at: float | None = None
    conditions: dict[str, Condition] = field(default_factory=dict)
    #: Failed actions, tracked like conditions (apart: they are known later in a round).
    action_conditions: dict[str, Condition] = field(default_factory=dict)
    #: Last verdicts, for the page: {"backup": "ready", "live": "ready"}.
    readiness: dict[str, str] = field(default_factory=dict)


@dataclass
class Proposal:
    """A plan the watcher built and a person may approve (``mxflip approve ID``)."""

    id: str
    domain: str
    kind: str  # failover, failback, drain
    target: str  # the domain, or the host for drain
    plan_hash: str
    created_at: float
    expires_at: float
    evidence: str
    now: bool = True
    status: str = "pending"  # pending, approved, expired, failed, superseded
    operation: str | None = None
    error: str | None = None

    def open(self, now: float) -> bool:
        return self.status == "pending" and now < self.expires_at


@dataclass
class WatchState:
    """Everything the watcher remembers."""

    domains: dict[str, DomainState] = field(default_factory=dict)
    proposals: list[Proposal] = field(default_factory=list)
    #: Times of automatic switches (for ``max_auto_switches`` per ``auto_window``).
    auto_switches: list[float] = field(default_factory=list)
    #: (time, domain, path, delay seconds or None for failing, status)
    series: list[tuple[float, str, str, float | None, str]] = field(default_factory=list)
    #: Alerts not delivered yet: {"title", "body", "kind", "at"}.
    outbox: list[dict[str, Any]] = field(default_factory=list)
    last_round_at: float | None = None

    def domain(self, name: str) -> DomainState:
        return self.domains.setdefault(name, DomainState())

    def proposal(self, ident: str) -> Proposal | None:
        for p in self.proposals:
            if p.id == ident or (len(ident) >= 4 and p.id.startswith(ident)):
                return p
        return None

    def trim(self, now: float) -> None:
        self.series = [s for s in self.series if now - s[0] <= SERIES_SECONDS]
        self.outbox = self.outbox[-OUTBOX_MAX:]
        self.proposals = [
            p for p in self.proposals if p.open(now) or now - p.created_at < 7 * 86400
        ]


#: Where watch state lives: load, save, and a read-modify-write (``update``).
WatchStore = WholeDocumentStore[WatchState]


def default_state_path(journal_path: Path) -> Path:
    """``watch.json`` beside the journal."""
    return journal_path.with_name(STATE_NAME)


class LocalWatchStore(WholeDocumentStore[WatchState]):
    """The JSON file backend."""

    def __init__(self, path: Path, *, wait: float = 900.0) -> None:
        self.path = path
        #: How long ``update`` waits for another holder (a watcher's round holds it).
        self.wait = wait
        self.file = JSONStateFile(
            path,
            what="watch state",
            fail=lambda message, hint: WatchStateError(message, hint=hint),
            setting="[watch] state_file",
            fresh="the watcher starts afresh (every domain as ok)",
            wait=wait,
            holder="a round of the watcher holds it while it runs",
        )

    def load(self) -> WatchState:
        raw = self.file.read()
        return (
            WatchState()
            if raw is None
            else parse_state(raw, f"watch state {self.path}", "move it aside")
        )

    def save(self, state: WatchState) -> None:
        self.file.write(to_json(state))

    def guard(self) -> contextlib.AbstractContextManager[object]:
        return self.file.updating()


def parse_state(raw: Any, where: str, remedy: str) -> WatchState:
    """The stored document as a WatchState, or one line naming ``where`` it is damaged."""
    try:
        return _from_json(raw)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise WatchStateError(
            f"{where} is damaged: {exc}",
            hint=f"{remedy}; the watcher starts afresh (every domain as ok)",
        ) from None


def to_json(state: WatchState) -> dict[str, Any]:
    return {"version": STATE_VERSION, **asdict(state)}


class SharedWatchStore(WholeDocumentStore[WatchState]):
    """The watch state as one document of a shared state backend."""

    def __init__(self, backend: StateBackend, key: str = WATCH_KEY) -> None:
        self.document = VersionedDocument(backend, key)
        self.path = f"{backend.path}{key}"

    def load(self) -> WatchState:
        try:
            raw = self.document.load()
        except StateError as exc:
            raise WatchStateError(f"cannot read the shared watch state: {exc.message}") from None
        if raw is None:
            return WatchState()
        return parse_state(raw, f"the shared watch state {self.path}", "delete the object")

    def save(self, state: WatchState) -> None:
        """Write at the version loaded (WatchStateConflict when another writer got there
        first: nothing of theirs is lost, the caller retries)."""
        try:
            self.document.save(to_json(state))
        except PreconditionFailed:
            raise WatchStateConflict(
                f"the shared watch state {self.path} changed since it was read",
                hint="run the command again",
            ) from None
        except StateError as exc:
            raise WatchStateError(f"cannot write the shared watch state: {exc.message}") from None


def _from_json(raw: dict[str, Any]) -> WatchState:
    domains = {}
    for name, d in raw.get("domains", {}).items():
        d = dict(d)
        for key in ("conditions", "action_conditions"):
            d[key] = {k: Condition(**c) for k, c in d.get(key, {}).items()}
        domains[name] = DomainState(**d)
    return WatchState(
        domains=domains,
        proposals=[Proposal(**p) for p in raw.get("proposals", [])],
        auto_switches=[float(t) for t in raw.get("auto_switches", [])],
        series=[(float(t), str(d), str(p), v, str(s)) for t, d, p, v, s in raw.get("series", [])],
        outbox=list(raw.get("outbox", [])),
        last_round_at=raw.get("last_round_at"),
    )


def open_store(
    watch_state_file: Path | None, journal_path: Path, backend: StateBackend | None = None
) -> WatchStore:
    """The configured backend: the shared document when ``backend`` is shared (s3), else
    the local file."""
    if backend is not None and backend.kind != "local":
        return SharedWatchStore(backend)
    return LocalWatchStore(watch_state_file or default_state_path(journal_path))
