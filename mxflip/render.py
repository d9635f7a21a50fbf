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


def status_json(statuses: Sequence[DomainStatus], exit_code: int) -> dict[str, Any]:
    """The ``mxflip status --json`` document."""
    domains = []
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


def render_status(console: Console, statuses: Sequence[DomainStatus]) -> None:
    table = Table(title=None, show_lines=True)
    table.add_column("Domain", no_wrap=True)
    table.add_column("Live", no_wrap=True)
    table.add_column("Provider records", no_wrap=True)
    table.add_column("Nameservers")
    has_resolvers = any(s.resolvers for s in statuses)
    if has_resolvers:
        table.add_column("Resolvers")
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
        table.add_row(*row)
    console.print(table)
    for s in statuses:
        for finding in s.findings:
            console.print(f"{s.domain.display}: {finding}", markup=False, soft_wrap=True)


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
