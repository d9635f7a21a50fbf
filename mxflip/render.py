"""Turn result values into rich tables for people or JSON documents for scripts.

JSON documents are stable contracts: fields are added, never renamed or dropped.
Rich output respects NO_COLOR and falls back to plain text when stdout is not a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxflip.canary import CanaryStatus, CheckReport, PathSummary, SendResult
from mxflip.config import Config, DomainConfig
from mxflip.duration import format_duration
from mxflip.engine import SwitchReadiness
from mxflip.journal import JournalView, Operation
from mxflip.observe import ServerView
from mxflip.plan import Plan
from mxflip.provider import InstalledProvider
from mxflip.records import RRset, display_name
from mxflip.rollout import Event, RolloutResult
from mxflip.status import StatusReport

JSON_VERSION = 1

_ACTIVE_STYLE = {
    "primary": "green",
    "backup": "yellow",
    "mixed": "red",
    "unknown": "red",
    "absent": "red",
}


def stdout_console() -> Console:
    """Rich console for results. Piped output gets a wide fixed width (unless COLUMNS is
    set) so that tables are not truncated to 80 columns in logs and scripts."""
    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        width = 160
    return Console(file=sys.stdout, highlight=False, width=width)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def write_json(document: Mapping[str, Any]) -> None:
    """One JSON document on stdout, newline-terminated."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------------- status


def _records(rrset: RRset | None) -> list[str]:
    return rrset.strings() if rrset is not None else []


def _server_json(view: ServerView) -> dict[str, Any]:
    a = view.answer
    return {
        "server": a.server,
        "address": a.address,
        "records": None if a.error else _records(a.rrset),
        "ttl": a.rrset.ttl if a.rrset is not None else None,
        "active": view.match.active if view.match else None,
        "error": a.error,
    }


def status_json(report: StatusReport) -> dict[str, Any]:
    """The ``mxflip status --json`` document."""
    domains: list[dict[str, Any]] = []
    for s in report.domains:
        d = s.domain
        flags = report.switch.get(d.name)
        domains.append(
            {
                "domain": d.display,
                "zone": display_name(d.zone),
                "provider": d.provider,
                "active": s.match.active,
                "exact": s.match.exact,
                "records": None if s.provider_error else _records(s.provider_rrset),
                "ttl": s.provider_rrset.ttl if s.provider_rrset is not None else None,
                "consistent": s.consistent,
                "provider_error": s.provider_error,
                "profiles": {
                    "primary": sorted(str(mx) for mx in d.primary),
                    "backup": sorted(str(mx) for mx in d.backup),
                },
                "nameservers": [_server_json(v) for v in s.nameservers],
                "resolvers": [_server_json(v) for v in s.resolvers],
                "findings": list(s.findings) + _switch_findings(d, flags),
                "lowered_ttl": flags.lowered_ttl if flags else None,
                "switch_ready": flags.switch_ready if flags else None,
                "switch_ready_at": _when(flags.ready_at) if flags else None,
            }
        )
        if report.canary is not None:
            domains[-1]["canary"] = canary_status_json(report.canary.get(d.display, ()))
        if report.probes is not None:
            from mxflip.render_check import readiness_json

            probe = report.probes.get(d.name)
            domains[-1]["probe"] = readiness_json(probe) if probe is not None else None
    return {
        "version": JSON_VERSION,
        "command": "status",
        "exit_code": int(report.exit_code),
        "domains": domains,
        "unsettled_operations": [_unsettled_json(op) for op in report.unsettled],
        "journal_error": report.journal_error,
    }


def _switch_findings(d: DomainConfig, flags: SwitchReadiness | None) -> list[str]:
    if flags is None or not flags.lowered_ttl:
        return []
    text = f"left on a lowered TTL (normal ttl is {d.ttl}); 'mxflip finalize' raises it"
    if flags.switch_ready:
        text += "; switch-ready"
    elif flags.ready_at is not None:
        text += f"; switch-ready at {_when(flags.ready_at)}"
    return [text]


def _unsettled_json(op: Operation) -> dict[str, Any]:
    return {
        "id": op.id,
        "kind": op.kind,
        "outcome": op.outcome,
        "time": op.intent.get("time"),
        "user": op.intent.get("user"),
        "host": op.intent.get("host"),
    }


def _unsettled_text(op: Operation) -> str:
    return (
        f"warning: operation {op.id} ({op.kind}, {op.intent.get('time')}, "
        f"{op.intent.get('user')}@{op.intent.get('host')}) was {op.outcome}; "
        f"run 'mxflip resume {op.id}' or 'mxflip rollback {op.id}'"
    )


