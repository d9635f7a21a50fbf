"""Orchestration of the changing commands: observe → plan → (the CLI confirms) → execute.

The CLI and tests drive the same :class:`Engine`; it owns the providers (through an
:class:`~mxflip.observe.Observer`), the journal, the clock and the readiness checks, and
never prints.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass

from mxflip.cname_targets import find_cname_targets
from mxflip.config import Config, DomainConfig
from mxflip.errors import MxflipError, UsageError
from mxflip.findings import Finding, Severity
from mxflip.hostport import HostPort
from mxflip.journal import (
    JournalStep,
    JournalView,
    Operation,
    OperationLog,
    new_operation_id,
)
from mxflip.logs import timed
from mxflip.observe import DomainStatus, Observer
from mxflip.plan import (
    Plan,
    PlanOptions,
    Readiness,
    ReadinessVerdict,
    plan_drain,
    plan_finalize,
    plan_prepare,
    plan_restore,
    plan_resume,
    plan_rollback,
    plan_switch,
)
from mxflip.provider import Change, Provider
from mxflip.records import RRset, normalize_name
from mxflip.rollout import (
    Clock,
    DNSQuery,
    EventSink,
    Failpoint,
    Rollout,
    RolloutResult,
    SystemClock,
    default_query,
)
from mxflip.state.base import JournalStore

_log = logging.getLogger(__name__)

#: Kinds that change DNS on their own (rollback and resume settle one of these).
PRIMARY_KINDS = ("failover", "failback", "prepare", "finalize", "drain", "restore")


class PlanRefused(MxflipError):
    """The plan has blocking safety findings (or does not match ``--plan-hash``)."""


class Unsettled(MxflipError):
    """An earlier operation may have left zones half-way: settle it first."""

    def __init__(self, op: Operation) -> None:
        super().__init__(
            unsettled_text(op),
            hint=f"run 'mxflip resume {op.id}' to finish it or "
            f"'mxflip rollback {op.id}' to undo it",
        )
        self.op = op


def unsettled_text(op: Operation) -> str:
    """The one wording for an operation that blocks every change until it is settled."""
    who = f"{op.intent.get('user')}@{op.intent.get('host')}"
    return (
        f"operation {op.id} ({op.kind}, {op.intent.get('time')}, {who}) was {op.outcome} "
        "and may have left zones half-way"
    )


def blocker_text(domain: str | None, finding: Finding) -> str:
    """One blocking finding as every caller words it: ``domain: message [code]``."""
    return f"{domain + ': ' if domain else ''}{finding.message} [{finding.code}]"


def refuse_blocked(plan: Plan) -> None:
    """Raise :class:`PlanRefused` when ``plan`` has blocking findings (the one check the
    CLI, the drill and :meth:`Engine.execute` share)."""
    if plan.blockers:
        _log.info(
            "plan refused",
            extra={"kind": plan.kind, "blockers": [f.code for _, f in plan.blockers]},
        )
        raise PlanRefused(
            "refusing to apply the plan: "
            + "; ".join(blocker_text(d, f) for d, f in plan.blockers),
            hint="fix the cause, or pass --force --reason TEXT where that is allowed",
        )


@dataclass(frozen=True)
class SwitchReadiness:
    """When the live TTL is low enough for a quick switch, from live TTLs and the journal."""

    lowered_ttl: bool
    switch_ready: bool
    #: When caches of the previous, longer TTL have expired (None: not known / long ago).
    ready_at: float | None


class Engine:
    """One configuration's changing operations, with injectable clock, providers,
    readiness, DNS queries, event sink and failpoints."""

    def __init__(
        self,
        config: Config,
        journal: JournalStore,
        *,
        clock: Clock | None = None,
        readiness: Readiness | None = None,
        providers: Mapping[str, Provider] | None = None,
        events: EventSink | None = None,
        failpoint: Failpoint | None = None,
        query: DNSQuery = default_query,
        dns_timeout: float = 2.0,
        verify_timeout: float = 120.0,
        wait_timeout: float = 300.0,
        user: str | None = None,
    ) -> None:
        self.config = config
        self.user = user
        self.journal = journal
        self.clock = clock or SystemClock()
        self.readiness = readiness
        self.observer = Observer(config, dns_timeout=dns_timeout, providers=providers)
        self.events = events
        self.failpoint = failpoint
        self.query = query
        self.dns_timeout = dns_timeout
        self.verify_timeout = verify_timeout
        self.wait_timeout = wait_timeout
        self._servers: dict[str, list[HostPort]] = {}

    def close(self) -> None:
        self.observer.close()

    # ------------------------------------------------------------------ observing

    async def observe(self, domains: Sequence[DomainConfig]) -> list[DomainStatus]:
        return await self.observer.status(domains)

    async def _verdicts(
        self, statuses: Sequence[DomainStatus], targets: Mapping[str, RRset | None]
    ) -> Mapping[str, ReadinessVerdict] | None:
        if self.readiness is None:
            return None
        wanted = {n: r for n, r in targets.items() if r is not None}
        if not wanted:
            return {}
        domains = [s.domain for s in statuses if s.domain.name in wanted]
        try:
            with timed(_log, "readiness", level=logging.INFO, domains=len(domains)):
                verdicts = await self.readiness(domains, wanted)
        except MxflipError as exc:
            _log.info("readiness check failed", extra={"error": str(exc)})
            return {
                n: ReadinessVerdict("not-ready", (f"readiness check failed: {exc}",))
                for n in wanted
            }
        for name, verdict in verdicts.items():
            _log.info("readiness verdict", extra={"domain": name, "verdict": verdict.verdict})
        return verdicts

    async def _aliases(self, targets: Mapping[str, RRset | None]) -> dict[str, str]:
        """CNAME targets among the new hosts that live in their domain's own zone."""
        checks = []
        for name, rrset in targets.items():
            domain = self.config.domains.get(name)
            if domain is None or rrset is None:
                continue
            for host in rrset.hosts:
                if host == domain.zone or host.endswith("." + domain.zone):
                    checks.append((host, self.servers(domain)))
        return await find_cname_targets(checks, timeout=self.dns_timeout)

    def first_unsettled(self) -> Operation | None:
        """The latest operation that may have left zones half-way (every change is
        refused until it is resumed or rolled back), or None."""
        unsettled = self.journal.read().unsettled()
        return unsettled[-1] if unsettled else None

    def require_settled(self) -> None:
        """Raise :class:`Unsettled` when an earlier operation must be settled first."""
        op = self.first_unsettled()
        if op is not None:
            _log.info("unsettled operation", extra={"op": op.id, "outcome": op.outcome})
            raise Unsettled(op)

    async def unsettled_and_plan(
        self, planning: Awaitable[Plan]
    ) -> tuple[Operation | None, Plan | Exception]:
        """The unsettled check and ``planning``, asked together: the one reads the journal
        (a listing, on a shared backend), the other asks DNS, and neither needs the other.
        The plan's error is returned, for the caller to raise only once the check has had
        its say (an unsettled operation is refused, or settled, first)."""
        import asyncio

        unsettled, outcome = await asyncio.gather(
            asyncio.to_thread(self.first_unsettled), planning, return_exceptions=True
        )
        if isinstance(unsettled, BaseException):
            raise unsettled
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome  # cancelled, interrupted
        return unsettled, outcome

    # ------------------------------------------------------------------ planning

    async def plan_switch(
        self, kind: str, domains: Sequence[DomainConfig], opts: PlanOptions
    ) -> Plan:
        profile = "backup" if kind == "failover" else "primary"
        statuses = await self.observe(domains)
        targets = {
            s.domain.name: RRset(s.domain.name, s.domain.failover_ttl, s.domain.profile(profile))
            for s in statuses
            if s.domain.profile(profile) != (s.provider_rrset.records if s.provider_rrset else None)
        }
        verdicts = None if opts.skip_readiness else await self._verdicts(statuses, targets)
        plan = plan_switch(kind, statuses, profile, opts, verdicts, await self._aliases(targets))
        return self._note_parts(plan)

    async def plan_prepare(self, domains: Sequence[DomainConfig], opts: PlanOptions) -> Plan:
        return self._note_parts(plan_prepare(await self.observe(domains), opts))

    async def plan_finalize(self, domains: Sequence[DomainConfig], opts: PlanOptions) -> Plan:
        return self._note_parts(plan_finalize(await self.observe(domains), opts))

    async def plan_drain(self, host: str, opts: PlanOptions, *, restore: bool = False) -> Plan:
        try:
            name = normalize_name(host)
        except ValueError as exc:
            raise UsageError(f"{host!r} is not a host name: {exc}") from None
        statuses = await self.observe(list(self.config.domains.values()))
        planner = plan_restore if restore else plan_drain
        draft = planner(statuses, name, opts, {}, {})
        targets = {s.name: s.after for s in draft.changes}
        verdicts = None if opts.skip_readiness else await self._verdicts(statuses, targets)
        aliases = await self._aliases(targets)
        return self._note_parts(planner(statuses, name, opts, verdicts, aliases))

    def _target_op(self, op_id: str | None, *, for_resume: bool) -> Operation:
        view = self.journal.read()
        if op_id is not None:
            op = view.find(op_id)
            if op is None:
                raise UsageError(
                    f"no operation {op_id!r} in the journal {self.journal.path}",
                    hint="'mxflip history' lists the operations",
                )
            return op
        if for_resume:
            candidates = view.unsettled()
            if not candidates:
                raise UsageError("no interrupted or failed operation to resume")
            return candidates[-1]
        # A resume settles its parent (which then counts as done): roll back the parent.
        candidates = [
            o
            for o in view.operations
            if o.kind in PRIMARY_KINDS and o.outcome != "rolled-back" and o.changed_anything
        ]
        if not candidates:
            raise UsageError(
                f"no operation to roll back in the journal {self.journal.path}",
                hint="'mxflip history' lists the operations",
            )
        return candidates[-1]

    async def _settle_inputs(self, op: Operation) -> tuple[Operation, list[DomainStatus]]:
        # A resume continues its parent: roll back / resume the parent's recorded states.
        view = self.journal.read()
        base = op
        while base.kind == "resume" and base.intent.get("parent"):
            parent = view.find(str(base.intent["parent"]))
            if parent is None:
                break
            base = parent
        domains = []
        for step in base.steps:
            if step.domain not in self.config.domains:
                raise UsageError(
                    f"operation {op.id} changed {step.domain.rstrip('.')}, "
                    "which is not in this configuration"
                )
            domains.append(self.config.domains[step.domain])
        return base, await self.observe(domains)

    async def plan_rollback(self, op_id: str | None, opts: PlanOptions) -> Plan:
        op = self._target_op(op_id, for_resume=False)
        base, statuses = await self._settle_inputs(op)
        return self._note_parts(plan_rollback(base.id, base.steps, statuses, opts))

    async def plan_resume(self, op_id: str | None, opts: PlanOptions) -> Plan:
        op = self._target_op(op_id, for_resume=True)
        base, statuses = await self._settle_inputs(op)
        recorded_opts = base.intent.get("options", {})
        merged = PlanOptions(
            force=opts.force,
            reason=opts.reason,
            restore_ttl_after=opts.restore_ttl_after
            if opts.restore_ttl_after is not None
            else recorded_opts.get("restore_ttl_after"),
            auto_rollback=opts.auto_rollback and bool(recorded_opts.get("auto_rollback", True)),
        )
        return self._note_parts(plan_resume(base.id, base.steps, statuses, merged))

    def _note_parts(self, plan: Plan) -> Plan:
        """Say when a zone's switch cannot be one atomic write: the provider splits it
        (request or message size limits), so an interruption can leave some parts applied."""
        groups: dict[tuple[str, str], list[Change]] = defaultdict(list)
        for step in plan.changes:
            old = step.prelower or step.before
            if old != step.after:
                groups[(step.domain.provider, step.domain.zone)].append(
                    Change(step.name, old, step.after)
                )
        notes = []
        for (provider, zone), changes in groups.items():
            try:
                parts = self.observer.provider(provider).write_parts(zone, changes)
            except MxflipError:
                continue  # the write itself reports what is wrong with the provider
            if parts > 1:
                notes.append(
                    Finding(
                        Severity.WARN,
                        "split-write",
                        f"zone {zone.rstrip('.')} is switched in {parts} atomic parts "
                        f"({len(changes)} domains do not fit in one write); an interruption "
                        "can leave some parts switched: 'mxflip resume' or 'mxflip rollback' "
                        "settles them",
                    )
                )
        if not notes:
            return _planned(plan)
        return _planned(dataclasses.replace(plan, findings=(*plan.findings, *notes)))

    # ------------------------------------------------------------------ executing

    async def execute(self, plan: Plan, *, command: Sequence[str] = ()) -> RolloutResult:
        """Run ``plan`` (the caller holds the journal lock and has confirmed it). A
        rollback or resume that finds nothing to do still settles its parent, and says
        why in the journal: the zones are already where it would take them."""
        refuse_blocked(plan)
        if plan.parent is not None and not plan.changes:
            return self._settle_noop(plan, command)
        prelowered_at = None
        if plan.kind == "resume" and plan.parent is not None:
            parent = self.journal.read().find(plan.parent)
            if parent is not None:
                prelowered_at = parent.phase_done_at("prelower")
        rollout = Rollout(
            plan,
            self.journal,
            provider=self.observer.provider,
            servers=self.servers,
            clock=self.clock,
            events=self.events,
            failpoint=self.failpoint,
            readiness=self.readiness,
            command=command,
            query=self.query,
            dns_timeout=self.dns_timeout,
            wait_timeout=self.wait_timeout,
            verify_timeout=self.verify_timeout,
            prelowered_at=prelowered_at,
            user=self.user,
        )
        with timed(_log, "operation", level=logging.INFO, kind=plan.kind) as fields:
            result = await rollout.run()
            fields.update(op=result.op_id, outcome=result.outcome)
        if plan.parent is not None and result.outcome == "done":
            self._note_settled(plan, result.op_id or "-", why=None)
        return result

    def _note_settled(self, plan: Plan, by: str, *, why: str | None) -> None:
        # The parent is settled: every zone is in its before-state (rollback) or its
        # after-state (resume).
        assert plan.parent is not None
        rolled_back = plan.kind == "rollback"
        detail: dict[str, str] = {"why": why} if why else {}
        OperationLog(self.journal, by, self.clock.now).note(
            plan.parent,
            "rolled-back" if rolled_back else "done",
            kind=plan.kind,
            state="before" if rolled_back else "after",
            **detail,
        )

    def _settle_noop(self, plan: Plan, command: Sequence[str]) -> RolloutResult:
        """Journal a rollback/resume with nothing to write: its own intent and a ``noop``
        result, then the note that settles the parent."""
        started = self.clock.now()
        op_id = new_operation_id(started)
        state = "before" if plan.kind == "rollback" else "after"
        why = f"nothing to do: every zone is already in operation {plan.parent}'s {state}-state"
        log = OperationLog(self.journal, op_id, self.clock.now)
        log.intent(
            kind=plan.kind,
            target=plan.target,
            reason=plan.options.reason,
            command=command,
            plan_hash=plan.hash,
            steps=[],
            options={},
            parent=plan.parent,
        )
        states = {s.name: state for s in plan.steps}
        log.result("noop", why=why, states=states)
        self._note_settled(plan, op_id, why=why)
        return RolloutResult(op_id, plan, "noop", states, started, self.clock.now(), note=why)

    def servers(self, domain: DomainConfig) -> list[HostPort]:
        if domain.name not in self._servers:
            found, _ = self.observer.verification_servers(domain)
            self._servers[domain.name] = found
        return self._servers[domain.name]


