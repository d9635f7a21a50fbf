"""``mxflip watch --once``, ``proposals``: tables for people, JSON for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxflip.render.common import JSON_VERSION, when
from mxflip.watch.rounds import RoundReport
from mxflip.watch.store import Proposal

_STYLE = {
    "ok": "green",
    "suspect": "yellow",
    "failing": "bold red",
    "switched": "magenta",
    "recovering": "cyan",
}


def proposal_json(p: Proposal) -> dict[str, Any]:
    return {
        "id": p.id,
        "domain": p.domain,
        "kind": p.kind,
        "target": p.target,
        "plan_hash": p.plan_hash,
        "created_at": when(p.created_at),
        "expires_at": when(p.expires_at),
        "evidence": p.evidence,
        "status": p.status,
        "operation": p.operation,
        "command": f"mxflip approve {p.id}",
    }


def watch_json(report: RoundReport) -> dict[str, Any]:
    """The ``mxflip watch --once --json`` document."""
    return {
        "version": JSON_VERSION,
        "command": "watch",
        "exit_code": int(report.exit_code),
        "started_at": when(report.started),
        "finished_at": when(report.finished),
        "seconds": round(report.finished - report.started, 3),
        "overrun": report.overrun,
        "role": report.role,
        "leader": report.leader,
        "domains": [
            {
                "domain": d.domain,
                "state": d.state,
                "since": when(d.since) if d.since else None,
                "cause": d.cause,
                "live": d.live,
                "records": list(d.records) if d.records is not None else None,
                "ttl": d.ttl,
                "consistent": d.consistent,
                "nameservers": [
                    {"server": s, "active": a, "error": e} for s, a, e in d.nameservers
                ],
                "readiness": {
                    "backup": d.backup_ready,
                    "backup_reasons": list(d.backup_reasons),
                    "live": d.live_ready,
                },
                "canary": {
                    "primary_path": d.primary_path,
                    "backup_path": d.backup_path,
                    "failing_hosts": list(d.failing_hosts),
                },
                "alerts": [{"key": k, "severity": s, "message": m} for k, s, m in d.conditions],
                "command": d.command,
                "actions": list(d.actions),
            }
            for d in report.domains
        ],
        "watcher": [{"key": k, "severity": s, "message": m} for k, s, m in report.watcher],
        "proposals": [proposal_json(p) for p in report.proposals],
        "failed_actions": list(report.failed_actions),
    }


def render_watch(console: Console, report: RoundReport) -> None:
    if report.role == "follower":
        console.print(
            f"Follower: another watcher leads and acts ({report.leader or 'none yet'}).",
            markup=False,
        )
    table = Table()
    for col in ("Domain", "State", "Live", "Canary primary/backup", "Backup", "Alerts"):
        table.add_column(col)
    for d in report.domains:
        table.add_row(
            d.domain,
            Text(d.state, style=_STYLE.get(d.state, "")),
            d.live,
            f"{d.primary_path or '-'} / {d.backup_path or '-'}",
            d.backup_ready or "-",
            "\n".join(m for _, _, m in d.conditions) or "-",
        )
    console.print(table)
    for d in report.domains:
        for action in d.actions:
            console.print(f"{d.domain}: {action}", markup=False, soft_wrap=True)
        if d.command:
            console.print(f"{d.domain}: {d.command}", markup=False, soft_wrap=True)
    for _, _, message in report.watcher:
        console.print(f"watcher: {message}", markup=False, soft_wrap=True)
    if report.overrun:
        console.print("the round took longer than the interval", style="yellow")


def proposals_json(proposals: Sequence[Proposal], exit_code: int) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "command": "proposals",
        "exit_code": exit_code,
        "proposals": [proposal_json(p) for p in proposals],
    }


def render_proposals(console: Console, proposals: Sequence[Proposal]) -> None:
    if not proposals:
        console.print("No proposals.")
        return
    table = Table()
    for col in ("Id", "Status", "Domain", "Action", "Plan", "Expires", "Evidence"):
        table.add_column(col)
    for p in proposals:
        table.add_row(
            p.id,
            p.status,
            p.domain,
            f"{p.kind} {p.target}",
            p.plan_hash,
            when(p.expires_at) or "",
            p.evidence,
        )
    console.print(table)
