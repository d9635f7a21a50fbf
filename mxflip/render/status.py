"""``mxflip status``: the table for people and the JSON document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxflip.config import DomainConfig
from mxflip.engine import SwitchReadiness
from mxflip.journal import Operation
from mxflip.observe import ServerView
from mxflip.records import RRset, display_name
from mxflip.render.canary import canary_status_json, render_canary_status
from mxflip.render.check import finding_lines, health_cell, readiness_json
from mxflip.render.common import JSON_VERSION, records_text, when
from mxflip.status import StatusReport

_ACTIVE_STYLE = {
    "primary": "green",
    "backup": "yellow",
    "mixed": "red",
    "unknown": "red",
    "absent": "red",
}


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
        "unreachable": a.unreachable,
        "slow": a.slow,
        "tries": a.tries,
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
                "switch_ready_at": when(flags.ready_at) if flags else None,
            }
        )
        if report.canary is not None:
            domains[-1]["canary"] = canary_status_json(report.canary.get(d.display, ()))
        if report.probes is not None:
            probe = report.probes.get(d.name)
            domains[-1]["probe"] = readiness_json(probe) if probe is not None else None
    return {
        "version": JSON_VERSION,
        "command": "status",
        "exit_code": int(report.exit_code),
        "domains": domains,
        "unsettled_operations": [_unsettled_json(op, report) for op in report.unsettled],
        "journal_error": report.journal_error,
        "journal_problems": list(report.journal_problems),
        "running": report.running,
        "canary_error": report.canary_error,
    }


def _switch_findings(d: DomainConfig, flags: SwitchReadiness | None) -> list[str]:
    if flags is None or not flags.lowered_ttl:
        return []
    text = f"left on a lowered TTL (normal ttl is {d.ttl}); 'mxflip finalize' raises it"
    if flags.switch_ready:
        text += "; switch-ready"
    elif flags.ready_at is not None:
        text += f"; switch-ready at {when(flags.ready_at)}"
    return [text]


def _unsettled_json(op: Operation, report: StatusReport) -> dict[str, Any]:
    return {
        "id": op.id,
        "kind": op.kind,
        "outcome": "running" if op.id == report.running_op else op.outcome,
        "time": op.intent.get("time"),
        "user": op.intent.get("user"),
        "host": op.intent.get("host"),
    }


def _unsettled_text(op: Operation, report: StatusReport) -> str:
    # Without a result while the lock is held: running, not interrupted.
    if op.id == report.running_op:
        return f"operation {op.id} ({op.kind}) is running: {report.running}"
    return (
        f"warning: operation {op.id} ({op.kind}, {op.intent.get('time')}, "
        f"{op.intent.get('user')}@{op.intent.get('host')}) was {op.outcome}; "
        f"run 'mxflip resume {op.id}' or 'mxflip rollback {op.id}'"
    )


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
        if v.answer.slow:
            text.append(f" (slow: try {v.answer.tries})", style="yellow")
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
            else Text(records_text(s.provider_rrset))
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
        console.print(_unsettled_text(op, report), markup=False, soft_wrap=True)
    if report.running and report.running_op is None:
        console.print(f"an operation is running: {report.running}", markup=False, soft_wrap=True)
    if report.journal_error:
        console.print(f"warning: {report.journal_error}", markup=False, soft_wrap=True)
    for problem in report.journal_problems:
        console.print(f"warning: journal {problem} (skipped)", markup=False, soft_wrap=True)
    if report.canary_error:
        console.print(f"warning: {report.canary_error}", markup=False, soft_wrap=True)
