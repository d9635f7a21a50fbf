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

from mxflip.config import Config
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
    probes: Mapping[str, DomainReadiness] | None = None,
) -> dict[str, Any]:
    """The ``mxflip status --json`` document (with ``probe``, the live set's readiness,
    per domain when ``--probe`` was given)."""
    domains = []
    for s in statuses:
        d = s.domain
        extra: dict[str, Any] = {}
        if probes is not None:
            probe = probes.get(d.name)
            extra["probe"] = readiness_json(probe) if probe is not None else None
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
                **extra,
            }
        )
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