def _records_text(rrset: RRset | None) -> str:
    if rrset is None:
        return "(no MX)"
    return "\n".join(rrset.strings()) + f"\nTTL {rrset.ttl}"


def _servers_cell(views: Sequence[ServerView], reference: RRset | None) -> Text:
    text = Text()
    for i, v in enumerate(views):
        if i:
            text.append("\n")
        if v.answer.error:
            text.append("✗ ", style="red")
            text.append(f"{v.server}: {v.answer.error}")
        elif v.answer.rrset == reference:
            text.append("✓ ", style="green")
            text.append(v.server)
        else:
            text.append("≠ ", style="yellow")
            active = v.match.active if v.match else "?"
            ttl = f" TTL {v.answer.rrset.ttl}" if v.answer.rrset else ""
            text.append(f"{v.server}: {active}{ttl}")
    return text or Text("(none)")


def render_status(console: Console, report: StatusReport) -> None:
    statuses = report.domains
    table = Table(title=None, show_lines=True)
    table.add_column("Domain", no_wrap=True)
    table.add_column("Live", no_wrap=True)
    table.add_column("Provider records", no_wrap=True)
    table.add_column("Nameservers")
    has_resolvers = any(s.resolvers for s in statuses)
    if has_resolvers:
        table.add_column("Resolvers")
    probes = report.probes
    if probes is not None:
        from mxflip.render_check import finding_lines, health_cell

        table.add_column("Live health")
    for s in statuses:
        active = Text(s.match.active, style=_ACTIVE_STYLE.get(s.match.active, ""))
        if not s.match.exact:
            active.append(" (partial)", style="yellow")
        if not s.consistent:
            active.append("\ninconsistent", style="red")
        provider = (
            Text(f"error: {s.provider_error}", style="red")
            if s.provider_error
            else Text(_records_text(s.provider_rrset))
        )
        row: list[Any] = [
            s.domain.display,
            active,
            provider,
            _servers_cell(s.nameservers, s.provider_rrset),
        ]
        if has_resolvers:
            row.append(_servers_cell(s.resolvers, s.provider_rrset))
        if probes is not None:
            row.append(health_cell(probes.get(s.domain.name)))
        table.add_row(*row)
    console.print(table)
    for s in statuses:
        flags = report.switch.get(s.domain.name)
        for finding in [*s.findings, *_switch_findings(s.domain, flags)]:
            console.print(f"{s.domain.display}: {finding}", markup=False, soft_wrap=True)
        if report.canary:
            render_canary_status(console, s.domain.display, report.canary.get(s.domain.display, ()))
        probe = probes.get(s.domain.name) if probes is not None else None
        for line in finding_lines(probe) if probe is not None else []:
            console.print(line, markup=False, soft_wrap=True)
    for op in report.unsettled:
        console.print(_unsettled_text(op), markup=False, soft_wrap=True)
    if report.journal_error:
        console.print(f"warning: {report.journal_error}", markup=False, soft_wrap=True)


# ------------------------------------------------------------------------- providers


def providers_json(installed: Iterable[InstalledProvider]) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "command": "providers",
        "providers": [
            {
                "type": p.type,
                "distribution": p.distribution,
                "version": p.version,
                "target": p.target,
            }
            for p in sorted(installed, key=lambda p: p.type)
        ],
    }


def render_providers(console: Console, installed: Iterable[InstalledProvider]) -> None:
    rows = sorted(installed, key=lambda p: p.type)
    if not rows:
        console.print("No provider adapters are installed (pip install mxflip-rfc2136, …).")
        return
    table = Table()
    for col in ("Type", "Distribution", "Version", "Entry point"):
        table.add_column(col, no_wrap=True)
    for p in rows:
        table.add_row(p.type, p.distribution or "?", p.version or "?", p.target)
    console.print(table)


# ------------------------------------------------------------------------- validate


def config_json(config: Config) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "command": "validate",
        "config": str(config.path) if config.path else None,
        "providers": {name: p.type for name, p in config.providers.items()},
        "domains": [
            {
                "domain": d.display,
                "zone": display_name(d.zone),
                "provider": d.provider,
                "primary": sorted(str(mx) for mx in d.primary),
                "backup": sorted(str(mx) for mx in d.backup),
                "ttl": d.ttl,
                "failover_ttl": d.failover_ttl,
                "nameservers": [str(n) for n in d.nameservers],
                "resolvers": [str(r) for r in d.resolvers],
            }
            for d in config.domains.values()
        ],
    }