def _planned(plan: Plan) -> Plan:
    """Log what was decided (the plan's size, findings and hash) and return ``plan``."""
    _log.info(
        "plan",
        extra={
            "kind": plan.kind,
            "changes": len(plan.changes),
            "blockers": [f.code for _, f in plan.blockers],
            "hash": plan.hash,
        },
    )
    return plan


def switch_readiness(status: DomainStatus, view: JournalView, now: float) -> SwitchReadiness:
    """``lowered_ttl``: the live TTL is below ``ttl``. ``switch_ready``: the live TTL is at
    most ``failover_ttl`` and caches of the TTL it replaced have expired (per the journal's
    record of the lowering; with no record, a low TTL is taken as long-standing)."""
    return switch_readiness_all([status], view, now)[status.domain.name]


def switch_readiness_all(
    statuses: Sequence[DomainStatus], view: JournalView, now: float
) -> dict[str, SwitchReadiness]:
    """:func:`switch_readiness` of every status, reading the journal once: each
    operation's steps are indexed by domain in one pass (per-domain scans of every step
    made ``status`` quadratic right after a failover of many domains)."""
    wanted = {s.domain.name for s in statuses}
    history: dict[str, list[tuple[Operation, JournalStep]]] = {}
    for op in reversed(view.operations):
        for step in op.steps:
            if step.domain in wanted:
                history.setdefault(step.domain, []).append((op, step))
    return {s.domain.name: _readiness(s, history.get(s.domain.name, ()), now) for s in statuses}


def _readiness(
    status: DomainStatus, history: Sequence[tuple[Operation, JournalStep]], now: float
) -> SwitchReadiness:
    d, live = status.domain, status.provider_rrset
    if live is None:
        return SwitchReadiness(False, False, None)
    lowered = live.ttl < d.ttl
    if live.ttl > d.failover_ttl:
        return SwitchReadiness(lowered, False, None)
    ready_at: float | None = None
    for op, step in history:  # newest operation first
        written = step.prelower if step.prelower == live else step.after
        if written != live:
            continue
        lowering = step.prelower == live
        # The TTL the written set replaced: a pre-lowered switch replaced the short one.
        replaced = step.before if lowering or step.prelower is None else step.prelower
        old = replaced.ttl if replaced is not None else 0
        done = op.phase_done_at("prelower" if lowering else "switch")
        if done is not None:
            ready_at = done + old
            break
    ready = ready_at is None or ready_at <= now
    return SwitchReadiness(lowered, ready, ready_at)
