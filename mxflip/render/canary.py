"""Delivery canaries: send and check reports, status lines (metrics: mxflip.canary.metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxflip.canary import CanaryStatus, CheckReport, SendResult
from mxflip.duration import format_duration
from mxflip.records import display_name
from mxflip.render.common import JSON_VERSION, when

_CANARY_STYLE = {
    "on_time": "green",
    "pending": "cyan",
    "late": "yellow",
    "missing": "red",
    "send_failed": "red",
}


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _send_json(r: SendResult) -> dict[str, Any]:
    return {
        "domain": r.domain,
        "path": r.path,
        "via": r.via,
        "token": r.token,
        "address": r.address,
        "sent_at": when(r.sent_at),
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
        "checked_at": when(report.checked_at),
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
                "sent_at": when(o.sent_at),
                "arrived_at": when(o.arrived_at),
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
            when(o.sent_at),
            o.token,
        )
    console.print(table)
    console.print(
        f"late after {format_duration(report.warn_after)}, missing after "
        f"{format_duration(report.fail_after)}"
        + (f"; {report.deleted} canary message(s) removed" if report.deleted else ""),
        markup=False,
    )


def canary_status_json(statuses: Sequence[CanaryStatus]) -> list[dict[str, Any]]:
    """The ``canary`` list of a domain in ``mxflip status --json``."""
    return [
        {
            "path": c.summary.path,
            "status": c.summary.status,
            "checked_at": when(c.summary.checked_at),
            "sent_at": when(c.summary.sent_at),
            "delay_seconds": _seconds(c.summary.delay),
            "last_success_at": when(c.summary.last_success_at),
            "failing_since": when(c.failing_since),
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
                f"{delay} (checked {when(s.checked_at)})",
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