def render_config(console: Console, config: Config) -> None:
    n_domains, n_providers = len(config.domains), len(config.providers)
    console.print(
        f"{config.path}: OK — {n_domains} domain{'s' if n_domains != 1 else ''}, "
        f"{n_providers} provider{'s' if n_providers != 1 else ''}",
        markup=False,
    )


# ------------------------------------------------------------------------- plans


def _when(ts: float | None) -> str | None:
    from mxflip.journal import iso

    return None if ts is None else iso(ts)


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan part of every changing command's JSON document."""
    return {
        "kind": plan.kind,
        "target": plan.target,
        "hash": plan.hash,
        "parent": plan.parent,
        "expected_seconds": plan.expected_seconds,
        "phases": [{"name": p.name, "seconds": p.seconds} for p in plan.phases],
        "findings": [
            {"severity": f.severity, "code": f.code, "message": f.message} for f in plan.findings
        ],
        "blocked": bool(plan.blockers),
        "steps": [
            {
                "domain": s.domain.display,
                "zone": display_name(s.domain.zone),
                "provider": s.domain.provider,
                "noop": s.noop,
                "before": _rr_json(s.before),
                "prelower": _rr_json(s.prelower),
                "after": _rr_json(s.after),
                "findings": [
                    {
                        "severity": f.severity,
                        "code": f.code,
                        "message": f.message,
                        "overridable": f.overridable,
                    }
                    for f in s.findings
                ],
            }
            for s in plan.steps
        ],
    }


def _rr_json(rrset: RRset | None) -> dict[str, Any] | None:
    return None if rrset is None else {"records": rrset.strings(), "ttl": rrset.ttl}


def _rr_text(rrset: RRset | None) -> str:
    if rrset is None:
        return "(no MX)"
    return "\n".join(rrset.strings()) + f"\nTTL {rrset.ttl}"


_PHASE_TEXT = {
    "prelower": "lower the TTL of the live set",
    "prelower-wait": "wait for caches of the old TTL to expire",
    "switch": "write the new set (conditional, atomic per zone)",
    "verify": "poll every verification nameserver until all serve it",
    "restore-wait": "wait before raising the TTL",
    "restore-ttl": "raise the TTL back to ttl",
}


def render_plan(console: Console, plan: Plan) -> None:
    """Per domain before → after, TTL phases, findings, expected completion, plan hash."""
    table = Table(title=f"{plan.kind} → {plan.target}", show_lines=True)
    for col in ("Domain", "Before", "", "After", "Findings"):
        table.add_column(col, no_wrap=col != "Findings")
    for s in plan.steps:
        findings = Text()
        for i, f in enumerate(s.findings):
            if i:
                findings.append("\n")
            style = "red" if f.severity == "block" else "yellow"
            findings.append(f"{f.severity}: ", style=style)
            findings.append(f"{f.message} [{f.code}]")
        after = Text("unchanged", style="dim") if s.noop else Text(_rr_text(s.after))
        if s.prelower is not None:
            after = Text(f"(first TTL {s.prelower.ttl})\n") + after
        table.add_row(s.domain.display, _rr_text(s.before), "→", after, findings)
    if plan.steps:
        console.print(table)
    for f in plan.findings:
        console.print(f"{f.severity}: {f.message} [{f.code}]", markup=False)
    if plan.phases:
        console.print("Phases:", markup=False)
        for p in plan.phases:
            console.print(
                f"  {p.name:<14} {_PHASE_TEXT.get(p.name, '')} (~{_duration(p.seconds)})",
                markup=False,
            )
        console.print(f"Expected completion in ~{_duration(plan.expected_seconds)}", markup=False)
    changes = len(plan.changes)
    console.print(
        f"{changes} domain{'s' if changes != 1 else ''} to change, "
        f"{len(plan.steps) - changes} already there. Plan hash: {plan.hash}",
        markup=False,
    )
    for d, f in plan.blockers:
        console.print(f"BLOCKED: {d + ': ' if d else ''}{f.message} [{f.code}]", markup=False)
    for d, f in plan.forced:
        console.print(f"FORCED: {d + ': ' if d else ''}{f.message} [{f.code}]", markup=False)


