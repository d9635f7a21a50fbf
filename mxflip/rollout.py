"""Execute a :class:`~mxflip.plan.Plan` phase by phase, journalling each step.

Phases: optional TTL pre-lowering (write the current set with the short TTL, wait until
the provider serves it, then wait out the old TTL), the switch (one conditional, atomic
write per provider and zone, then the provider's "served" wait), verification (poll
every verification nameserver, bounded, until all serve the new set; report resolvers
still caching the old one; re-probe the new hosts), and the optional TTL restore.

Every write is conditional on the state the previous phase left, and "already done"
counts as done, so a resumed operation repeats nothing. Time comes from an injected
:class:`Clock` (waited on through :func:`mxflip.clock.wait`, so the event loop goes on);
tests inject one whose ``sleep`` only advances ``now``. Nothing prints: progress goes to
an event callback. A rollout is a coroutine on the command's loop (mxflip/loop.py);
provider SDK calls run in threads.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Re-exported: engine and drill take the clock from here.
from mxflip.clock import Clock as Clock
from mxflip.clock import SystemClock as SystemClock
from mxflip.clock import wait
from mxflip.config import DomainConfig
from mxflip.dnsview import ServerAnswer, query_batch
from mxflip.errors import MxflipError
from mxflip.hostport import HostPort
from mxflip.journal import OperationLog, new_operation_id
from mxflip.logs import timed
from mxflip.plan import Plan, Readiness, Step
from mxflip.provider import Change, ChangeHandle, Provider, apply_changes
from mxflip.records import RRset
from mxflip.retry import async_retrying
from mxflip.state.base import JournalStore

_log = logging.getLogger(__name__)
#: Events logged at INFO (-v); countdown ticks and pending answers only at DEBUG (-vv).
_INFO_EVENTS = frozenset({"phase-start", "phase-done", "rollback", "info"})

#: Every point where a failpoint hook is called, in order (tests inject faults at each).
BOUNDARIES = (
    "intent",
    "prelower:before-apply",
    "prelower:after-apply",
    "prelower:served",
    "prelower-wait:done",
    "switch:before-apply",
    "switch:after-apply",
    "switch:served",
    "verify:before",
    "verify:done",
    "restore-ttl:before-apply",
    "restore-ttl:after-apply",
    "result",
)


@dataclass(frozen=True)
class Event:
    """Progress for renderers: ``kind`` is phase-start, phase-done, countdown, pending,
    cached, rollback or info; ``data`` holds the numbers."""

    kind: str
    phase: str | None
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]
Failpoint = Callable[[str], None]
#: A coroutine function: (servers, name) pairs, recursive?, timeout → answers per pair.
DNSQuery = Callable[
    [Sequence[tuple[Sequence[HostPort], str]], bool, float],
    Coroutine[Any, Any, list[list[ServerAnswer]]],
]


def cached_until(switched_at: float, steps: Sequence[Step]) -> float | None:
    """Until when resolvers may still hand out what was live before the switch: the
    longest TTL of the replaced sets (the lowered set after a pre-lowering) from the
    switch on, rounded up to the whole second plus one (resolvers such as Unbound serve an
    answer through the last whole second of its TTL). None when nothing was replaced."""
    ttls = [(s.prelower.ttl if s.prelower is not None else s.old_ttl) for s in steps if s.before]
    if not ttls:
        return None
    return float(math.ceil(switched_at + max(ttls)) + 1)


class VerificationFailed(MxflipError):
    """The nameservers did not all serve the new set in time, or the new hosts failed
    their re-probe."""


@dataclass(frozen=True)
class CachedAnswer:
    """A resolver still handing out something other than the new set, and until when."""

    domain: str
    server: str
    records: tuple[str, ...]
    until: float


@dataclass(frozen=True)
class RolloutResult:
    """What an executed plan did: the outcome, each domain's final state, and reports."""

    op_id: str | None
    plan: Plan
    outcome: str  # done, noop, rolled-back, failed
    #: domain → before | prelowered | after | ttl-restored | unknown
    states: Mapping[str, str]
    started: float
    finished: float
    error: str | None = None
    cached: tuple[CachedAnswer, ...] = ()
    #: Until when resolvers may still hand out the sets live before the switch.
    old_answers_until: float | None = None
    phases: tuple[tuple[str, str], ...] = ()
    #: Why a settling operation wrote nothing (it still settled its parent).
    note: str | None = None


