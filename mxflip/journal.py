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
import errno
import fcntl
import getpass
import json
import logging
import math
import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mxflip.clock import Clock, SystemClock
from mxflip.errors import ExitCode, MxflipError, UsageError
from mxflip.files import (
    LockBusy,
    append_synced,
    ensure_private_folder,
    locked,
    read_bytes,
    state_dir,
)
from mxflip.records import MX, RRset

_log = logging.getLogger(__name__)
if TYPE_CHECKING:
    from mxflip.state.base import JournalStore

JOURNAL_ENV = "MXFLIP_JOURNAL"
JOURNAL_NAME = "journal.jsonl"

#: Operation outcomes. ``interrupted`` is also inferred for an intent without a result.
OUTCOMES = ("done", "failed", "rolled-back", "interrupted", "aborted", "noop")


class JournalError(MxflipError):
    """The journal cannot be read or written."""


class LockedError(MxflipError):
    """Another mxflip operation holds the lock."""

    exit_code = ExitCode.FAILURE


class AmbiguousOperation(UsageError):
    """An operation-ID prefix matches more than one operation."""


#: Bytes reserved for the lock holder's description: the lock file is overwritten in
#: place, never truncated (a truncation through a planted link would destroy a file).
_HOLDER_BYTES = 1024


def default_journal_path(
    configured: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Path:
    """``$MXFLIP_JOURNAL``, else the config's ``[journal] path``, else the user state
    directory (``$XDG_STATE_HOME/mxflip/journal.jsonl`` or
    ``~/.local/state/mxflip/journal.jsonl``). ``environ`` defaults to the process's."""
    environ = os.environ if environ is None else environ
    env = environ.get(JOURNAL_ENV)
    if env:
        return Path(env).expanduser()
    if configured is not None:
        return configured
    return state_dir(environ) / JOURNAL_NAME


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


def whoami() -> tuple[str, str]:
    """(user, host) for the journal and the lock holder."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, socket.gethostname()


# ------------------------------------------------------------------------- reading


class BadRecord(ValueError):
    """A journal line that is JSON but not a record this journal can trust."""


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadRecord(f"{key!r} is not a non-empty string")
    return value


def _rrset(data: Mapping[str, Any], key: str) -> RRset | None:
    if key not in data:
        # A missing state is not "no MX": settling from it could delete a live set.
        raise BadRecord(f"a step has no {key!r}")
    value = data[key]
    if value is None:
        return None
    try:
        if not isinstance(value, Mapping) or not isinstance(value.get("records"), list):
            raise TypeError("not an RRset")
        ttl = value["ttl"]
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= 2**31 - 1:
            raise TypeError("bad TTL")
        if not all(isinstance(r, str) for r in value["records"]):
            raise TypeError("a record is not a string")
        if not isinstance(value["name"], str):
            raise TypeError("the name is not a string")
        return RRset(value["name"], ttl, frozenset(MX.parse(r) for r in value["records"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRecord(f"{key!r} is not an MX RRset ({exc})") from None


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
        """Raises :class:`BadRecord` for anything but a well-formed step."""
        if not isinstance(data, Mapping):
            raise BadRecord("a step is not an object")
        return cls(
            domain=_text(data, "domain"),
            zone=_text(data, "zone"),
            provider=_text(data, "provider"),
            before=_rrset(data, "before"),
            prelower=_rrset(data, "prelower"),
            after=_rrset(data, "after"),
        )


def _check_record(record: Any) -> tuple[str, str]:
    """(operation id, record type) of a record whose shape can be trusted; raises
    :class:`BadRecord` naming what is wrong."""
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    op_id, kind = _text(record, "op"), _text(record, "type")
    ts = record.get("ts", 0.0)
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        raise BadRecord("'ts' is not a finite number")
    if kind == "intent":
        steps = record.get("steps", [])
        if not isinstance(steps, list):
            raise BadRecord("'steps' is not a list")
        for key in ("options",):
            if not isinstance(record.get(key, {}), dict):
                raise BadRecord(f"{key!r} is not an object")
        for key in ("kind", "parent", "user", "host", "time", "reason", "target"):
            if record.get(key) is not None and not isinstance(record[key], str):
                raise BadRecord(f"{key!r} is not a string")
    elif kind in ("result", "note"):
        if record.get("outcome") is not None and not isinstance(record["outcome"], str):
            raise BadRecord("'outcome' is not a string")
        states = record.get("states", {})
        if not isinstance(states, dict) or not all(isinstance(v, str) for v in states.values()):
            raise BadRecord("'states' is not an object of names")
    elif kind == "phase" and not isinstance(record.get("phase"), str):
        raise BadRecord("'phase' is not a string")
    return op_id, kind


@dataclass
class Operation:
    """An operation as the journal tells it: its intent, phases and result."""

    id: str
    intent: dict[str, Any]
    phases: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    #: Later records about this operation written by another (``rolled-back by …``).
    notes: list[dict[str, Any]] = field(default_factory=list)
    #: Its place in the journal (the order operations were started in).
    seq: int = 0
    _steps: list[JournalStep] | None = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return str(self.intent.get("kind", "?"))

    @property
    def time(self) -> float:
        return float(self.intent.get("ts", 0.0))  # validated on read: a finite number

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
        """A zone may be half-way: the operation was interrupted (no result), or it failed
        and its result does not show every zone back in (or never out of) its
        before-state."""
        outcome = self.outcome
        if outcome == "interrupted":
            return True
        if outcome != "failed" or self.notes:
            return False
        # Every zone still in its before-state: nothing was changed (the provider refused
        # the first write), so no zone can be half-way.
        states = (self.result or {}).get("states")
        return not (isinstance(states, dict) and states and set(states.values()) == {"before"})

    @property
    def steps(self) -> list[JournalStep]:
        # Parsed once (on read, which validates them): settling and status ask often.
        if self._steps is None:
            self._steps = [JournalStep.from_json(s) for s in self.intent.get("steps", [])]
        return list(self._steps)

    @property
    def changed_anything(self) -> bool:
        return any(s.before != s.after or s.prelower is not None for s in self.steps)

    def phase_done_at(self, phase: str) -> float | None:
        for record in reversed(self.phases):
            if record.get("phase") == phase and record.get("status") == "done":
                return float(record.get("ts", 0.0))
        return None


@dataclass(frozen=True)
class JournalView:
    """Every operation in the journal in the order they were started (the journal's own
    sequence, never the IDs' order), and the lines that could not be trusted."""

    operations: list[Operation]
    skipped_lines: int = 0
    #: ``line N: why`` for each skipped line (torn, not JSON, or the wrong shape).
    problems: tuple[str, ...] = ()

    def find(self, op_id: str) -> Operation | None:
        """The operation with this ID or unique ID prefix; None when none matches.
        Raises :class:`AmbiguousOperation` listing the candidates when several do."""
        for op in self.operations:
            if op.id == op_id:
                return op
        matches = [op for op in self.operations if op.id.startswith(op_id)] if op_id else []
        if len(matches) > 1:
            shown = ", ".join(op.id for op in matches[:10])
            more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
            raise AmbiguousOperation(
                f"operation ID prefix {op_id!r} is ambiguous: it matches {shown}{more}",
                hint="give more of the ID",
            )
        return matches[0] if matches else None

    def unsettled(self) -> list[Operation]:
        """Operations that may have left zones half-way. A rollback or resume that was
        itself interrupted leaves its parent unsettled, so only the parent is listed."""
        return [
            op
            for op in self.operations
            if op.unsettled and op.changed_anything and op.kind not in ("rollback", "resume")
        ]


def parse_journal(data: bytes) -> JournalView:
    """The operations held by journal bytes, in file order. A torn, non-JSON or
    wrong-shaped line is skipped and named; an intent whose steps cannot be trusted drops
    its whole operation (nothing may be settled from a record that is not understood)."""
    ops: dict[str, Operation] = {}
    problems: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            op_id, kind = _check_record(record)
            if kind == "intent":
                op = Operation(op_id, record, seq=number)
                op.steps  # noqa: B018  (validates every step now, not when settling)
                # A reused ID starts the operation afresh, at its new place (as before).
                ops.pop(op_id, None)
                ops[op_id] = op
            elif op_id in ops:
                op = ops[op_id]
                if kind == "phase":
                    op.phases.append(record)
                elif kind == "result":
                    op.result = record
                elif kind == "note":
                    op.notes.append(record)
        except (ValueError, RecursionError) as exc:
            why = str(exc) if isinstance(exc, BadRecord) else "not a JSON record"
            problems.append(f"line {number}: {why}")
    return JournalView(list(ops.values()), len(problems), tuple(problems))


class Journal:
    """Reads and appends the JSON-lines journal at ``path``; :meth:`lock` serialises
    operations that share it."""

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        self.path = path
        #: The lock's "since" comes from it (the command's clock: tests inject one).
        self.clock: Clock = clock or SystemClock()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _ensure_dir(self) -> None:
        try:
            ensure_private_folder(self.path.parent)
        except PermissionError as exc:
            raise JournalError(
                f"refusing the journal folder: {exc}",
                hint="the journal decides what rollback and resume do; keep it private",
            ) from None
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
            append_synced(self.path, line.encode())
        except OSError as exc:
            _log.debug("journal append failed", extra={"path": str(self.path), "error": str(exc)})
            raise JournalError(
                f"cannot write the journal {self.path}: {_why(exc)}",
                hint="set [journal] path in the config or $MXFLIP_JOURNAL to a writable file",
            ) from None

    def flush(self) -> None:
        """Nothing to wait for: :meth:`append` returns once its record is fsynced."""

    def read(self) -> JournalView:
        """Every operation, in the order started. Untrusted lines are skipped and named."""
        try:
            data = read_bytes(self.path)
        except FileNotFoundError:
            return JournalView([])
        except OSError as exc:
            raise JournalError(f"cannot read the journal {self.path}: {_why(exc)}") from None
        view = parse_journal(data)
        _log.debug(
            "journal read",
            extra={
                "path": str(self.path),
                "operations": len(view.operations),
                "skipped": view.skipped_lines,
            },
        )
        return view

    def holder(self) -> str | None:
        """Who holds the operation lock now (None: nobody, or it cannot be told)."""
        info = lock_record(self.lock_path)
        if info is None:
            return None
        try:
            return (
                f"pid {int(info['pid'])}, {info['user']}@{info['host']}, "
                f"'{info['command']}', since {info['since']}"
            )
        except (ValueError, KeyError, TypeError):
            return _UNKNOWN_HOLDER

    @contextlib.contextmanager
    def lock(self, command: str, *, now: float | None = None) -> Iterator[None]:
        """Hold the operation lock for the duration; refuse at once when another process
        holds it, naming the holder (pid, user@host, command, since when)."""
        self._ensure_dir()
        try:
            with locked(self.lock_path) as fd:
                user, host = whoami()
                info = {
                    "pid": os.getpid(),
                    "user": user,
                    "host": host,
                    "command": command,
                    "since": iso(now if now is not None else self.clock.now()),
                }
                text = json.dumps(info)
                if len(text.encode()) > _HOLDER_BYTES:  # a very long command line
                    info["command"] = command[:100] + " …"
                    text = json.dumps(info)
                _write_holder(fd, text)
                _log.info("lock taken", extra={"path": str(self.lock_path), "command": command})
                try:
                    yield
                finally:
                    with contextlib.suppress(OSError):
                        _write_holder(fd, "")
                    _log.info("lock released", extra={"path": str(self.lock_path)})
        except LockBusy:
            _log.info("lock busy", extra={"path": str(self.lock_path)})
            raise LockedError(
                f"another mxflip operation is running: {self._busy_holder()}",
                hint="wait for it to finish; the lock is released when that process ends",
            ) from None
        except OSError as exc:
            raise JournalError(
                f"cannot lock the journal {self.lock_path}: {_why(exc)}",
                hint="set [journal] path in the config or $MXFLIP_JOURNAL to a writable file",
            ) from None

    def _busy_holder(self) -> str:
        return self.holder() or _UNKNOWN_HOLDER


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link (refused: point the config at the real file)"
    return exc.strerror or str(exc)


_UNKNOWN_HOLDER = "holder unknown (the lock file has no readable holder information)"


def _write_holder(fd: int, text: str) -> None:
    """Overwrite the holder description in place, padded with spaces (never truncated)."""
    data = text.encode()[:_HOLDER_BYTES]
    os.pwrite(fd, data + b" " * (_HOLDER_BYTES - len(data)), 0)


def lock_record(lock_path: Path) -> dict[str, Any] | None:
    """What the holder of the local operation lock wrote (pid, user, host, command,
    since); None when nobody holds it (or the file cannot be opened); ``{}`` when it is
    held but its record cannot be read."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                raw = os.pread(fd, _HOLDER_BYTES + 4096, 0).decode("utf-8", "replace").strip()
                info, _ = json.JSONDecoder().raw_decode(raw)
            except (OSError, ValueError):
                return {}
            return info if isinstance(info, dict) else {}
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class OperationLog:
    """Writes the records of one operation (intent, phases, result) to a journal."""

    def __init__(self, journal: JournalStore, op_id: str, clock_now: Callable[[], float]) -> None:
        self.journal = journal
        self.id = op_id
        self._now = clock_now

    def _record(self, record_type: str, **fields: Any) -> None:
        ts = float(self._now())
        self.journal.append(
            {"type": record_type, "op": self.id, "ts": ts, "time": iso(ts), **fields}
        )
        _log.debug("journal record", extra={"op": self.id, "record": record_type})

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
        _log.debug("journal record", extra={"op": self.id, "record": "note", "about": about})


def command_line() -> list[str]:
    """The command as typed, for the journal (arguments never hold secrets in mxflip)."""
    return ["mxflip", *sys.argv[1:]]