def operation_json(
    command: str,
    exit_code: int,
    plan: Plan,
    result: RolloutResult | None,
    *,
    dry_run: bool = False,
    error: str | None = None,
) -> dict[str, Any]:
    """The ``--json`` document of a changing command."""
    doc: dict[str, Any] = {
        "version": JSON_VERSION,
        "command": command,
        "exit_code": exit_code,
        "dry_run": dry_run,
        "plan": plan_json(plan),
        "operation": None,
        "error": error,
    }
    if result is not None:
        doc["operation"] = {
            "id": result.op_id,
            "outcome": result.outcome,
            "states": {display_name(k): v for k, v in result.states.items()},
            "started": _when(result.started),
            "finished": _when(result.finished),
            "phases": [{"name": n, "status": s} for n, s in result.phases],
            "old_answers_until": _when(result.old_answers_until),
            "cached": [
                {
                    "domain": c.domain,
                    "server": c.server,
                    "records": list(c.records),
                    "until": _when(c.until),
                }
                for c in result.cached
            ],
            "error": result.error,
        }
        doc["error"] = doc["error"] or result.error
    return doc


def render_result(console: Console, result: RolloutResult) -> None:
    if result.outcome == "noop":
        console.print("Nothing to do: every domain is already in the asked state.")
        return
    console.print(
        f"Operation {result.op_id}: {result.outcome} "
        f"in {_duration(result.finished - result.started)}",
        markup=False,
    )
    for domain, state in result.states.items():
        console.print(f"  {display_name(domain)}: {state}", markup=False)
    if result.error:
        console.print(f"  error: {result.error}", markup=False)
    if result.old_answers_until is not None:
        console.print(
            f"Old answers may stay cached until {_when(result.old_answers_until)}.",
            markup=False,
        )
    for c in result.cached:
        console.print(
            f"  resolver {c.server} caches the old set of {c.domain} until {_when(c.until)}",
            markup=False,
        )


class EventPrinter:
    """Progress for a changing command: JSON lines on stderr with ``--json``, a rich
    countdown on a terminal, plain lines otherwise (countdowns every 10 %)."""

    def __init__(self, *, as_json: bool, console: Console | None = None) -> None:
        self.as_json = as_json
        self.console = console or stderr_console()
        self._last_shown: float | None = None
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, event: Event) -> None:
        if self.as_json:
            doc = {"event": event.kind, "phase": event.phase, "message": event.message}
            doc.update({k: v for k, v in event.data.items() if _jsonable(v)})
            sys.stderr.write(json.dumps(doc) + "\n")
            sys.stderr.flush()
            return
        if event.kind == "countdown":
            self._countdown(event)
            return
        self._stop_progress()
        if event.kind == "phase-start":
            self.console.print(f"… {_PHASE_TEXT.get(event.phase or '', event.message)}")
        elif event.kind == "phase-done":
            self.console.print(f"✓ {event.phase}")
        elif event.kind == "info" and "until" in event.data:
            self.console.print(f"{event.message} until {_when(float(event.data['until']))}")
        elif event.kind in ("rollback", "cached", "info"):
            self.console.print(event.message, markup=False)

    def _countdown(self, event: Event) -> None:
        remaining = float(event.data.get("remaining", 0.0))
        total = float(event.data.get("total", 0.0)) or 1.0
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            if self._progress is None:
                self._progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=True,
                )
                self._progress.start()
                self._task = self._progress.add_task(event.message, total=total)
            self._progress.update(self._task, completed=total - remaining)
            if remaining <= 0:
                self._stop_progress()
            return
        step = max(total / 10, 1.0)
        if self._last_shown is None or self._last_shown - remaining >= step or remaining <= 0:
            self._last_shown = remaining
            self.console.print(f"  {event.message}: {_duration(remaining)} left", markup=False)
        if remaining <= 0:
            self._last_shown = None

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | type(None))


# ------------------------------------------------------------------------- history


def history_json(view: JournalView, limit: int | None) -> dict[str, Any]:
    ops = view.operations[-limit:] if limit else view.operations
    return {
        "version": JSON_VERSION,
        "command": "history",
        "exit_code": 0,
        "skipped_lines": view.skipped_lines,
        "operations": [
            {
                "id": op.id,
                "kind": op.kind,
                "target": op.intent.get("target"),
                "time": op.intent.get("time"),
                "user": op.intent.get("user"),
                "host": op.intent.get("host"),
                "reason": op.intent.get("reason"),
                "command": op.intent.get("command"),
                "plan_hash": op.intent.get("plan_hash"),
                "parent": op.intent.get("parent"),
                "outcome": op.outcome,
                "steps": op.intent.get("steps", []),
                "phases": [
                    {"phase": p.get("phase"), "status": p.get("status"), "time": p.get("time")}
                    for p in op.phases
                ],
                "result": op.result,
                "notes": op.notes,
            }
            for op in reversed(ops)
        ],
    }


