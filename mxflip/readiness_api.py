"""The seam between the engine and the SMTP readiness checks.

The engine needs one thing: for each domain, is the MX set it is about to publish ready to
receive mail? :data:`mxflip.plan.Readiness` is that callable. :func:`default_readiness`
builds it from ``mxflip.readiness.check_domains`` when that module is installed; when it is
not, it returns ``None`` and every switch is refused unless ``--skip-readiness --reason``
is given: an unknown verdict is never taken for "ready".
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from mxflip.config import Config, DomainConfig
from mxflip.plan import Readiness, ReadinessVerdict
from mxflip.records import RRset


def default_readiness(config: Config) -> Readiness | None:
    """The installed readiness checks, adapted to the engine; ``None`` when absent."""
    try:
        module: Any = importlib.import_module("mxflip.readiness")
    except ImportError:
        return None
    check_domains = getattr(module, "check_domains", None)
    if check_domains is None:
        return None

    def readiness(
        domains: Sequence[DomainConfig], targets: Mapping[str, RRset]
    ) -> dict[str, ReadinessVerdict]:
        # "live" with live_records = the target sets probes exactly the hosts a switch
        # would publish (drained and restored sets are not a configured profile).
        results = check_domains(config, list(domains), "live", live_records=dict(targets))
        out: dict[str, ReadinessVerdict] = {}
        for r in results:
            # Most findings are on a host or an address; say where each was found.
            located = getattr(r, "located_findings", None)
            pairs = located() if located else [("", f) for f in getattr(r, "findings", ())]
            reasons = tuple(
                f"{where}: {f.message}" if where else str(f.message)
                for where, f in pairs
                if str(f.severity) != "info"
            )
            out[str(r.domain)] = ReadinessVerdict(str(r.verdict), reasons)
        return out

    return readiness
