"""What the watcher does about a decision: the exact command in an alert, a stored
proposal, or a failover through the engine — the same plans, plan hashes, journal and
lock as a person's command, journalled as user ``watch`` with the evidence as reason.

``mxflip approve`` executes a proposal through the CLI's own changing-command flow; this
module only finds and settles proposals.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from mxflip import loop
from mxflip.clock import Clock
from mxflip.config import Config, DomainConfig
from mxflip.duration import format_duration
from mxflip.engine import Engine
from mxflip.errors import MxflipError, UsageError
from mxflip.plan import Plan, PlanOptions
from mxflip.state import JournalStore
from mxflip.watch.alerts import Alert
from mxflip.watch.machine import Want
from mxflip.watch.store import Proposal, WatchState

log = logging.getLogger("mxflip.watch")
WATCH_USER = "watch"


@dataclass
class Outcome:
    command: str | None = None
    messages: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    failed: str | None = None
    switched: bool = False


def command_for(kind: str, target: str, plan_hash: str, now: bool) -> str:
    """The command a person runs to apply exactly the plan the watcher reviewed."""
    flag = " --now" if now and kind in ("failover", "drain") else ""
    return f"mxflip {kind} {target}{flag} --plan-hash {plan_hash}"


class Actions:
    """One round's actions; holds an engine (built on first use)."""

    def __init__(
        self,
        config: Config,
        journal: JournalStore,
        state: WatchState,
        *,
        clock: Clock,
        verify_timeout: float = 120.0,
    ) -> None:
        self.config = config
        self.settings = config.watch
        self.journal = journal
        self.state = state
        self.clock = clock
        self.verify_timeout = verify_timeout
        self._engine: Engine | None = None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    def engine(self) -> Engine:
        if self._engine is None:
            from mxflip.readiness import default_readiness

            self._engine = Engine(
                self.config,
                self.journal,
                clock=self.clock,
                readiness=default_readiness(self.config),
                verify_timeout=self.verify_timeout,
                user=WATCH_USER,
            )
        return self._engine

    def plan(self, d: DomainConfig, kind: str, target: str, opts: PlanOptions) -> Plan:
        engine = self.engine()
        if kind == "drain":
            return loop.run(engine.plan_drain(target, opts))
        return loop.run(engine.plan_switch(kind, [d], opts))

    def _now_flag(self, kind: str) -> bool:
        from mxflip.watch.config import WatchConfig

        settings = self.settings or WatchConfig()
        return settings.failover_now if kind == "failover" else kind == "drain"

    def handle(self, d: DomainConfig, want: Want, now: float) -> Outcome:
        try:
            if want.mode == "notify":
                return self._notify(d, want)
            if want.mode == "propose":
                return self._propose(d, want, now)
            return self._auto(d, want)
        except MxflipError as exc:
            log.error("%s %s: %s", want.kind, want.target, exc)
            # Alerted by the watcher as a condition: once, reminded, resolved.
            return Outcome(failed=f"could not {want.kind} {want.target}: {exc}")

    def _notify(self, d: DomainConfig, want: Want) -> Outcome:
        now_flag = self._now_flag(want.kind)
        plan = self.plan(d, want.kind, want.target, PlanOptions(now=now_flag, skip_readiness=True))
        return Outcome(command=command_for(want.kind, want.target, plan.hash, now_flag))

    def _propose(self, d: DomainConfig, want: Want, now: float) -> Outcome:
        from mxflip.watch.config import WatchConfig

        settings = self.settings or WatchConfig()
        for p in self.state.proposals:
            if p.status == "pending" and now >= p.expires_at:
                p.status = "expired"
        for p in self.state.proposals:
            if (p.domain, p.kind, p.target) == (d.display, want.kind, want.target) and p.open(now):
                return Outcome(
                    command=f"mxflip approve {p.id}",
                )
        now_flag = self._now_flag(want.kind)
        plan = self.plan(d, want.kind, want.target, PlanOptions(now=now_flag, skip_readiness=True))
        if not plan.changes:
            return Outcome()
        p = Proposal(
            id=secrets.token_hex(4),
            domain=d.display,
            kind=want.kind,
            target=want.target,
            plan_hash=plan.hash,
            created_at=now,
            expires_at=now + settings.proposal_ttl,
            evidence=want.evidence,
            now=now_flag,
        )
        self.state.proposals.append(p)
        text = (
            f"proposal {p.id}: {want.kind} {want.target} (plan {plan.hash}) because "
            f"{want.evidence}; approve with: mxflip approve {p.id} "
            f"(expires in {format_duration(settings.proposal_ttl)})"
        )
        return Outcome(
            command=f"mxflip approve {p.id}",
            messages=[text],
            alerts=[Alert(f"mxflip: {d.display}: {text}", text, "warning", d.display)],
        )

    def _auto(self, d: DomainConfig, want: Want) -> Outcome:
        opts = PlanOptions(
            now=self._now_flag("failover"),
            reason=f"watch: automatic failover: {want.evidence}",
        )
        plan = self.plan(d, "failover", d.display, opts)
        if plan.blockers:
            reasons = "; ".join(f.message for _, f in plan.blockers)
            raise MxflipError(f"automatic failover refused by the safety checks: {reasons}")
        if not plan.changes:
            return Outcome()
        if self.journal.read().unsettled():
            raise MxflipError(
                "automatic failover held: an earlier operation is unsettled "
                "(mxflip resume / mxflip rollback first)"
            )
        with self.journal.lock(f"mxflip watch: failover {d.display}"):
            result = loop.run(
                self.engine().execute(plan, command=["mxflip", "watch", "failover", d.display])
            )
        if result.outcome not in ("done", "noop"):
            raise MxflipError(
                f"automatic failover {result.outcome}: {result.error or 'see mxflip history'}"
            )
        text = (
            f"automatic failover to the backup set done (operation {result.op_id}, plan "
            f"{plan.hash}) because {want.evidence}"
        )
        log.warning("%s: %s", d.display, text)
        return Outcome(
            messages=[text],
            alerts=[Alert(f"mxflip: {d.display}: {text}", text, "failure", d.display)],
            switched=True,
        )


# ----------------------------------------------------------------- proposals (CLI side)


def find_proposal(state: WatchState, ident: str, now: float) -> Proposal:
    """The pending proposal ``ident`` (or an id prefix), or one clear line why not."""
    p = state.proposal(ident)
    if p is None:
        raise UsageError(f"no proposal {ident!r}", hint="'mxflip proposals' lists the open ones")
    if p.status != "pending":
        raise UsageError(
            f"proposal {p.id} is {p.status}" + (f" ({p.operation})" if p.operation else "")
        )
    if now >= p.expires_at:
        raise UsageError(
            f"proposal {p.id} expired; the watcher proposes again while it is still needed",
            hint="'mxflip proposals' lists the open ones",
        )
    return p


def open_proposals(state: WatchState, now: float) -> Sequence[Proposal]:
    return [p for p in state.proposals if p.open(now)]
