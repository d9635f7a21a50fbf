"""What nameservers and resolvers answer for a domain's MX RRset (asyncio, dnspython).

Authoritative servers are asked without recursion: their answer is the zone's truth.
Resolvers are asked with recursion: their TTL is what remains in their cache, which says
until when they may go on handing out an old set.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from mxflip.hostport import HostPort
from mxflip.logs import timed
from mxflip.records import MX, RRset

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerAnswer:
    """One server's answer for one name. ``error`` is set when it gave none we can use."""

    server: str
    rrset: RRset | None = None
    error: str | None = None
    #: The server's address when ``server`` is a host name.
    address: str | None = None


async def _addresses(server: HostPort) -> list[str]:
    if server.is_ip:
        return [server.host]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)
    return sorted({str(info[4][0]) for info in infos})


async def query_mx(
    server: HostPort, name: str, *, recursive: bool, timeout: float
) -> list[ServerAnswer]:
    """Ask ``server`` (every address of it, when it is a host name) for ``name``'s MX RRset."""
    label = str(server)
    try:
        addresses = await asyncio.wait_for(_addresses(server), timeout)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        return [ServerAnswer(label, error=f"cannot resolve {server.host}: {reason}")]
    answers = await asyncio.gather(
        *(_query_one(label, addr, server, name, recursive, timeout) for addr in addresses)
    )
    return list(answers)


async def _query_one(
    label: str, address: str, server: HostPort, name: str, recursive: bool, timeout: float
) -> ServerAnswer:
    where = f"{address}#{server.port}"
    with timed(_log, "dns query", server=where, qname=name, rdtype="MX", rd=recursive) as fields:
        answer = await _ask(label, address, server, name, recursive, timeout, fields)
        if answer.error is not None:
            fields["error"] = answer.error
        return answer


async def _ask(
    label: str,
    address: str,
    server: HostPort,
    name: str,
    recursive: bool,
    timeout: float,
    fields: dict[str, object],
) -> ServerAnswer:
    shown = None if server.is_ip else address
    query = dns.message.make_query(name, dns.rdatatype.MX)
    if not recursive:
        query.flags &= ~dns.flags.RD
    try:
        response, _ = await dns.asyncquery.udp_with_fallback(
            query, address, timeout=timeout, port=server.port
        )
    except dns.exception.Timeout:
        return ServerAnswer(label, error=f"no answer within {timeout:g} s", address=shown)
    except OSError as exc:
        return ServerAnswer(label, error=exc.strerror or str(exc), address=shown)
    except dns.exception.DNSException as exc:
        return ServerAnswer(label, error=f"bad answer: {exc}", address=shown)
    rcode = response.rcode()
    fields["rcode"] = dns.rcode.to_text(rcode)
    if rcode == dns.rcode.NXDOMAIN:
        return ServerAnswer(label, None, address=shown)
    if rcode != dns.rcode.NOERROR:
        return ServerAnswer(label, error=f"answered {dns.rcode.to_text(rcode)}", address=shown)
    if not recursive and not response.flags & dns.flags.AA:
        return ServerAnswer(label, error="not authoritative for this name", address=shown)
    owner = dns.name.from_text(name)
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.MX and rrset.name == owner:
            records = frozenset(MX(r.preference, r.exchange.to_text()) for r in rrset)
            return ServerAnswer(label, RRset(name, rrset.ttl, records), address=shown)
    return ServerAnswer(label, None, address=shown)


async def query_all(
    servers: Sequence[HostPort], name: str, *, recursive: bool, timeout: float
) -> list[ServerAnswer]:
    """Ask every server concurrently; the result keeps the servers' order."""
    nested = await asyncio.gather(
        *(query_mx(s, name, recursive=recursive, timeout=timeout) for s in servers)
    )
    return [answer for answers in nested for answer in answers]
