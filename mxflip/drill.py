"""Failover drills: prove the backup path end to end, then put everything back.

A drill runs, for the chosen domains and in this order, each step timed:

``status`` (each domain on its primary set, nameservers agreeing) → ``readiness`` (the
backup set passes the SMTP readiness checks) → ``failover`` (a journalled switch to the
backup set through the :class:`~mxflip.engine.Engine`, ``--now`` unless planned) →
``verify-failover`` (every verification nameserver serves the backup set) → ``probe``
(SMTP probe of the hosts now live) → ``failback`` (the engine's rollback of the drill's
operation: records *and* TTL exactly as before) → ``verify-failback`` → ``final-status``.

A failed step stops forward progress. When something was changed, a ``restore`` step rolls
the drill's operation back (unless the engine already did, after a failed verification),
and ``final-status`` shows whether every domain is back in its before-state. Planning,
writing, verification and journalling are the engine's; this module only sequences them
and records what happened. It never prints and never prompts.

The drill is one coroutine on the command's event loop. Each step runs as a task of its
own (:class:`mxflip.loop.StepInterrupts`), so Ctrl-C or SIGTERM cancels that step, not
the drill: the step fails as interrupted and the drill restores what it changed, while a
second Ctrl-C during the restore interrupts the restore and ends the drill.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mxflip import loop
from mxflip.config import Config, DomainConfig
from mxflip.engine import Engine, Unsettled, blocker_text
from mxflip.errors import ExitCode, MxflipError
from mxflip.observe import DomainStatus
from mxflip.plan import Plan, PlanOptions, Readiness, ReadinessVerdict
from mxflip.provider import Provider
from mxflip.records import RRset
from mxflip.rollout import Clock, DNSQuery, Event, RolloutResult, SystemClock, default_query
from mxflip.state.base import JournalStore

_log = logging.getLogger(__name__)

StepStatus = Literal["pass", "fail", "skipped"]

#: The steps of a passing drill, in order; ``restore`` is added only when one ran.
STEPS = (
    "status",
    "readiness",
    "failover",
    "verify-failover",
    "probe",
    "failback",
    "verify-failback",
    "final-status",
)


@dataclass(frozen=True)
class StepResult:
    """One step of one domain's drill."""

    name: str
    status: StepStatus
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class DomainDrill:
    """Every step of one domain's drill, in the order they ran."""

    domain: str  # display name, no trailing dot
    steps: tuple[StepResult, ...]

    @property
    def passed(self) -> bool:
        return all(s.status != "fail" for s in self.steps) and any(
            s.status == "pass" for s in self.steps
        )

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)


@dataclass(frozen=True)
class DrillOperation:
    """A journalled operation the drill ran (its failover, and the rollback that ended it)."""

    id: str
    kind: str
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class DrillReport:
    """What a drill did, per domain and step; ``exit_code`` is 0 on pass, 3 on fail."""

    domains: tuple[DomainDrill, ...]
    operations: tuple[DrillOperation, ...]
    started: float
    finished: float
    planned: bool = False

    @property
    def passed(self) -> bool:
        return bool(self.domains) and all(d.passed for d in self.domains)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.passed else ExitCode.FAILURE

    @property
    def seconds(self) -> float:
        return max(0.0, self.finished - self.started)


#: Progress for people: called with (step name, domains' display names) when a step starts.
Progress = Callable[[str, Sequence[str]], None]


