"""The canary state file: what was sent, when, and the last result per domain and path.

Kept beside the operations journal (``$XDG_STATE_HOME/mxflip``); no secret is ever
written there.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mxflip.canary._base import FAILING, CanaryError
from mxflip.config import CanaryConfig
from mxflip.statefile import atomic_write, read_modify_write

STATE_VERSION = 1
#: Resolved canaries kept in the state file for history (outstanding ones are always kept).
_HISTORY = 200

# ------------------------------------------------------------------------- state


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/mxflip`` or ``~/.local/state/mxflip`` (shared with the journal)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mxflip"


def state_file(canary: CanaryConfig) -> Path:
    """Where canary state lives: ``[canary] state_file`` or ``canary.json`` in the state
    folder."""
    return canary.state_file or default_state_dir() / "canary.json"


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

    @property
    def outstanding(self) -> bool:
        """Still worth looking for: not found yet (a "missing" canary can still arrive,
        late — which is exactly what a delaying proxy does)."""
        return self.status in ("pending", "late", "missing") and self.arrived_at is None


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


class CanaryStore:
    """The JSON state file, written atomically, locked while read-modify-written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> CanaryState:
        """The stored state; empty when the file does not exist yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return CanaryState()
        except OSError as exc:
            raise CanaryError(f"cannot read canary state {self.path}: {exc.strerror}") from None
        try:
            raw = json.loads(text)
            return CanaryState(
                records=[CanaryRecord(**r) for r in raw.get("canaries", [])],
                paths=[PathSummary(**p) for p in raw.get("paths", [])],
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise CanaryError(
                f"canary state {self.path} is damaged: {exc}",
                hint="move it aside; the next run starts a fresh history",
            ) from None

    def save(self, state: CanaryState) -> None:
        """Write atomically (temporary file, then rename), readable by the owner only."""
        outstanding = [r for r in state.records if r.outstanding]
        done = [r for r in state.records if not r.outstanding][-_HISTORY:]
        doc = {
            "version": STATE_VERSION,
            "canaries": [asdict(r) for r in sorted(outstanding + done, key=_by_sent)],
            "paths": [asdict(p) for p in state.paths],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, json.dumps(doc, indent=1) + "\n", mode=0o600)
        except OSError as exc:
            raise CanaryError(
                f"cannot write canary state {self.path}: {exc.strerror or exc}",
                hint="set [canary] state_file to a writable place",
            ) from None

    @contextlib.contextmanager
    def update(self) -> Iterator[CanaryState]:
        """Load, let the caller change, save; one process at a time."""
        with read_modify_write(
            self.path,
            self.load,
            self.save,
            lambda exc: CanaryError(f"cannot lock canary state {self.path}: {exc.strerror or exc}"),
        ) as state:
            yield state


def _by_sent(r: CanaryRecord) -> float:
    return r.sent_at
