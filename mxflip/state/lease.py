"""Leases over state documents: the operation lock of the shared backend, and the leader
election of watchers.

A lease is a document holding who has it (pid, user@host, command, since) and until when
(``expires``). It is created only if absent (``If-None-Match: *``), renewed only at the
version its holder wrote (``If-Match``), and taken over only after it expired — again at the
version that was read, so of two processes that both see it expired exactly one wins.

Expiry is judged by the reader's clock against the holder's ``expires``; clocks of the
machines sharing a backend must be roughly synchronised (NTP), a skew eats into the lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from mxflip.clock import Clock
from mxflip.errors import MxflipError
from mxflip.journal import iso, whoami
from mxflip.state.base import Document, PreconditionFailed, StateError

log = logging.getLogger(__name__)

#: Bounded: a lease changing hands this often within one acquire is contention, not a race.
_ACQUIRE_ROUNDS = 5


class DocumentStore(Protocol):
    """The part of a backend a lease needs."""

    def get(self, key: str) -> Document | None: ...

    def put(self, key: str, data: Mapping[str, Any], *, version: str | None) -> str: ...

    def delete(self, key: str, *, version: str) -> None: ...


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease document holds. ``id`` names this holding (``unlock --force ID``)."""

    id: str
    pid: int
    user: str
    host: str
    command: str
    since: float
    expires: float
    lease: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeaseInfo:
        return cls(
            id=str(data["id"]),
            pid=int(data["pid"]),
            user=str(data["user"]),
            host=str(data["host"]),
            command=str(data["command"]),
            since=float(data["since_ts"]),
            expires=float(data["expires_ts"]),
            lease=float(data["lease"]),
        )

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["since_ts"] = doc.pop("since")
        doc["expires_ts"] = doc.pop("expires")
        # Readable forms for a person looking at the object directly.
        doc["since"] = iso(self.since)
        doc["expires"] = iso(self.expires)
        return doc

    def expired(self, now: float) -> bool:
        return now >= self.expires

    def describe(self) -> str:
        return (
            f"pid {self.pid}, {self.user}@{self.host}, '{self.command}', since {iso(self.since)} "
            f"(lock ID {self.id}, lease until {iso(self.expires)})"
        )


class LeaseHeld(MxflipError):
    """Someone else holds the lease and it has not expired."""

    def __init__(self, holder: LeaseInfo | None) -> None:
        super().__init__(holder.describe() if holder else "holder unknown")
        self.holder = holder


class LeaseLost(StateError):
    """The lease was taken over (or removed) since this holder last wrote it."""


def _holder(doc: Document) -> LeaseInfo | None:
    try:
        return LeaseInfo.from_json(doc.data)
    except (KeyError, TypeError, ValueError):
        return None


