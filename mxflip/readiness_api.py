"""The seam between the engine and the SMTP readiness checks.

The engine needs one thing: for each domain, is the MX set it is about to publish ready to
receive mail? :data:`mxflip.plan.Readiness` is that callable, and
:func:`default_readiness` builds it from :func:`mxflip.readiness.check_domains` (imported
when first called: ``mxflip.readiness`` loads the SMTP and TLS machinery, which commands
that never switch do not need). An engine built without one refuses every switch unless
``--skip-readiness --reason`` is given: an unknown verdict is never taken for "ready".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mxflip.config import Config, DomainConfig
from mxflip.findings import Severity
from mxflip.plan import Readiness, ReadinessVerdict
from mxflip.records import RRset


def default_readiness(config: Config) -> Readiness:
    """The SMTP readiness checks of ``config``, adapted to the engine."""

    def readiness(
        domains: Sequence[DomainConfig], targets: Mapping[str, RRset]
    ) -> dict[str, ReadinessVerdict]:
        from mxflip.readiness import check_domains

        # "live" with live_records = the target sets probes exactly the hosts a switch
        # would publish (drained and restored sets are not a configured profile).
        results = check_domains(config, list(domains), "live", live_records=dict(targets))
        out: dict[str, ReadinessVerdict] = {}
        for r in results:
            # Most findings are on a host or an address; say where each was found.
            reasons = tuple(
                f"{where}: {f.message}" if where else f.message
                for where, f in r.located_findings()
                if f.severity is not Severity.INFO
            )
            out[r.domain] = ReadinessVerdict(str(r.verdict), reasons)
        return out

    return readiness