class _Recorder:
    """Steps per domain, in order."""

    def __init__(self, domains: Sequence[DomainConfig]) -> None:
        self.order = [d.name for d in domains]
        self.steps: dict[str, list[StepResult]] = {d.name: [] for d in domains}

    def add_all(self, step: str, status: StepStatus, seconds: float, message: str) -> None:
        """The same result for every domain (a step the domains share)."""
        self.record(step, {d: (status, message) for d in self.order}, seconds)

    def record(
        self,
        step: str,
        results: Mapping[str, tuple[StepStatus, str]],
        seconds: float,
    ) -> None:
        for domain in self.order:
            status, message = results[domain]
            self.steps[domain].append(StepResult(step, status, max(0.0, seconds), message))
            _log.info(
                "drill step",
                extra={
                    "step": step,
                    "domain": domain,
                    "status": status,
                    "seconds": round(seconds, 3),
                    "detail": message,
                },
            )

    def skip_rest(self, after: str, reason: str, *, keep: Sequence[str] = ()) -> None:
        """Mark the steps after ``after`` that did not run as skipped (except ``keep``)."""
        later = STEPS[STEPS.index(after) + 1 :]
        for domain in self.order:
            for step in later:
                if step not in keep:
                    self.steps[domain].append(StepResult(step, "skipped", 0.0, reason))

    def build(self) -> tuple[DomainDrill, ...]:
        return tuple(DomainDrill(d.rstrip("."), tuple(self.steps[d])) for d in self.order)


class _PhaseClock:
    """Engine events → when each rollout phase started and ended, and the operation id."""

    def __init__(self, clock: Clock, forward: Callable[[Event], None] | None) -> None:
        self.clock = clock
        self.forward = forward
        self.reset()

    def reset(self) -> None:
        self.op_id: str | None = None
        self.started: dict[str, float] = {}
        self.done: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        if event.kind == "info" and "op_id" in event.data:
            self.op_id = str(event.data["op_id"])
        elif event.kind == "phase-start" and event.phase:
            self.started.setdefault(event.phase, self.clock.now())
        elif event.kind == "phase-done" and event.phase:
            self.done[event.phase] = self.clock.now()
        if self.forward is not None:
            self.forward(event)


@dataclass
class _Outcome:
    """One executed operation, split into its write part and its verification part."""

    op_id: str | None
    result: RolloutResult | None
    error: MxflipError | None
    write_seconds: float
    verify_seconds: float
    #: The failure happened during verification (else during planning or writing).
    failed_in_verify: bool = False
    blocked: list[tuple[str | None, str]] = field(default_factory=list)