class Lease:
    """One holder's side of a lease at ``key`` in ``store``."""

    def __init__(
        self,
        store: DocumentStore,
        key: str,
        *,
        duration: float,
        clock: Clock,
        command: str,
    ) -> None:
        self.store = store
        self.key = key
        self.duration = duration
        self.clock = clock
        self.command = command
        self.info: LeaseInfo | None = None
        self.version: str | None = None
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        return self.info is not None

    def _fresh(self, since: float | None = None) -> LeaseInfo:
        now = self.clock.now()
        user, host = whoami()
        return LeaseInfo(
            id=self.info.id if self.info else secrets.token_hex(8),
            pid=os.getpid(),
            user=user,
            host=host,
            command=self.command,
            since=since if since is not None else now,
            expires=now + self.duration,
            lease=self.duration,
        )

    def acquire(self) -> LeaseInfo | None:
        """Take the lease; returns the expired holder it replaced (None: it was free).
        Raises :class:`LeaseHeld` naming the live holder."""
        with self._mutex:
            for _ in range(_ACQUIRE_ROUNDS):
                info = self._fresh()
                try:
                    self.version = self.store.put(self.key, info.to_json(), version=None)
                    self.info = info
                    return None
                except PreconditionFailed:
                    pass
                doc = self.store.get(self.key)
                if doc is None:
                    continue  # released between our write and our read: try again
                holder = _holder(doc)
                if holder is not None and not holder.expired(self.clock.now()):
                    raise LeaseHeld(holder)
                # Expired (or unreadable, which no mxflip writes): take it over, at the
                # version we judged, so only one of several takers wins.
                try:
                    self.version = self.store.put(self.key, info.to_json(), version=doc.version)
                except PreconditionFailed:
                    continue
                self.info = info
                log.warning(
                    "took over the expired lease %s from %s",
                    self.key,
                    holder.describe() if holder else "an unreadable holder",
                )
                return holder
        doc = self.store.get(self.key)
        raise LeaseHeld(_holder(doc) if doc else None)

    def try_acquire(self) -> bool:
        try:
            self.acquire()
        except LeaseHeld:
            return False
        return True

    def renew(self) -> None:
        """Extend the lease from now; :class:`LeaseLost` when someone else has it."""
        with self._mutex:
            if self.info is None or self.version is None:
                raise LeaseLost(f"the lease {self.key} is not held")
            info = self._fresh(since=self.info.since)
            try:
                self.version = self.store.put(self.key, info.to_json(), version=self.version)
            except PreconditionFailed:
                self.info = self.version = None
                raise LeaseLost(
                    f"the lease {self.key} was taken over by another process",
                    hint="'mxflip history' shows who took it and why",
                ) from None
            self.info = info

    def release(self) -> None:
        """Give the lease up (a lease someone else took over is left alone)."""
        with self._mutex:
            version, self.info, self.version = self.version, None, None
            if version is None:
                return
            try:
                self.store.delete(self.key, version=version)
            except PreconditionFailed:
                log.warning("the lease %s was no longer ours when released", self.key)


class Renewer:
    """Renews a held lease every third of its duration in a daemon thread, until
    :meth:`stop`. A refused renewal (taken over) sets :attr:`lost`; an unreachable backend
    is retried on the next tick while the lease is still ours."""

    def __init__(self, lease: Lease, *, interval: float | None = None) -> None:
        self.lease = lease
        self.interval = interval if interval is not None else max(0.05, lease.duration / 3)
        self.lost: str | None = None
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mxflip-lease", daemon=True)

    def start(self) -> Renewer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.lease.renew()
            except LeaseLost as exc:
                self.lost = exc.message
                log.error("%s", exc.message)
                return
            except MxflipError as exc:
                self.failures += 1
                log.warning("could not renew the lease %s: %s", self.lease.key, exc.message)

    def stop(self) -> None:
        self._stop.set()
        # Bounded: a renewal in flight ends within the backend's own retry bounds.
        self._thread.join(timeout=max(5.0, self.lease.duration))


class Leader:
    """Leader election between watchers: exactly one holds the lease ``leader/NAME`` and
    acts; the others observe. Call :meth:`step` every round (at most every half lease):
    the leader renews, a follower takes over a lease that expired. A leader that could not
    renew stays leader only while its last written lease lasts."""

    def __init__(
        self,
        store: DocumentStore,
        name: str = "watch",
        *,
        duration: float,
        clock: Clock,
        command: str = "mxflip watch",
    ) -> None:
        self.lease = Lease(store, f"leader/{name}", duration=duration, clock=clock, command=command)

    @property
    def is_leader(self) -> bool:
        info = self.lease.info
        return info is not None and not info.expired(self.lease.clock.now())

    def holder(self) -> LeaseInfo | None:
        """Who leads now, as stored (None: nobody)."""
        doc = self.lease.store.get(self.lease.key)
        return _holder(doc) if doc else None

    def step(self) -> bool:
        """Renew or try to acquire; True while this process is the leader."""
        try:
            if self.lease.held:
                self.lease.renew()
            else:
                self.lease.try_acquire()
        except LeaseLost:
            return False
        except StateError as exc:
            log.warning("leader election: %s", exc.message)
        return self.is_leader

    def resign(self) -> None:
        self.lease.release()
