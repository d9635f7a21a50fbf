"""Pure planning: from what is live (observations), a target and options to a ``Plan``.

Nothing here talks to a provider, a nameserver or the clock: the same inputs give the
same plan and the same hash, so a plan printed by ``--dry-run`` can be reviewed and then
applied exactly with ``--plan-hash``.

A plan is a list of per-domain steps. Each step names the RRset it expects to find
(``before``), an optional TTL pre-lowering write (``prelower``: the same records with the
short TTL) and what the set must become (``after``). Safety findings attach to steps;
a ``block`` finding stops the operation unless it is ``overridable`` and ``--force`` is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mxflip.config import DomainConfig
from mxflip.findings import Finding, Severity
from mxflip.journal import JournalStep, rrset_json
from mxflip.observe import DomainStatus
from mxflip.records import MX, RRset

#: Rough time of one provider write plus its "served" wait, for the expected completion.
WRITE_SECONDS = 2.0
VERIFY_SECONDS = 5.0


# --------------------------------------------------------------------- readiness


@dataclass(frozen=True)
class ReadinessVerdict:
    """The readiness of one domain's target set: ``ready``, ``degraded`` or ``not-ready``."""

    verdict: str
    reasons: tuple[str, ...] = ()


#: What the engine needs of the SMTP readiness checks: for each domain, is the set it is
#: about to publish (domain name → RRset) ready to receive mail? Keyed by domain name.
Readiness = Callable[
    [Sequence[DomainConfig], Mapping[str, RRset]],
    Coroutine[Any, Any, Mapping[str, ReadinessVerdict]],
]


# --------------------------------------------------------------------- plan values


@dataclass(frozen=True)
class Step:
    """What happens to one domain's MX RRset."""

    domain: DomainConfig
    before: RRset | None
    after: RRset | None
    prelower: RRset | None = None
    findings: tuple[Finding, ...] = ()
    #: The TTL resolvers may have cached the old set with (default: ``before``'s TTL);
    #: a resumed operation whose set is already pre-lowered still waits out the original.
    cached_ttl: int | None = None

    @property
    def old_ttl(self) -> int:
        if self.cached_ttl is not None:
            return self.cached_ttl
        return self.before.ttl if self.before is not None else 0

    @property
    def name(self) -> str:
        return self.domain.name

    @property
    def noop(self) -> bool:
        return self.before == self.after and self.prelower is None

    def journal(self) -> dict[str, Any]:
        """The step as the journal and the plan hash see it: names and records only."""
        return {
            "domain": self.domain.name,
            "zone": self.domain.zone,
            "provider": self.domain.provider,
            "before": rrset_json(self.before),
            "prelower": rrset_json(self.prelower),
            "after": rrset_json(self.after),
        }


@dataclass(frozen=True)
class Phase:
    """A phase and how long it is expected to take, in seconds."""

    name: str
    seconds: float


@dataclass(frozen=True)
class PlanOptions:
    """Options that change what a plan writes or whether it may proceed."""

    now: bool = False
    force: bool = False
    reason: str | None = None
    skip_readiness: bool = False
    restore_ttl_after: float | None = None
    auto_rollback: bool = True


@dataclass(frozen=True)
class Plan:
    """A reviewed-able, hashable description of one operation."""

    kind: str
    target: str
    steps: tuple[Step, ...]
    phases: tuple[Phase, ...]
    options: PlanOptions = field(default_factory=PlanOptions)
    #: For rollback/resume: the operation this one settles.
    parent: str | None = None
    findings: tuple[Finding, ...] = ()
    hash: str = ""

    @property
    def changes(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if not s.noop)

    @property
    def all_findings(self) -> list[tuple[str | None, Finding]]:
        out: list[tuple[str | None, Finding]] = [(None, f) for f in self.findings]
        out += [(s.domain.display, f) for s in self.steps for f in s.findings]
        return out

    @property
    def blockers(self) -> list[tuple[str | None, Finding]]:
        """Block findings that stop the plan (all of them, or with ``--force`` only those
        that cannot be overridden)."""
        return [
            (d, f)
            for d, f in self.all_findings
            if f.severity is Severity.BLOCK and (not f.overridable or not self.options.force)
        ]

    @property
    def forced(self) -> list[tuple[str | None, Finding]]:
        """Block findings that ``--force`` overrides."""
        if not self.options.force:
            return []
        return [
            (d, f) for d, f in self.all_findings if f.severity is Severity.BLOCK and f.overridable
        ]

    @property
    def expected_seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)


