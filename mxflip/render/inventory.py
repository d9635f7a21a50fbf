"""``mxflip providers`` and ``mxflip validate``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from mxflip.config import Config
from mxflip.provider import InstalledProvider
from mxflip.records import display_name
from mxflip.render.common import JSON_VERSION


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
