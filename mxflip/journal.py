"""The operation journal (append-only JSON lines) and the lock that serialises operations.

Every changing command writes an ``intent`` record before it changes anything, a
``phase`` record as each phase starts and ends, and a ``result`` record at the end. An
operation with an intent but no result was interrupted (Ctrl-C, kill, crash, lost network);
the next command sees it and offers ``resume`` or ``rollback``.

Each record is fsynced before the code goes on, so a record the journal holds describes
something that was about to happen or did happen. Reading tolerates a torn line (a crash in
the middle of a write): it is skipped, and the next write starts on a fresh line.

Only names and records are written: never settings, keys or tokens.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mxflip.errors import ExitCode, MxflipError
from mxflip.records import MX, RRset

JOURNAL_ENV = "MXFLIP_JOURNAL"
JOURNAL_NAME = "journal.jsonl"

#: Operation outcomes. ``interrupted`` is also inferred for an intent without a result.
OUTCOMES = ("done", "failed", "rolled-back", "interrupted", "aborted")


class JournalError(MxflipError):
    """The journal cannot be read or written."""


class LockedError(MxflipError):
    """Another mxflip operation holds the lock."""

    exit_code = ExitCode.FAILURE


def default_journal_path(configured: Path | None = None) -> Path:
    """``$MXFLIP_JOURNAL``, else the config's ``[journal] path``, else the user state
    directory (``$XDG_STATE_HOME/mxflip/journal.jsonl`` or
    ``~/.local/state/mxflip/journal.jsonl``)."""
    env = os.environ.get(JOURNAL_ENV)
    if env:
        return Path(env).expanduser()
    if configured is not None:
        return configured
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "mxflip" / JOURNAL_NAME


def new_operation_id(now: float) -> str:
    """Sortable by time: ``20261123T161200Z-3f9a1c``."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def rrset_json(rrset: RRset | None) -> dict[str, Any] | None:
    """The journal's form of an RRset (``None``: the name had no MX RRset)."""
    if rrset is None:
        return None
    return {"name": rrset.name, "ttl": rrset.ttl, "records": rrset.strings()}


def rrset_from_json(data: Mapping[str, Any] | None) -> RRset | None:
    if data is None:
        return None
    return RRset(data["name"], int(data["ttl"]), frozenset(MX.parse(r) for r in data["records"]))