def render_history(console: Console, view: JournalView, limit: int | None) -> None:
    ops = view.operations[-limit:] if limit else view.operations
    if not ops:
        console.print("The journal holds no operations.")
        return
    table = Table()
    for col in ("Operation", "When", "Who", "What", "Domains", "Outcome", "Reason"):
        table.add_column(col, no_wrap=col not in ("Reason", "Domains"))
    for op in reversed(ops):
        steps = op.steps
        what = f"{op.kind} → {op.intent.get('target', '')}"
        domains = ", ".join(display_name(s.domain) for s in steps[:3])
        if len(steps) > 3:
            domains += f" (+{len(steps) - 3})"
        outcome = op.outcome
        style = {"done": "green", "rolled-back": "yellow"}.get(outcome, "red")
        table.add_row(
            op.id,
            str(op.intent.get("time", "")),
            f"{op.intent.get('user')}@{op.intent.get('host')}",
            what,
            domains,
            Text(outcome, style=style),
            str(op.intent.get("reason") or ""),
        )
    console.print(table)
    if view.skipped_lines:
        console.print(f"({view.skipped_lines} unreadable journal line(s) skipped)")


# ------------------------------------------------------------------------- canary

_CANARY_STYLE = {
    "on_time": "green",
    "pending": "cyan",
    "late": "yellow",
    "missing": "red",
    "send_failed": "red",
}
#: The states ``mxflip_canary_status`` has a series for (one is 1, the others 0).
PROMETHEUS_STATES = ("on_time", "late", "missing", "send_failed")


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _send_json(r: SendResult) -> dict[str, Any]:
    return {
        "domain": r.domain,
        "path": r.path,
        "via": r.via,
        "token": r.token,
        "address": r.address,
        "sent_at": _when(r.sent_at),
        "ok": r.ok,
        "host": display_name(r.host) if r.host else None,
        "tls": r.attempts[-1].tls if r.ok else None,
        "error": r.error,
        "attempts": [
            {"host": display_name(a.host), "target": a.target, "tls": a.tls, "error": a.error}
            for a in r.attempts
        ],
    }


def canary_send_json(results: Sequence[SendResult], exit_code: int) -> dict[str, Any]:
    """The ``mxflip canary send --json`` document."""
    return {
        "version": JSON_VERSION,
        "command": "canary send",
        "exit_code": exit_code,
        "canaries": [_send_json(r) for r in results],
    }


def render_canary_send(console: Console, results: Sequence[SendResult]) -> None:
    for r in results:
        if r.ok:
            tls = r.attempts[-1].tls or "none"
            console.print(
                Text.assemble(
                    ("✓ ", "green"),
                    f"{r.domain}: canary {r.token} sent to {r.address} via {r.path} "
                    f"({display_name(r.host or '?')}, TLS {tls})",
                )
            )
        else:
            console.print(Text.assemble(("✗ ", "red"), f"{r.domain}: {r.error}"))
        for a in r.attempts:
            if a.error:
                console.print(f"    {display_name(a.host)} ({a.target}): {a.error}", markup=False)


def canary_check_json(
    report: CheckReport, exit_code: int, command: str = "canary check"
) -> dict[str, Any]:
    """The ``mxflip canary check --json`` (and ``run``) document."""
    doc: dict[str, Any] = {
        "version": JSON_VERSION,
        "command": command,
        "exit_code": exit_code,
        "checked_at": _when(report.checked_at),
        "warn_after_seconds": report.warn_after,
        "fail_after_seconds": report.fail_after,
        "deleted": report.deleted,
        "canaries": [
            {
                "domain": o.domain,
                "path": o.path,
                "token": o.token,
                "status": o.status,
                "address": o.address,
                "sent_at": _when(o.sent_at),
                "arrived_at": _when(o.arrived_at),
                "delay_seconds": _seconds(o.delay) if o.status != "send_failed" else None,
                "host": display_name(o.host) if o.host else None,
                "error": o.error,
            }
            for o in report.outcomes
        ],
    }
    if command == "canary run":
        doc["sent"] = [_send_json(r) for r in report.sent]
    return doc


