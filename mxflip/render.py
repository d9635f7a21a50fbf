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
from mxflip.config import Config
from mxflip.duration import format_duration
from mxflip.observe import DomainStatus, ServerView
from mxflip.probe import AddressResult, DomainReadiness, Finding, Verdict
from mxflip.provider import InstalledProvider
from mxflip.records import RRset, display_name

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


def status_json(
    statuses: Sequence[DomainStatus],
    exit_code: int,
    canary: Mapping[str, Sequence[CanaryStatus]] | None = None,
    *,
    probes: Mapping[str, DomainReadiness] | None = None,
) -> dict[str, Any]:
    """The ``mxflip status --json`` document (with ``probe``, the live set's readiness,
    per domain when ``--probe`` was given)."""
    domains: list[dict[str, Any]] = []
    for s in statuses:
        d = s.domain
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
                "findings": list(s.findings),
            }
        )
        if canary is not None:
            domains[-1]["canary"] = canary_status_json(canary.get(d.display, ()))
        if probes is not None:
            probe = probes.get(d.name)
            domains[-1]["probe"] = readiness_json(probe) if probe is not None else None
    return {
        "version": JSON_VERSION,
        "command": "status",
        "exit_code": exit_code,
        "domains": domains,
    }


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


def render_status(
    console: Console,
    statuses: Sequence[DomainStatus],
    canary: Mapping[str, Sequence[CanaryStatus]] | None = None,
    *,
    probes: Mapping[str, DomainReadiness] | None = None,
) -> None:
    table = Table(title=None, show_lines=True)
    table.add_column("Domain", no_wrap=True)
    table.add_column("Live", no_wrap=True)
    table.add_column("Provider records", no_wrap=True)
    table.add_column("Nameservers")
    has_resolvers = any(s.resolvers for s in statuses)
    if has_resolvers:
        table.add_column("Resolvers")
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
            row.append(_health_cell(probes.get(s.domain.name)))
        table.add_row(*row)
    console.print(table)
    for s in statuses:
        for finding in s.findings:
            console.print(f"{s.domain.display}: {finding}", markup=False, soft_wrap=True)
        if canary:
            render_canary_status(console, s.domain.display, canary.get(s.domain.display, ()))
        probe = probes.get(s.domain.name) if probes is not None else None
        for line in _finding_lines(probe) if probe is not None else []:
            console.print(line, markup=False, soft_wrap=True)


def _health_cell(probe: DomainReadiness | None) -> Text:
    if probe is None:
        return Text("not probed")
    text = _verdict_text(probe.verdict)
    for h in probe.hosts:
        text.append(f"\n{display_name(h.host)}: ")
        text.append_text(_verdict_text(h.verdict))
    return text


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


def _when(t: float | None) -> str | None:
    """RFC 3339 UTC, or None."""
    import time

    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


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


# ------------------------------------------------------------------------- check

_VERDICT_STYLE = {"ready": "green", "degraded": "yellow", "not-ready": "red"}


def _findings_json(findings: Iterable[Finding]) -> list[dict[str, str]]:
    return [{"severity": f.severity.value, "code": f.code, "message": f.message} for f in findings]


def _address_json(a: AddressResult) -> dict[str, Any]:
    tls = None
    if a.tls is not None:
        tls = {
            "version": a.tls.version,
            "cipher": a.tls.cipher,
            "verified": a.tls.verified,
            "verify_error": a.tls.verify_error,
            "days_left": a.tls_days_left,
            "fingerprint_sha256": a.tls.fingerprint,
        }
    return {
        "address": a.address,
        "verdict": a.verdict.value,
        "steps": [
            {"name": s.name, "code": s.code, "ms": s.ms, "ok": s.ok, "detail": s.detail}
            for s in a.steps
        ],
        "findings": _findings_json(a.findings),
        "extensions": sorted(a.extensions),
        "tls": tls,
    }


def readiness_json(r: DomainReadiness) -> dict[str, Any]:
    """One domain's readiness: the shape ``check --json`` promises per domain."""
    return {
        "domain": display_name(r.domain),
        "profile": r.profile,
        "verdict": r.verdict.value,
        "mta_sts_mode": r.mta_sts_mode,
        "findings": _findings_json(r.findings),
        "hosts": [
            {
                "host": display_name(h.host),
                "preference": h.preference,
                "verdict": h.verdict.value,
                "findings": _findings_json(h.findings),
                "addresses": [_address_json(a) for a in h.addresses],
            }
            for h in r.hosts
        ],
    }


def check_json(results: Sequence[DomainReadiness], profile: str, exit_code: int) -> dict[str, Any]:
    """The ``mxflip check --json`` document."""
    return {
        "version": JSON_VERSION,
        "command": "check",
        "profile": profile,
        "exit_code": exit_code,
        "verdict": Verdict.worst(r.verdict for r in results).value,
        "domains": [readiness_json(r) for r in results],
    }


def _verdict_text(verdict: Verdict) -> Text:
    return Text(verdict.value, style=_VERDICT_STYLE[verdict.value])


def _steps_text(a: AddressResult) -> str:
    """``banner 220 · ehlo 250 · tls TLSv1.3 · rcpt 250 · 812 ms`` — the codes that matter."""
    parts = []
    for s in a.steps:
        if s.name in ("banner", "ehlo", "rcpt", "quit") or s.name == "tls" or not s.ok:
            value = s.detail.split()[0] if s.name == "tls" and s.ok and s.detail else s.code
            parts.append(f"{s.name} {value if value is not None else '✗'}")
    total = sum(s.ms for s in a.steps)
    return " · ".join([*parts, f"{total} ms"])


def _finding_lines(r: DomainReadiness) -> list[str]:
    """``example.test mx.example.test 192.0.2.1: fail tls-untrusted: …``, deepest last."""
    out = [f"{r.display}: {f.severity.value} {f.code}: {f.message}" for f in r.findings]
    for h in r.hosts:
        host = display_name(h.host)
        out += [f"{r.display} {host}: {f.severity.value} {f.code}: {f.message}" for f in h.findings]
        for a in h.addresses:
            out += [
                f"{r.display} {host} {a.address}: {f.severity.value} {f.code}: {f.message}"
                for f in a.findings
            ]
    return out


def render_check(console: Console, results: Sequence[DomainReadiness], profile: str) -> None:
    table = Table(show_lines=True)
    for col in ("Domain", "Host", "Address", "Verdict", "Handshake"):
        table.add_column(col, no_wrap=col != "Handshake")
    for r in results:
        if not r.hosts:
            table.add_row(r.display, "(no hosts)", "", _verdict_text(r.verdict), "")
        for h in r.hosts:
            rows = h.addresses or (None,)
            for a in rows:
                table.add_row(
                    r.display,
                    display_name(h.host),
                    a.address if a else "(none)",
                    _verdict_text(a.verdict if a else h.verdict),
                    _steps_text(a) if a else "",
                )
    console.print(table)
    for r in results:
        for line in _finding_lines(r):
            console.print(line, markup=False, soft_wrap=True)
    worst = Verdict.worst(r.verdict for r in results)
    n = len(results)
    console.print(
        f"{profile} set: {worst.value} ({n} domain{'s' if n != 1 else ''}: "
        + ", ".join(f"{sum(r.verdict is v for r in results)} {v.value}" for v in Verdict)
        + ")",
        markup=False,
        soft_wrap=True,
    )