def whoami() -> tuple[str, str]:
    """(user, host) for the journal and the lock holder."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, socket.gethostname()


# ------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class JournalStep:
    """One domain of an operation as its intent recorded it."""

    domain: str
    zone: str
    provider: str
    before: RRset | None
    prelower: RRset | None
    after: RRset | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JournalStep:
        return cls(
            domain=data["domain"],
            zone=data["zone"],
            provider=data["provider"],
            before=rrset_from_json(data.get("before")),
            prelower=rrset_from_json(data.get("prelower")),
            after=rrset_from_json(data.get("after")),
        )


@dataclass
class Operation:
    """An operation as the journal tells it: its intent, phases and result."""

    id: str
    intent: dict[str, Any]
    phases: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    #: Later records about this operation written by another (``rolled-back by …``).
    notes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.intent.get("kind", "?"))

    @property
    def time(self) -> float:
        return float(self.intent.get("ts", 0.0))

    @property
    def outcome(self) -> str:
        """The last word: a later note (rolled-back, resumed) wins over the result."""
        for note in reversed(self.notes):
            if note.get("outcome"):
                return str(note["outcome"])
        if self.result is None:
            return "interrupted"
        return str(self.result.get("outcome", "?"))

    @property
    def finished(self) -> bool:
        """True when nothing is left half-done: a result, or a later note settled it."""
        return self.outcome != "interrupted"

    @property
    def unsettled(self) -> bool:
        """Interrupted, or failed part-way: the zones may be between before and after."""
        return self.outcome in ("interrupted", "failed")

    @property
    def steps(self) -> list[JournalStep]:
        return [JournalStep.from_json(s) for s in self.intent.get("steps", [])]

    @property
    def changed_anything(self) -> bool:
        return any(s.before != s.after or s.prelower is not None for s in self.steps)

    def phase_done_at(self, phase: str) -> float | None:
        for record in reversed(self.phases):
            if record.get("phase") == phase and record.get("status") == "done":
                return float(record["ts"])
        return None


@dataclass(frozen=True)
class JournalView:
    """Every operation in the journal, oldest first, and how many lines were unreadable."""

    operations: list[Operation]
    skipped_lines: int = 0

    def find(self, op_id: str) -> Operation | None:
        for op in self.operations:
            if op.id == op_id or op.id.startswith(op_id):
                return op
        return None

    def unsettled(self) -> list[Operation]:
        """Operations that may have left zones half-way. A rollback or resume that was
        itself interrupted leaves its parent unsettled, so only the parent is listed."""
        return [
            op
            for op in self.operations
            if op.unsettled and op.changed_anything and op.kind not in ("rollback", "resume")
        ]


class Journal:
    """Reads and appends the JSON-lines journal at ``path``; :meth:`lock` serialises
    operations that share it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise JournalError(
                f"cannot create the journal folder {self.path.parent}: {exc.strerror or exc}",
                hint="set [journal] path in the config or $MXFLIP_JOURNAL to a writable file",
            ) from None

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record and fsync it; the file is created with mode 0600."""
        self._ensure_dir()
        line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(
                f"cannot open the journal {self.path}: {exc.strerror or exc}",
                hint="set [journal] path in the config or $MXFLIP_JOURNAL to a writable file",
            ) from None
        try:
            size = os.fstat(fd).st_size
            if size:
                # A torn last line (crash mid-write) must not swallow this record.
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = "\n" + line
            os.write(fd, line.encode())
            os.fsync(fd)
        except OSError as exc:
            raise JournalError(
                f"cannot write the journal {self.path}: {exc.strerror or exc}"
            ) from None
        finally:
            os.close(fd)

    def read(self) -> JournalView:
        """Every operation, oldest first. Unparseable lines are skipped and counted."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return JournalView([])
        except OSError as exc:
            raise JournalError(f"cannot read the journal {self.path}: {exc.strerror}") from None
        ops: dict[str, Operation] = {}
        skipped = 0
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                op_id = record["op"]
                kind = record["type"]
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if kind == "intent":
                ops[op_id] = Operation(op_id, record)
            elif op_id in ops:
                op = ops[op_id]
                if kind == "phase":
                    op.phases.append(record)
                elif kind == "result":
                    op.result = record
                elif kind == "note":
                    op.notes.append(record)
        return JournalView(sorted(ops.values(), key=lambda o: o.id), skipped)

    @contextlib.contextmanager
    def lock(self, command: str, *, now: float | None = None) -> Iterator[None]:
        """Hold the operation lock for the duration; refuse at once when another process
        holds it, naming the holder (pid, user@host, command, since when)."""
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                raise LockedError(
                    f"another mxflip operation is running: {holder}",
                    hint="wait for it to finish; the lock is released when that process ends",
                ) from None
            user, host = whoami()
            info = {
                "pid": os.getpid(),
                "user": user,
                "host": host,
                "command": command,
                "since": iso(now if now is not None else time.time()),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw)
        return (
            f"pid {info['pid']}, {info['user']}@{info['host']}, "
            f"'{info['command']}', since {info['since']}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown (the lock file has no readable holder information)"


class OperationLog:
    """Writes the records of one operation (intent, phases, result) to a journal."""

    def __init__(self, journal: Journal, op_id: str, clock_now: Any) -> None:
        self.journal = journal
        self.id = op_id
        self._now = clock_now

    def _record(self, record_type: str, **fields: Any) -> None:
        ts = float(self._now())
        self.journal.append(
            {"type": record_type, "op": self.id, "ts": ts, "time": iso(ts), **fields}
        )

    def intent(
        self,
        *,
        kind: str,
        target: str,
        reason: str | None,
        command: Sequence[str],
        plan_hash: str,
        steps: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any],
        parent: str | None = None,
        user: str | None = None,
    ) -> None:
        me, host = whoami()
        self._record(
            "intent",
            kind=kind,
            target=target,
            reason=reason,
            command=list(command),
            user=user or me,
            host=host,
            pid=os.getpid(),
            plan_hash=plan_hash,
            steps=list(steps),
            options=dict(options),
            parent=parent,
        )

    def phase(self, phase: str, status: str, **detail: Any) -> None:
        self._record("phase", phase=phase, status=status, **detail)

    def result(self, outcome: str, **detail: Any) -> None:
        self._record("result", outcome=outcome, **detail)

    def note(self, about: str, outcome: str, **detail: Any) -> None:
        """Settle another operation (``about``): rolled back or resumed by this one."""
        ts = float(self._now())
        self.journal.append(
            {
                "type": "note",
                "op": about,
                "by": self.id,
                "ts": ts,
                "time": iso(ts),
                "outcome": outcome,
                **detail,
            }
        )


def command_line() -> list[str]:
    """The command as typed, for the journal (arguments never hold secrets in mxflip)."""
    return ["mxflip", *sys.argv[1:]]