class Drill:
    """One drill over ``domains``; build one per run and call :meth:`run` once.

    ``readiness`` is the readiness seam (:func:`mxflip.readiness.default_readiness`):
    it proves the backup set before the switch, and probes the hosts that are live after
    it. ``clock``, ``query`` and ``providers`` are injectable like the engine's.
    """

    def __init__(
        self,
        config: Config,
        domains: Sequence[DomainConfig],
        journal: JournalStore,
        *,
        readiness: Readiness | None,
        clock: Clock | None = None,
        planned: bool = False,
        reason: str | None = None,
        verify_timeout: float = 120.0,
        query: DNSQuery = default_query,
        providers: Mapping[str, Provider] | None = None,
        events: Callable[[Event], None] | None = None,
        progress: Progress | None = None,
        command: Sequence[str] = ("mxflip", "drill"),
    ) -> None:
        self.config = config
        self.domains = list(domains)
        self.journal = journal
        self.readiness = readiness
        self.clock = clock or SystemClock()
        self.planned = planned
        self.reason = f"drill: {reason}" if reason else "drill"
        self.command = list(command)
        self._progress = progress or (lambda step, names: None)
        self._phases = _PhaseClock(self.clock, events)
        self._proven: dict[str, ReadinessVerdict] = {}
        self.engine = Engine(
            config,
            journal,
            clock=self.clock,
            readiness=self._proven_readiness if readiness is not None else None,
            providers=providers,
            events=self._phases,
            query=query,
            verify_timeout=verify_timeout,
        )
        self._rec = _Recorder(self.domains)
        self._ops: list[DrillOperation] = []
        self._before: dict[str, RRset | None] = {}
        # For an interruption: where the drill was, and what it must put back.
        self._step, self._step_t0 = "status", self.clock.now()
        self._failover_op: str | None = None
        self._settled = False
        # Each step a task of its own, so Ctrl-C is counted per step (loop.StepInterrupts).
        self._steps = loop.StepInterrupts()

    # ------------------------------------------------------------------ helpers

    async def _proven_readiness(
        self, domains: Sequence[DomainConfig], targets: Mapping[str, RRset]
    ) -> Mapping[str, ReadinessVerdict]:
        """The engine asks before planning and again after the switch; the drill's own
        ``readiness`` step has just proven exactly these sets and the ``probe`` step probes
        what is live, so the engine is answered from the proof instead of probing twice."""
        missing = [d for d in domains if d.name not in self._proven]
        out = dict(self._proven)
        if missing and self.readiness is not None:
            out.update(await self.readiness(missing, {d.name: targets[d.name] for d in missing}))
        return {name: out[name] for name in targets if name in out}

    def _names(self) -> list[str]:
        return [d.display for d in self.domains]

    def _start(self, step: str) -> float:
        self._progress(step, self._names())
        self._step, self._step_t0 = step, self.clock.now()
        return self._step_t0

    def _all(self, status: StepStatus, message: str) -> dict[str, tuple[StepStatus, str]]:
        return {d.name: (status, message) for d in self.domains}

    def _blame(self, message: str) -> dict[str, tuple[StepStatus, str]]:
        """A joint step failed: the domains its message names failed (all, if it names
        none); the others are reported as passed."""
        named = [d for d in self.domains if d.display in message]
        failed = {d.name for d in (named or self.domains)}
        return {
            d.name: ("fail", message) if d.name in failed else ("pass", "") for d in self.domains
        }

    # ------------------------------------------------------------------ run

    def run(self) -> DrillReport:
        """Run the drill under the journal lock, entering the command's event loop once
        (:func:`mxflip.loop.run`). Step failures are recorded, not raised. Ctrl-C (or
        SIGTERM) during a step fails that step and the drill restores what it changed; a
        second one during the restore interrupts it, and KeyboardInterrupt is raised."""
        with self._steps.installed():
            return loop.run(self.run_async())

    async def run_async(self) -> DrillReport:
        """The drill as one coroutine (what :meth:`run` runs). Awaited directly, Ctrl-C
        is the awaiting program's to handle (see :class:`mxflip.loop.StepInterrupts`)."""
        self._steps.bind()
        started = self.clock.now()
        try:
            try:
                lock = self.journal.lock(" ".join(self.command), now=started)
                with lock:
                    await self._run()
            except MxflipError as exc:
                # The lock is held by another operation, or the journal cannot be written:
                # nothing was changed, and the report says why.
                if not any(self._rec.steps.values()):
                    self._rec.record("status", self._all("fail", str(exc)), 0.0)
                    self._rec.skip_rest("status", "not run: the drill could not start")
                else:
                    raise
        finally:
            self.engine.close()
        return DrillReport(
            self._rec.build(), tuple(self._ops), started, self.clock.now(), self.planned
        )

    async def _run(self) -> None:
        if not await self._status():
            self._rec.skip_rest("status", "not run: a domain is not ready for a drill")
            return
        if not await self._readiness():
            self._rec.skip_rest("readiness", "not run: the backup set is not ready")
            return
        try:
            failover = await self._failover()
            if failover is None:
                return
            if not await self._probe():
                await self._restore(failover, after="probe")
                return
            await self._failback(failover)
        except KeyboardInterrupt:
            await self._interrupted()

    async def _interrupted(self) -> None:
        """Ctrl-C after the drill began to change things: the step fails, and what the
        drill changed is put back (a second Ctrl-C stops that too; the journal then shows
        the operation for 'mxflip rollback')."""
        step = self._step
        op = self._failover_op
        self._rec.add_all(step, "fail", self.clock.now() - self._step_t0, "interrupted (Ctrl-C)")
        if step not in STEPS or step == "final-status":
            return  # interrupted while restoring or looking: leave it to the person
        if self._settled:
            self._rec.skip_rest(step, "not run: the drill was interrupted", keep=("final-status",))
            await self._final_status()
            return
        await self._restore(_Outcome(op, None, None, 0.0, 0.0), after=step)

    # ------------------------------------------------------------------ steps

    async def _status(self) -> bool:
        t0 = self._start("status")
        try:
            self.engine.require_settled()
        except Unsettled as exc:
            self._rec.record("status", self._all("fail", str(exc)), self.clock.now() - t0)
            return False
        try:
            statuses = await self._steps.run(self.engine.observe(self.domains))
        except MxflipError as exc:
            self._rec.record("status", self._all("fail", str(exc)), self.clock.now() - t0)
            return False
        results: dict[str, tuple[StepStatus, str]] = {}
        for s in statuses:
            self._before[s.domain.name] = s.provider_rrset
            results[s.domain.name] = _status_verdict(s, expected=None)
        self._rec.record("status", results, self.clock.now() - t0)
        return all(status == "pass" for status, _ in results.values())

    async def _readiness(self) -> bool:
        t0 = self._start("readiness")
        if self.readiness is None:
            message = "no SMTP readiness checks were given to the drill; a drill needs them"
            self._rec.record("readiness", self._all("fail", message), self.clock.now() - t0)
            return False
        targets = {d.name: RRset(d.name, d.failover_ttl, d.backup) for d in self.domains}
        try:
            verdicts = dict(await self._steps.run(self.readiness(self.domains, targets)))
        except MxflipError as exc:
            self._rec.record(
                "readiness",
                self._all("fail", f"readiness check failed: {exc}"),
                self.clock.now() - t0,
            )
            return False
        results: dict[str, tuple[StepStatus, str]] = {}
        for d in self.domains:
            v = verdicts.get(d.name)
            if v is None:
                results[d.name] = ("fail", "no readiness verdict for the backup set")
                continue
            results[d.name] = _verdict_result(v, f"backup set ({_hosts(targets[d.name])})")
            if v.verdict != "not-ready":
                self._proven[d.name] = v
        self._rec.record("readiness", results, self.clock.now() - t0)
        return all(status == "pass" for status, _ in results.values())

    async def _failover(self) -> _Outcome | None:
        """Switch to the backup set and verify it; on failure, restore. Returns the
        outcome when the drill may go on."""
        t0 = self._start("failover")
        opts = PlanOptions(now=not self.planned, reason=self.reason)
        outcome = await self._operate(
            lambda: self.engine.plan_switch("failover", self.domains, opts), t0
        )
        if outcome.blocked or (outcome.error is not None and not outcome.failed_in_verify):
            results = (
                _blocked_results(self.domains, outcome.blocked)
                if outcome.blocked
                else self._blame(str(outcome.error))
            )
            self._rec.record("failover", results, outcome.write_seconds)
            await self._restore(outcome, after="failover")
            return None
        self._rec.record("failover", self._all("pass", _switched(outcome)), outcome.write_seconds)
        self._start("verify-failover")
        verify_error = _verify_error(outcome)
        if verify_error is not None:
            self._rec.record("verify-failover", self._blame(verify_error), outcome.verify_seconds)
            await self._restore(outcome, after="verify-failover")
            return None
        self._rec.record(
            "verify-failover",
            self._all("pass", "every verification nameserver serves the backup set"),
            outcome.verify_seconds,
        )
        return outcome

    async def _probe(self) -> bool:
        t0 = self._start("probe")
        assert self.readiness is not None  # the readiness step needed it
        live = {d.name: RRset(d.name, d.failover_ttl, d.backup) for d in self.domains}
        try:
            verdicts = dict(await self._steps.run(self.readiness(self.domains, live)))
        except MxflipError as exc:
            self._rec.record(
                "probe", self._all("fail", f"SMTP probe failed: {exc}"), self.clock.now() - t0
            )
            return False
        results: dict[str, tuple[StepStatus, str]] = {}
        for d in self.domains:
            v = verdicts.get(d.name)
            what = f"live set ({_hosts(live[d.name])})"
            results[d.name] = _verdict_result(v, what) if v else ("fail", f"{what}: no result")
        self._rec.record("probe", results, self.clock.now() - t0)
        return all(status == "pass" for status, _ in results.values())

    async def _failback(self, failover: _Outcome) -> None:
        assert failover.op_id is not None
        t0 = self._start("failback")
        op_id = failover.op_id
        opts = PlanOptions(reason=self.reason)
        outcome = await self._operate(lambda: self.engine.plan_rollback(op_id, opts), t0)
        if outcome.blocked or (outcome.error is not None and not outcome.failed_in_verify):
            results = (
                _blocked_results(self.domains, outcome.blocked)
                if outcome.blocked
                else self._blame(str(outcome.error))
            )
            self._rec.record("failback", results, outcome.write_seconds)
            self._rec.skip_rest("failback", "not run: the failback failed", keep=("final-status",))
            await self._final_status()
            return
        self._rec.record(
            "failback",
            self._all("pass", f"rolled back operation {op_id}: records and TTL as before"),
            outcome.write_seconds,
        )
        self._start("verify-failback")
        verify_error = _verify_error(outcome)
        if verify_error is not None:
            self._rec.record("verify-failback", self._blame(verify_error), outcome.verify_seconds)
        else:
            self._rec.record(
                "verify-failback",
                self._all("pass", "every verification nameserver serves the primary set again"),
                outcome.verify_seconds,
            )
        await self._final_status()

    async def _restore(self, failed: _Outcome, *, after: str) -> None:
        """After a failed step: put back the before-state of whatever the drill changed."""
        self._rec.skip_rest(after, "not run: an earlier step failed", keep=("final-status",))
        op = failed.op_id
        if op is None:  # nothing was written
            self._rec.add_all("final-status", "skipped", 0.0, "not run: nothing was changed")
            return
        t0 = self._start("restore")
        if failed.result is not None and failed.result.outcome == "rolled-back":
            message = f"the engine rolled operation {op} back when its verification failed"
            self._rec.add_all("restore", "pass", self.clock.now() - t0, message)
        else:
            outcome = await self._operate(
                lambda: self.engine.plan_rollback(op, PlanOptions(reason=self.reason)), t0
            )
            seconds = outcome.write_seconds + outcome.verify_seconds
            if outcome.blocked:
                self._rec.record(
                    "restore", _blocked_results(self.domains, outcome.blocked), seconds
                )
            elif outcome.error is not None:
                self._rec.record(
                    "restore",
                    self._all(
                        "fail",
                        f"{outcome.error}; settle it with 'mxflip rollback {op}'",
                    ),
                    seconds,
                )
            else:
                self._rec.record(
                    "restore", self._all("pass", f"rolled back operation {op}"), seconds
                )
        await self._final_status()

    async def _final_status(self) -> None:
        t0 = self._start("final-status")
        try:
            statuses = await self._steps.run(self.engine.observe(self.domains))
        except MxflipError as exc:
            self._rec.record("final-status", self._all("fail", str(exc)), self.clock.now() - t0)
            return
        results = {
            s.domain.name: _status_verdict(s, expected=self._before.get(s.domain.name))
            for s in statuses
        }
        self._rec.record("final-status", results, self.clock.now() - t0)

    # ------------------------------------------------------------------ operations

    async def _operate(self, build: Callable[[], Coroutine[Any, Any, Plan]], t0: float) -> _Outcome:
        """Plan and execute one engine operation (two steps, as Ctrl-C counts them);
        time its write and verify parts."""
        self._phases.reset()
        try:
            plan = await self._steps.run(build())
        except MxflipError as exc:
            return _Outcome(None, None, exc, self.clock.now() - t0, 0.0)
        if plan.blockers:
            blocked = [(d, blocker_text(None, f)) for d, f in plan.blockers]
            return _Outcome(None, None, None, self.clock.now() - t0, 0.0, blocked=blocked)
        result: RolloutResult | None = None
        error: MxflipError | None = None
        try:
            result = await self._steps.run(self.engine.execute(plan, command=self.command))
        except MxflipError as exc:
            error = exc
        except KeyboardInterrupt:
            if plan.kind == "failover":  # the restore needs to know what to roll back
                self._failover_op = self._phases.op_id
            raise
        if plan.kind == "failover":
            self._failover_op = result.op_id if result is not None else self._phases.op_id
        settled = ("rolled-back",) if plan.kind == "failover" else ("done", "noop")
        if result is not None and result.outcome in settled:
            self._settled = True
        end = self.clock.now()
        op_id = result.op_id if result is not None else self._phases.op_id
        verify_start = self._phases.started.get("verify")
        split = verify_start if verify_start is not None else end
        if op_id is not None:
            outcome = result.outcome if result is not None else "failed"
            self._ops.append(
                DrillOperation(
                    op_id,
                    plan.kind,
                    outcome,
                    str(error) if error else (result.error if result else None),
                )
            )
        return _Outcome(
            op_id,
            result,
            error,
            write_seconds=max(0.0, split - t0),
            verify_seconds=max(0.0, end - split),
            failed_in_verify=verify_start is not None and "verify" not in self._phases.done,
        )