def plan_hash(
    kind: str, target: str, steps: Sequence[Step], phases: Sequence[Phase], opts: PlanOptions
) -> str:
    """First 12 hex digits of SHA-256 over everything the plan would write (and expect),
    canonically serialised; no timestamps, so the same situation gives the same hash."""
    doc = {
        "kind": kind,
        "target": target,
        "steps": [s.journal() for s in sorted(steps, key=lambda s: s.name)],
        "phases": [[p.name, p.seconds] for p in phases],
        "restore_ttl_after": opts.restore_ttl_after,
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _finish(
    kind: str,
    target: str,
    steps: list[Step],
    opts: PlanOptions,
    *,
    verify: bool = True,
    parent: str | None = None,
    findings: Sequence[Finding] = (),
) -> Plan:
    changes = [s for s in steps if not s.noop]
    phases: list[Phase] = []
    prelowered = [s for s in changes if s.prelower is not None]
    if prelowered:
        phases.append(Phase("prelower", WRITE_SECONDS))
        wait = max(s.old_ttl for s in prelowered)
        phases.append(Phase("prelower-wait", float(wait)))
    if any(s.before != s.after for s in changes):
        phases.append(Phase("switch", WRITE_SECONDS))
        if verify:
            phases.append(Phase("verify", VERIFY_SECONDS))
        if opts.restore_ttl_after is not None and any(
            s.after is not None and s.after.ttl < s.domain.ttl for s in changes
        ):
            phases.append(Phase("restore-wait", float(opts.restore_ttl_after)))
            phases.append(Phase("restore-ttl", WRITE_SECONDS))
    if not changes:
        phases = []
    return Plan(
        kind=kind,
        target=target,
        steps=tuple(steps),
        phases=tuple(phases),
        options=opts,
        parent=parent,
        findings=tuple(findings),
        hash=plan_hash(kind, target, steps, phases, opts),
    )


# --------------------------------------------------------------------- safety


def _target_findings(
    status: DomainStatus, after: RRset | None, aliases: Mapping[str, str]
) -> list[Finding]:
    found: list[Finding] = []
    if after is None or not after.records:
        found.append(
            Finding(
                Severity.BLOCK,
                "empty-target",
                "the change would leave the domain with no MX records",
                overridable=False,
            )
        )
        return found
    for mx in sorted(after.records):
        labels = mx.host.rstrip(".").split(".")
        if all(label.isdigit() for label in labels):
            found.append(
                Finding(
                    Severity.BLOCK,
                    "address-literal",
                    f"{mx.host} is an address literal, not a host",
                )
            )
        if mx.host in aliases:
            found.append(
                Finding(
                    Severity.BLOCK,
                    "cname-target",
                    f"{mx.host} is a CNAME (to {aliases[mx.host]}); an MX target must not be "
                    "an alias (RFC 2181 10.3), many senders refuse it",
                )
            )
    return found


def _readiness_findings(
    name: str,
    verdicts: Mapping[str, ReadinessVerdict] | None,
    opts: PlanOptions,
) -> list[Finding]:
    if opts.skip_readiness:
        return [
            Finding(
                Severity.WARN, "readiness-skipped", "readiness checks skipped (--skip-readiness)"
            )
        ]
    if verdicts is None:
        return [
            Finding(
                Severity.BLOCK,
                "readiness-unavailable",
                "no SMTP readiness checks were given to the engine; "
                "a switch needs them (or --skip-readiness --reason TEXT)",
                overridable=False,
            )
        ]
    verdict = verdicts.get(name)
    if verdict is None:
        return [
            Finding(Severity.BLOCK, "readiness-unknown", "no readiness verdict for the target set")
        ]
    why = "; ".join(verdict.reasons)
    if verdict.verdict == "ready":
        return []
    if verdict.verdict == "degraded":
        return [Finding(Severity.WARN, "target-degraded", f"target set is degraded: {why}")]
    return [Finding(Severity.BLOCK, "target-not-ready", f"target set is not ready: {why}")]


def _live_findings(status: DomainStatus, expected: Sequence[str]) -> list[Finding]:
    found: list[Finding] = []
    if status.provider_error is not None:
        found.append(
            Finding(
                Severity.BLOCK,
                "provider-unreadable",
                f"the provider could not be read: {status.provider_error}",
                overridable=False,
            )
        )
        return found
    m = status.match
    if m.active not in expected or not m.exact:
        what = m.active + ("" if m.exact else " (partial)")
        found.append(
            Finding(
                Severity.BLOCK,
                "unexpected-live",
                f"the live records are {what}, not {' or '.join(expected)} as expected",
            )
        )
    if not status.consistent:
        found.append(
            Finding(
                Severity.WARN,
                "nameservers-disagree",
                "the nameservers do not all serve what the provider holds",
            )
        )
    return found


def _nameserver_findings(status: DomainStatus) -> list[Finding]:
    """A verification nameserver that does not answer now would fail the verification
    only after the pre-lowering wait (an hour lost mid-incident): say so while planning."""
    found = []
    if status.nameserver_error is not None:
        found.append(
            Finding(
                Severity.BLOCK,
                "nameservers-unknown",
                f"the verification nameservers cannot be found: {status.nameserver_error}",
            )
        )
    for view in status.nameservers:
        if view.answer.error is not None:
            found.append(
                Finding(
                    Severity.BLOCK,
                    "nameserver-unreachable",
                    f"verification nameserver {view.server} does not answer "
                    f"({view.answer.error}); the change could not be verified there",
                )
            )
    return found


# --------------------------------------------------------------------- planners


def plan_switch(
    kind: str,
    statuses: Sequence[DomainStatus],
    profile: str,
    opts: PlanOptions,
    verdicts: Mapping[str, ReadinessVerdict] | None,
    aliases: Mapping[str, str] | None = None,
) -> Plan:
    """``failover`` (to ``backup``) or ``failback`` (to ``primary``)."""
    other = "primary" if profile == "backup" else "backup"
    steps = []
    for s in statuses:
        d = s.domain
        after = RRset(d.name, d.failover_ttl, d.profile(profile))
        before = s.provider_rrset
        if s.provider_error is None and after.same_records(before):
            steps.append(Step(d, before, before))
            continue
        findings = _live_findings(s, (other,))
        findings += _target_findings(s, after, aliases or {})
        findings += _readiness_findings(d.name, verdicts, opts)
        findings += _nameserver_findings(s)
        steps.append(Step(d, before, after, _prelower(before, d, opts), tuple(findings)))
    return _finish(kind, profile, steps, opts)


def _prelower(before: RRset | None, d: DomainConfig, opts: PlanOptions) -> RRset | None:
    if opts.now or before is None or before.ttl <= d.failover_ttl:
        return None
    return before.with_ttl(d.failover_ttl)


def plan_prepare(statuses: Sequence[DomainStatus], opts: PlanOptions) -> Plan:
    """Lower each live set's TTL to ``failover_ttl`` (records unchanged)."""
    steps = []
    for s in statuses:
        d, before = s.domain, s.provider_rrset
        if s.provider_error is not None or before is None or before.ttl <= d.failover_ttl:
            findings = _live_findings(s, ("primary", "backup")) if s.provider_error else []
            steps.append(Step(d, before, before, findings=tuple(findings)))
            continue
        steps.append(
            Step(
                d, before, before.with_ttl(d.failover_ttl), findings=tuple(_nameserver_findings(s))
            )
        )
    return _finish("prepare", "failover_ttl", steps, opts)


def plan_finalize(statuses: Sequence[DomainStatus], opts: PlanOptions) -> Plan:
    """Raise each live set's TTL back to ``ttl`` (records unchanged)."""
    steps = []
    for s in statuses:
        d, before = s.domain, s.provider_rrset
        if s.provider_error is not None or before is None or before.ttl >= d.ttl:
            findings = _live_findings(s, ("primary", "backup")) if s.provider_error else []
            steps.append(Step(d, before, before, findings=tuple(findings)))
            continue
        steps.append(
            Step(d, before, before.with_ttl(d.ttl), findings=tuple(_nameserver_findings(s)))
        )
    return _finish("finalize", "ttl", steps, opts)


def plan_drain(
    statuses: Sequence[DomainStatus],
    host: str,
    opts: PlanOptions,
    verdicts: Mapping[str, ReadinessVerdict] | None,
    aliases: Mapping[str, str] | None = None,
) -> Plan:
    """Remove ``host`` from every live set that holds it; the rest are untouched."""
    steps = []
    for s in statuses:
        d, before = s.domain, s.provider_rrset
        if before is None or host not in before.hosts:
            continue
        remaining = frozenset(mx for mx in before.records if mx.host != host)
        after = RRset(d.name, d.failover_ttl, remaining) if remaining else None
        # Draining works on whatever is live (a set may already be partial): only an
        # unreadable provider or disagreeing nameservers matter here.
        findings = [f for f in _live_findings(s, ()) if f.code != "unexpected-live"]
        findings += _target_findings(s, after, aliases or {})
        if after is not None:
            findings += _readiness_findings(d.name, verdicts, opts)
        findings += _nameserver_findings(s)
        steps.append(Step(d, before, after, _prelower(before, d, opts), tuple(findings)))
    findings = []
    if not steps:
        findings.append(Finding(Severity.WARN, "host-not-live", f"{host} is in no live MX set"))
    return _finish("drain", host, steps, opts, findings=findings)


def plan_restore(
    statuses: Sequence[DomainStatus],
    host: str,
    opts: PlanOptions,
    verdicts: Mapping[str, ReadinessVerdict] | None,
    aliases: Mapping[str, str] | None = None,
) -> Plan:
    """Put ``host`` back into every live set whose profile lists it but which lacks it."""
    steps = []
    for s in statuses:
        d, before = s.domain, s.provider_rrset
        if before is None or host in before.hosts or s.provider_error is not None:
            continue
        profile = s.match.active if s.match.active in ("primary", "backup") else None
        wanted: MX | None = None
        if profile is not None:
            wanted = next((mx for mx in d.profile(profile) if mx.host == host), None)
        if wanted is None:
            continue
        after = RRset(d.name, d.failover_ttl, before.records | {wanted})
        findings = _live_findings(s, (profile or "primary",))
        findings = [f for f in findings if f.code != "unexpected-live"]
        findings += _target_findings(s, after, aliases or {})
        findings += _readiness_findings(d.name, verdicts, opts)
        findings += _nameserver_findings(s)
        steps.append(Step(d, before, after, _prelower(before, d, opts), tuple(findings)))
    findings = []
    if not steps:
        findings.append(
            Finding(Severity.WARN, "host-not-drained", f"no live set is missing {host}")
        )
    return _finish("restore", host, steps, opts, findings=findings)


def plan_rollback(
    op_id: str,
    recorded: Sequence[JournalStep],
    statuses: Sequence[DomainStatus],
    opts: PlanOptions,
) -> Plan:
    """Back to each domain's recorded ``before`` (records and TTL), from whichever state of
    the operation is live (before, pre-lowered, after or TTL-restored); a set that matches
    none of them was changed by someone else and blocks unless forced."""
    return _settle("rollback", op_id, recorded, statuses, opts, forward=False)


def plan_resume(
    op_id: str,
    recorded: Sequence[JournalStep],
    statuses: Sequence[DomainStatus],
    opts: PlanOptions,
) -> Plan:
    """Forward to each domain's recorded ``after``, from whichever state is live."""
    return _settle("resume", op_id, recorded, statuses, opts, forward=True)


def known_states(step: JournalStep, domain: DomainConfig) -> list[RRset | None]:
    """Every state an operation can leave a domain in (the TTL-restored ``after`` too)."""
    states: list[RRset | None] = [step.before, step.prelower, step.after]
    if step.after is not None:
        states.append(step.after.with_ttl(domain.ttl))
    return states


def _settle(
    kind: str,
    op_id: str,
    recorded: Sequence[JournalStep],
    statuses: Sequence[DomainStatus],
    opts: PlanOptions,
    *,
    forward: bool,
) -> Plan:
    by_name = {s.domain.name: s for s in statuses}
    restore_ttl = opts.restore_ttl_after is not None
    steps = []
    for rec in recorded:
        s = by_name.get(rec.domain)
        if s is None:
            continue
        d, live = s.domain, s.provider_rrset
        goal = rec.after if forward else rec.before
        findings: list[Finding] = []
        if s.provider_error is not None:
            findings += _live_findings(s, ())
        elif live not in known_states(rec, d):
            findings.append(
                Finding(
                    Severity.BLOCK,
                    "changed-since",
                    f"the live records ({_short(live)}) are none of operation {op_id}'s "
                    "states; someone else changed them",
                )
            )
        prelower = None
        if forward and rec.after is not None and live == rec.after.with_ttl(d.ttl):
            goal = live  # already finished and TTL-restored: nothing to do
        elif forward and rec.after is not None and live == rec.after and restore_ttl:
            # Switched and verified, interrupted while waiting to raise the TTL: the
            # pending TTL restore is done now rather than waited for again.
            goal = rec.after.with_ttl(d.ttl)
        elif forward and rec.prelower is not None and live in (rec.before, rec.prelower):
            # Interrupted before the switch: pre-lower (a no-op when already done) and
            # wait out what remains of the old TTL before switching.
            prelower = rec.prelower
        cached = rec.before.ttl if prelower is not None and rec.before is not None else None
        steps.append(Step(d, live, goal, prelower, tuple(findings), cached_ttl=cached))
    return _finish(
        kind,
        op_id,
        steps,
        PlanOptions(
            now=not forward,
            force=opts.force,
            reason=opts.reason,
            skip_readiness=True,
            restore_ttl_after=opts.restore_ttl_after if forward else None,
            auto_rollback=opts.auto_rollback and forward,
        ),
        parent=op_id,
    )


def _short(rrset: RRset | None) -> str:
    if rrset is None:
        return "no MX"
    return f"{', '.join(rrset.strings())} TTL {rrset.ttl}"
