"""Which MX target hosts are CNAMEs (aliases): an MX must name a host, not an alias
(RFC 2181 section 10.3), and many senders refuse or mis-handle one.

Only hosts inside the domain's own zone are checked here, at that zone's verification
nameservers (they are authoritative, so no resolver is involved); hosts elsewhere are
resolved by the SMTP readiness checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from mxflip.hostport import HostPort
from mxflip.net.dns import DNSClient
from mxflip.net.dnswire import CNAME, Question, to_text


async def _cname(client: DNSClient, server: HostPort, host: str) -> str | None:
    if not server.is_ip:
        return None  # verification servers given by name: leave it to the readiness checks
    question = Question.make(host, "CNAME", recursive=False)
    reply = await client.ask_wire(question, server.host, server.port, strict=True)
    if reply.response is None:
        return None  # unreachable servers are reported by verification, not here
    for record in reply.response.answer:
        if record.rdtype == CNAME and record.owner == question.labels:
            return to_text(record.target)
    return None


async def _find(checks: Sequence[tuple[str, Sequence[HostPort]]], timeout: float) -> dict[str, str]:
    found: dict[str, str] = {}
    client = DNSClient(timeout)

    async def one(host: str, servers: Sequence[HostPort]) -> None:
        for server in servers:
            target = await _cname(client, server, host)
            if target is not None:
                found[host] = target
                return

    await asyncio.gather(*(one(h, s) for h, s in checks))
    return found


async def find_cname_targets(
    checks: Iterable[tuple[str, Sequence[HostPort]]], *, timeout: float = 2.0
) -> dict[str, str]:
    """Host → CNAME target for every ``(host, servers)`` whose host is an alias."""
    unique = {host: servers for host, servers in checks}
    if not unique:
        return {}
    return await _find(list(unique.items()), timeout)