async def default_query(
    batch: Sequence[tuple[Sequence[HostPort], str]], recursive: bool, timeout: float
) -> list[list[ServerAnswer]]:
    """Ask every (servers, name) pair through one bounded client; one list of answers per
    pair."""
    return await query_batch(batch, recursive=recursive, timeout=timeout)


class _NotServed(Exception):
    def __init__(self, pending: list[str]) -> None:
        super().__init__("; ".join(pending))
        self.pending = pending


class Rollout:
    """Runs one plan. Build one per operation; :meth:`run` executes it once."""

    def __init__(
        self,
        plan: Plan,
        journal: JournalStore,
        *,
        provider: Callable[[str], Provider],
        servers: Callable[[DomainConfig], list[HostPort]],
        clock: Clock,
        events: EventSink | None = None,
        failpoint: Failpoint | None = None,
        readiness: Readiness | None = None,
        command: Sequence[str] = (),
        query: DNSQuery = default_query,
        dns_timeout: float = 2.0,
        wait_timeout: float = 300.0,
        verify_timeout: float = 120.0,
        verify_attempts: int = 12,
        prelowered_at: float | None = None,
        user: str | None = None,
    ) -> None:
        self.plan = plan
        #: Who the journal names (default: the OS user); ``mxflip watch`` acts as "watch".
        self.user = user
        self.journal = journal
        self._provider = provider
        self._servers = servers
        self.clock = clock
        self._events = events or (lambda event: None)
        self._failpoint = failpoint or (lambda name: None)
        self._readiness = readiness
        self._command = list(command)
        self._query = query
        self.dns_timeout = dns_timeout
        self.wait_timeout = wait_timeout
        self.verify_timeout = verify_timeout
        self.verify_attempts = verify_attempts
        self._prelowered_at = prelowered_at
        self._phases: list[tuple[str, str]] = []
        self.log: OperationLog | None = None

    # ------------------------------------------------------------------ plumbing

    def _emit(self, kind: str, phase: str | None, message: str, **data: Any) -> None:
        level = logging.INFO if kind in _INFO_EVENTS else logging.DEBUG
        if _log.isEnabledFor(level):
            fields = {k: v for k, v in data.items() if isinstance(v, str | int | float | bool)}
            _log.log(level, f"{kind}: {message}", extra={"event": kind, "phase": phase, **fields})
        self._events(Event(kind, phase, message, data))

    def _start(self, phase: str) -> None:
        assert self.log is not None
        self.log.phase(phase, "start")
        self._emit("phase-start", phase, phase)

    def _done(self, phase: str, **detail: Any) -> None:
        assert self.log is not None
        self.log.phase(phase, "done", **detail)
        self._phases.append((phase, "done"))
        self._emit("phase-done", phase, phase, **detail)

    async def _write(
        self, pairs: Sequence[tuple[Step, RRset | None, RRset | None]]
    ) -> list[ChangeHandle]:
        """One conditional apply per (provider, zone); "already done" counts as done."""
        groups: dict[tuple[str, str], list[Change]] = defaultdict(list)
        for step, expected, new in pairs:
            if expected != new:
                d = step.domain
                groups[(d.provider, d.zone)].append(Change(d.name, expected, new))
        handles = []
        # Every record so far (the phase's start, the intent) lands before the change.
        self.journal.flush()
        for (provider, zone), changes in groups.items():
            with timed(
                _log,
                "provider apply",
                level=logging.INFO,
                provider=provider,
                zone=zone,
                changes=len(changes),
            ):
                handles.append(
                    await asyncio.to_thread(apply_changes, self._provider(provider), zone, changes)
                )
        return handles

    async def _wait(self, handles: Sequence[ChangeHandle]) -> None:
        for handle in handles:
            with timed(
                _log,
                "provider wait",
                level=logging.INFO,
                provider=handle.provider,
                zone=handle.zone,
                changes=len(handle.changes),
            ):
                await asyncio.to_thread(
                    self._provider(handle.provider).wait, handle, self.wait_timeout
                )

    async def _phase_write(
        self, phase: str, pairs: Sequence[tuple[Step, RRset | None, RRset | None]]
    ) -> None:
        self._start(phase)
        self._failpoint(f"{phase}:before-apply")
        handles = await self._write(pairs)
        self._failpoint(f"{phase}:after-apply")
        await self._wait(handles)
        if phase != "restore-ttl":
            self._failpoint(f"{phase}:served")
        self._done(phase)

    async def _countdown(self, phase: str, until: float, what: str) -> None:
        total = max(0.0, until - self.clock.now())
        while True:
            remaining = until - self.clock.now()
            self._emit(
                "countdown", phase, what, remaining=max(0.0, remaining), total=total, until=until
            )
            if remaining <= 0:
                return
            await wait(self.clock, min(1.0, remaining))

    # ------------------------------------------------------------------ states

    async def read_states(self) -> dict[str, str]:
        """Classify each changing domain's live set; ``unknown`` when unreadable or none
        of the operation's states."""
        states: dict[str, str] = {}
        groups: dict[tuple[str, str], list[Step]] = defaultdict(list)
        for step in self.plan.changes:
            groups[(step.domain.provider, step.domain.zone)].append(step)
        for (provider, zone), steps in groups.items():
            try:
                with timed(_log, "provider read", provider=provider, zone=zone, names=len(steps)):
                    live = await asyncio.to_thread(
                        self._provider(provider).read, zone, [s.name for s in steps]
                    )
            except MxflipError:
                states.update({s.name: "unknown" for s in steps})
                continue
            for s in steps:
                states[s.name] = step_state(s, live.get(s.name))
        return states

    # ------------------------------------------------------------------ run

    async def run(self) -> RolloutResult:
        """Execute the plan. Raises MxflipError on failure after journalling it (the zones
        are then each in one of the operation's states: ``rollback`` or ``resume`` settles
        them); a verification failure is rolled back automatically unless disabled."""
        plan = self.plan
        started = self.clock.now()
        if not plan.changes:
            return RolloutResult(None, plan, "noop", {}, started, started)
        op_id = new_operation_id(started)
        self.log = log = OperationLog(self.journal, op_id, self.clock.now)
        opts = plan.options
        log.intent(
            kind=plan.kind,
            target=plan.target,
            reason=opts.reason,
            command=self._command,
            plan_hash=plan.hash,
            user=self.user,
            steps=[s.journal() for s in plan.changes],
            options={
                "now": opts.now,
                "force": opts.force,
                "skip_readiness": opts.skip_readiness,
                "restore_ttl_after": opts.restore_ttl_after,
                "auto_rollback": opts.auto_rollback,
                "forced_findings": [f.code for _, f in plan.forced],
            },
            parent=plan.parent,
        )
        self._emit("info", None, f"operation {op_id}", op_id=op_id)
        try:
            self._failpoint("intent")
            result = await self._run(op_id, started)
            self._failpoint("result")
        except MxflipError as exc:
            states = await self.read_states()
            log.result("failed", error=str(exc), states=states)
            raise
        except (KeyboardInterrupt, asyncio.CancelledError):
            # Ctrl-C or SIGTERM: raised here, or (when the signal came while the loop
            # waited) the loop's runner cancelling this task; either way journalled.
            log.result("interrupted", states=await self.read_states())
            raise
        except Exception as exc:  # a bug: record it so the operation is not left open
            log.result("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        return result

    async def _run(self, op_id: str, started: float) -> RolloutResult:
        assert self.log is not None
        plan, log = self.plan, self.log
        changes = plan.changes
        prelowered = [s for s in changes if s.prelower is not None]
        if prelowered:
            await self._phase_write("prelower", [(s, s.before, s.prelower) for s in prelowered])
            self._start("prelower-wait")
            lagged = await self._await_lowered(prelowered)
            since = self._prelowered_at
            if since is None or lagged:
                # Caches may hold the old TTL from the last server to hand it out.
                since = max(since or 0.0, self.clock.now())
            until = since + max(s.old_ttl for s in prelowered)
            await self._countdown(
                "prelower-wait", until, "waiting for caches of the old TTL to expire"
            )
            self._done("prelower-wait")
            self._failpoint("prelower-wait:done")

        switching = [s for s in changes if (s.prelower or s.before) != s.after]
        old_until: float | None = None
        if switching:
            await self._phase_write(
                "switch", [(s, s.prelower or s.before, s.after) for s in switching]
            )
            old_until = cached_until(self.clock.now(), switching)
            if old_until is not None:
                self._emit(
                    "info",
                    "switch",
                    "old answers may stay cached",
                    until=old_until,
                )
        cached: tuple[CachedAnswer, ...] = ()
        if switching and plan.phase("verify") is not None:
            self._start("verify")
            self._failpoint("verify:before")
            try:
                cached = await self._verify(switching)
            except VerificationFailed as exc:
                log.phase("verify", "failed", error=str(exc))
                if not plan.options.auto_rollback:
                    raise
                await self._auto_rollback(exc)
                states = await self.read_states()
                log.result("rolled-back", error=str(exc), states=states)
                return RolloutResult(
                    op_id,
                    plan,
                    "rolled-back",
                    states,
                    started,
                    self.clock.now(),
                    error=str(exc),
                    phases=tuple(self._phases),
                )
            self._done("verify", cached=len(cached))
            self._failpoint("verify:done")

        restore = plan.phase("restore-wait")
        if restore is not None:
            self._start("restore-wait")
            await self._countdown(
                "restore-wait", self.clock.now() + restore.seconds, "before raising the TTL"
            )
            self._done("restore-wait")
            raise_ttl = [
                (s, s.after, s.after.with_ttl(s.domain.ttl))
                for s in changes
                if s.after is not None and s.after.ttl < s.domain.ttl
            ]
            await self._phase_write("restore-ttl", raise_ttl)

        states = await self.read_states()
        log.result("done", states=states)
        return RolloutResult(
            op_id,
            plan,
            "done",
            states,
            started,
            self.clock.now(),
            cached=cached,
            old_answers_until=old_until,
            phases=tuple(self._phases),
        )

    # ------------------------------------------------------------------ verify

    async def _await_lowered(self, steps: Sequence[Step]) -> bool:
        """Poll every verification nameserver until it serves the lowered TTL, so that
        the old-TTL countdown starts only once no server hands out the old one. Returns
        True when one lagged (the wait then starts later). A server that does not answer
        is not waited for here (planning already flagged it; verification will too)."""
        servers = {s.name: self._servers(s.domain) for s in steps}
        asking = [s for s in steps if servers[s.name]]
        if not asking:
            return False
        deadline = self.clock.now() + self.verify_timeout
        lagged = False
        for _ in range(10_000):  # bounded by the deadline too, on any clock
            answers = await self._query(
                [(servers[s.name], s.name) for s in asking], False, self.dns_timeout
            )
            pending = [
                f"{step.domain.display} at {a.server}"
                for step, got in zip(asking, answers, strict=True)
                for a in got
                if a.error is None and a.rrset != step.prelower
            ]
            if not pending:
                return lagged
            if not lagged:
                self._emit(
                    "pending",
                    "prelower-wait",
                    "still serving the old TTL: the wait starts once they serve the lowered one",
                    pending=pending,
                )
            lagged = True
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                raise VerificationFailed(
                    f"nameservers still serve the old TTL after {self.verify_timeout:g} s: "
                    + "; ".join(pending[:5])
                )
            await wait(self.clock, min(2.0, remaining))
        return lagged

    async def _verify(self, steps: Sequence[Step]) -> tuple[CachedAnswer, ...]:
        servers = {s.name: self._servers(s.domain) for s in steps}
        missing = [s.domain.display for s in steps if not servers[s.name]]
        if missing:
            raise VerificationFailed(
                f"no verification nameservers for {', '.join(missing)}",
                hint="set 'nameservers' for the domain in the config",
            )
        deadline = self.clock.now() + self.verify_timeout

        async def poll() -> None:
            answers = await self._query(
                [(servers[s.name], s.name) for s in steps], False, self.dns_timeout
            )
            pending = []
            for step, got in zip(steps, answers, strict=True):
                for a in got:
                    if a.error is not None:
                        pending.append(f"{step.domain.display} at {a.server}: {a.error}")
                    elif a.rrset != step.after:
                        pending.append(f"{step.domain.display} at {a.server}: not yet the new set")
            if pending:
                self._emit("pending", "verify", f"{len(pending)} answers pending", pending=pending)
                if self.clock.now() >= deadline:
                    raise VerificationFailed(
                        f"nameservers do not serve the new set after {self.verify_timeout:g} s: "
                        + "; ".join(pending[:5])
                        + (f" (and {len(pending) - 5} more)" if len(pending) > 5 else "")
                    )
                raise _NotServed(pending)

        clock = self.clock

        async def pause(seconds: float) -> None:
            await wait(clock, seconds)

        retry = async_retrying(
            lambda exc: isinstance(exc, _NotServed),
            attempts=self.verify_attempts,
            max_wait=min(8.0, self.verify_timeout),
            max_total=self.verify_timeout,
            sleep=pause,
        )
        try:
            async for attempt in retry:
                with attempt:
                    await poll()
        except _NotServed as exc:
            raise VerificationFailed(
                f"nameservers do not serve the new set after {self.verify_attempts} checks: "
                + "; ".join(exc.pending[:5])
            ) from None

        if self._readiness is not None and not self.plan.options.skip_readiness:
            # Only hosts this operation put into a set: a TTL change to the set already
            # live (prepare, finalize) is never blocked by those hosts' health.
            targets = {
                s.name: s.after
                for s in steps
                if s.after is not None and not s.after.same_records(s.prelower or s.before)
            }
            verdicts = (
                await self._readiness([s.domain for s in steps if s.name in targets], targets)
                if targets
                else {}
            )
            bad = [
                f"{name.rstrip('.')}: {'; '.join(v.reasons) or v.verdict}"
                for name, v in verdicts.items()
                if v.verdict == "not-ready"
            ]
            if bad:
                raise VerificationFailed("the new hosts failed their re-probe: " + "; ".join(bad))
        return await self._cached(steps)

    async def _cached(self, steps: Sequence[Step]) -> tuple[CachedAnswer, ...]:
        asking = [s for s in steps if s.domain.resolvers]
        if not asking:
            return ()
        now = self.clock.now()
        answers = await self._query(
            [(s.domain.resolvers, s.name) for s in asking], True, self.dns_timeout
        )
        out = []
        for step, got in zip(asking, answers, strict=True):
            for a in got:
                if a.error is None and not (step.after and step.after.same_records(a.rrset)):
                    ttl = a.rrset.ttl if a.rrset is not None else 0
                    records = tuple(a.rrset.strings()) if a.rrset else ()
                    out.append(CachedAnswer(step.domain.display, a.server, records, now + ttl))
                    self._emit(
                        "cached",
                        "verify",
                        f"{a.server} still caches the old set of {step.domain.display}",
                        until=now + ttl,
                    )
        return tuple(out)

    async def _auto_rollback(self, exc: VerificationFailed) -> None:
        """Back to every domain's ``before`` from its ``after`` (verification runs only
        after the switch was served, so every zone is in its after-state)."""
        self._emit("rollback", "verify", f"verification failed, rolling back: {exc}")
        assert self.log is not None
        self.log.phase("auto-rollback", "start")
        steps = [s for s in self.plan.changes if s.before is not None or s.after is not None]
        handles = await self._write([(s, s.after, s.before) for s in steps])
        await self._wait(handles)
        self.log.phase("auto-rollback", "done")
        self._phases.append(("auto-rollback", "done"))


def step_state(step: Step, live: RRset | None) -> str:
    """Name the state of ``live`` among the step's states."""
    if live == step.after:
        return "after"
    if step.after is not None and live == step.after.with_ttl(step.domain.ttl):
        return "ttl-restored"
    if live == step.before:
        return "before"
    if step.prelower is not None and live == step.prelower:
        return "prelowered"
    return "unknown"
