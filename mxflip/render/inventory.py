"""``mxflip validate`` (``mxflip providers`` is in render.providers)."""

from __future__ import annotations

from typing import Any, TextIO

from mxflip.config import Config
from mxflip.records import display_name
from mxflip.render.common import JSON_VERSION


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


def render_config(out: TextIO, config: Config) -> None:
    # One plain line: `mxflip validate` should not pay for rich.
    n_domains, n_providers = len(config.domains), len(config.providers)
    out.write(
        f"{config.path}: OK — {n_domains} domain{'s' if n_domains != 1 else ''}, "
        f"{n_providers} provider{'s' if n_providers != 1 else ''}\n"
    )
