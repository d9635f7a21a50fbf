"""Which MX target hosts are aliases (CNAMEs): an MX must name a host, not an alias
(RFC 2181 section 10.3), and many senders refuse or mis-handle one.

Only hosts inside the domain's own zone are checked here, at that zone's verification
nameservers (they are authoritative, so no resolver is involved); hosts elsewhere are
resolved by the SMTP readiness checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from mxflip.hostport import HostPort
from mxflip.logs import timed

_log = logging.getLogger(__name__)


async def _cname(server: HostPort, host: str, timeout: float) -> str | None:
    if not server.is_ip:
        return None  # verification servers given by name: leave it to the readiness checks
    with timed(_log, "dns query", server=str(server), qname=host, rdtype="CNAME") as fields:
        query = dns.message.make_query(host, dns.rdatatype.CNAME)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, server.host, timeout=timeout, port=server.port
            )
        except (dns.exception.DNSException, OSError) as exc:
            fields["error"] = str(exc) or type(exc).__name__
            return None  # unreachable servers are reported by verification, not here
        fields["rcode"] = dns.rcode.to_text(response.rcode())
        owner = dns.name.from_text(host)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == owner:
                fields["cname"] = target = str(next(iter(rrset)).target)
                return target
        return None


async def _find(checks: Sequence[tuple[str, Sequence[HostPort]]], timeout: float) -> dict[str, str]:
    found: dict[str, str] = {}

    async def one(host: str, servers: Sequence[HostPort]) -> None:
        for server in servers:
            target = await _cname(server, host, timeout)
            if target is not None:
                found[host] = target
                return

    await asyncio.gather(*(one(h, s) for h, s in checks))
    return found


def find_aliases(
    checks: Iterable[tuple[str, Sequence[HostPort]]], *, timeout: float = 2.0
) -> dict[str, str]:
    """Host → CNAME target for every ``(host, servers)`` whose host is an alias."""
    unique = {host: servers for host, servers in checks}
    if not unique:
        return {}
    return asyncio.run(_find(list(unique.items()), timeout))