# ---------------------------------------------------------------------- judging


def _status_verdict(s: DomainStatus, *, expected: RRset | None) -> tuple[StepStatus, str]:
    """A domain is fit for a drill (``expected`` None) or back where it was (``expected``):
    on its primary set, readable, every nameserver serving what the provider holds."""
    live = s.provider_rrset
    if s.provider_error is not None:
        return "fail", f"the provider could not be read: {s.provider_error}"
    if s.unreachable:
        return "fail", "; ".join(s.findings) or "no verification nameserver answered"
    if expected is not None and live != expected:
        return "fail", f"not back in its before-state: {_describe(live)}, was {_describe(expected)}"
    if s.match.active != "primary" or not s.match.exact:
        what = s.match.active + ("" if s.match.exact else " (partial)")
        return "fail", f"the live set is {what}, not primary: {_describe(live)}"
    if not s.consistent or any(v.answer.error for v in s.nameservers):
        return "fail", "; ".join(s.findings) or "the nameservers do not agree with the provider"
    served = len(s.nameservers)
    agree = "agrees" if served == 1 else "agree"
    return "pass", f"primary: {_describe(live)}; {served} nameserver{'s' * (served != 1)} {agree}"


def _verdict_result(v: ReadinessVerdict, what: str) -> tuple[StepStatus, str]:
    why = "; ".join(v.reasons)
    if v.verdict == "ready":
        return "pass", f"{what} ready"
    if v.verdict == "degraded":
        return "pass", f"{what} degraded: {why}"
    return "fail", f"{what} not ready: {why or v.verdict}"


def _blocked_results(
    domains: Sequence[DomainConfig], blocked: Sequence[tuple[str | None, str]]
) -> dict[str, tuple[StepStatus, str]]:
    general = [m for d, m in blocked if d is None]
    out: dict[str, tuple[StepStatus, str]] = {}
    for d in domains:
        own = [m for name, m in blocked if name == d.display] + general
        out[d.name] = (
            ("fail", "blocked: " + "; ".join(own))
            if own
            else ("fail", "not run: the operation was blocked for another domain")
        )
    return out


def _verify_error(outcome: _Outcome) -> str | None:
    if outcome.result is not None and outcome.result.outcome == "rolled-back":
        return outcome.result.error or "verification failed"
    if outcome.error is not None:
        return str(outcome.error)
    return None


def _switched(outcome: _Outcome) -> str:
    op = outcome.op_id or "-"
    return f"switched to the backup set (operation {op})"


def _hosts(rrset: RRset) -> str:
    return ", ".join(mx.host.rstrip(".") for mx in sorted(rrset.records))


def _describe(rrset: RRset | None) -> str:
    if rrset is None:
        return "no MX"
    return f"{', '.join(rrset.strings())} (TTL {rrset.ttl})"