def render_canary_check(console: Console, report: CheckReport) -> None:
    if not report.outcomes:
        console.print("No canaries outstanding (send one with: mxflip canary send).")
        return
    table = Table()
    for col in ("Domain", "Path", "Result", "Delay", "Sent", "Token"):
        table.add_column(col, no_wrap=True)
    for o in report.outcomes:
        if o.status == "send_failed":
            delay = Text(o.error or "", style="red")
        elif o.arrived_at is None:
            delay = Text(f"not yet, {format_duration(o.delay)}", style="dim")
        else:
            delay = Text(format_duration(o.delay))
        table.add_row(
            o.domain,
            o.path,
            Text(o.status.replace("_", " "), style=_CANARY_STYLE.get(o.status, "")),
            delay,
            _when(o.sent_at),
            o.token,
        )
    console.print(table)
    console.print(
        f"late after {format_duration(report.warn_after)}, missing after "
        f"{format_duration(report.fail_after)}"
        + (f"; {report.deleted} canary message(s) removed" if report.deleted else ""),
        markup=False,
    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def canary_prometheus(summaries: Iterable[PathSummary]) -> str:
    """The node_exporter textfile: delay, last success, last check and state per domain
    and path (every path in the state file, not only the ones this run touched)."""
    rows = sorted(summaries, key=lambda s: (s.domain, s.path))
    metrics: list[tuple[str, str, list[tuple[str, float]]]] = [
        (
            "mxflip_canary_delay_seconds",
            "Delivery delay of the last canary; for one not found yet, its age.",
            [],
        ),
        (
            "mxflip_canary_last_success_timestamp_seconds",
            "Unix time the last canary delivered on time arrived (0: never).",
            [],
        ),
        (
            "mxflip_canary_last_check_timestamp_seconds",
            "Unix time of the last canary result.",
            [],
        ),
        (
            "mxflip_canary_status",
            "Result of the last canary: 1 for the current state, 0 for the others.",
            [],
        ),
    ]
    for s in rows:
        labels = f'domain="{_label(s.domain)}",path="{_label(s.path)}"'
        metrics[0][2].append((labels, s.delay or 0.0))
        metrics[1][2].append((labels, s.last_success_at or 0.0))
        metrics[2][2].append((labels, s.checked_at))
        for state in PROMETHEUS_STATES:
            metrics[3][2].append((f'{labels},state="{state}"', 1.0 if s.status == state else 0.0))
    lines = []
    for name, help_text, samples in metrics:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{{{labels}}} {_number(v)}" for labels, v in samples)
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return repr(round(value, 3)) if value != int(value) else str(int(value))


def canary_status_json(statuses: Sequence[CanaryStatus]) -> list[dict[str, Any]]:
    """The ``canary`` list of a domain in ``mxflip status --json``."""
    return [
        {
            "path": c.summary.path,
            "status": c.summary.status,
            "checked_at": _when(c.summary.checked_at),
            "sent_at": _when(c.summary.sent_at),
            "delay_seconds": _seconds(c.summary.delay),
            "last_success_at": _when(c.summary.last_success_at),
            "failing_since": _when(c.failing_since),
            "alert": c.alert,
            "retry_window_left_seconds": _seconds(c.retry_left),
        }
        for c in statuses
    ]


def render_canary_status(console: Console, domain: str, statuses: Sequence[CanaryStatus]) -> None:
    """Canary lines under ``mxflip status``; an alert for a failing primary path."""
    for c in statuses:
        s = c.summary
        delay = f", delay {format_duration(s.delay)}" if s.delay is not None else ""
        console.print(
            Text.assemble(
                f"{domain}: canary via {s.path}: ",
                (s.status.replace("_", " "), _CANARY_STYLE.get(s.status, "")),
                f"{delay} (checked {_when(s.checked_at)})",
            ),
            soft_wrap=True,
        )
    for c in statuses:
        if not c.alert or c.failing_for is None or c.retry_left is None:
            continue
        left = (
            f"about {format_duration(c.retry_left)} left before typical senders' retry "
            "windows run out and their mail bounces"
            if c.retry_left > 0
            else "typical senders' retry windows have already run out: mail is being lost"
        )
        console.print(
            Text(
                f"!! {domain}: mail through the primary path has been late or missing for "
                f"{format_duration(c.failing_for)}; {left}. "
                f"Consider: mxflip failover {domain}",
                style="bold red",
            ),
            soft_wrap=True,
        )
