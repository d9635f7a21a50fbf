"""What nameservers and resolvers answer for a domain's MX RRset (asyncio, in the small
wire format of :mod:`mxflip.net.dnswire`: dnspython's message objects were half of a
5,000-domain status's CPU).

Authoritative servers are asked without recursion: their answer is the zone's truth.
Resolvers are asked with recursion: their TTL is what remains in their cache, which says
until when they may go on handing out an old set.

Every question goes through one :class:`~mxflip.net.dns.DNSClient` per batch, which bounds
the questions in flight, retries a timed-out one and tells a slow server from an
unreachable one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import dns.rcode

from mxflip.hostport import HostPort
from mxflip.net.dns import DNSClient, Limits
from mxflip.net.dnswire import Labels, Question, to_text
from mxflip.records import MX, RRset

_NOERROR, _NXDOMAIN = 0, 3


@dataclass(frozen=True)
class ServerAnswer:
    """One server's answer for one name. ``error`` is set when it gave none we can use."""

    server: str
    rrset: RRset | None = None
    error: str | None = None
    #: The server's address when ``server`` is a host name.
    address: str | None = None
    #: How many tries the question took (more than one: the server is slow or lossy).
    tries: int = 1
    #: No try was answered: the server is unreachable (not merely slow or wrong).
    unreachable: bool = False

    @property
    def slow(self) -> bool:
        """Answered, but only after a timed-out try was repeated."""
        return self.error is None and self.tries > 1


async def query_mx(
    client: DNSClient, server: HostPort, name: str, *, recursive: bool
) -> list[ServerAnswer]:
    """Ask ``server`` (every address of it, when it is a host name) for ``name``'s MX RRset."""
    label = str(server)
    try:
        addresses = await client.addresses(server)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        return [
            ServerAnswer(label, error=f"cannot resolve {server.host}: {reason}", unreachable=True)
        ]
    answers = await asyncio.gather(
        *(_query_one(client, label, addr, server, name, recursive) for addr in addresses)
    )
    return list(answers)


async def _query_one(
    client: DNSClient, label: str, address: str, server: HostPort, name: str, recursive: bool
) -> ServerAnswer:
    shown = None if server.is_ip else address
    question = Question.make(name, "MX", recursive=recursive)
    reply = await client.ask_wire(question, address, server.port, strict=True)
    tries = reply.tries
    response = reply.response
    if response is None:
        return ServerAnswer(
            label, error=reply.error, address=shown, tries=tries, unreachable=reply.unreachable
        )
    rcode = response.rcode
    if rcode == _NXDOMAIN:
        return ServerAnswer(label, None, address=shown, tries=tries)
    if rcode != _NOERROR:
        return ServerAnswer(
            label,
            error=f"answered {dns.rcode.to_text(dns.rcode.Rcode.make(rcode))}",
            address=shown,
            tries=tries,
        )
    if not recursive and not response.authoritative:
        return ServerAnswer(
            label, error="not authoritative for this name", address=shown, tries=tries
        )
    found = response.mx(question)
    if found is None:
        return ServerAnswer(label, None, address=shown, tries=tries)
    ttl, records = found
    rrset = RRset(name, ttl, frozenset(_mx(pref, exchange) for pref, exchange in records))
    return ServerAnswer(label, rrset, address=shown, tries=tries)


@functools.lru_cache(maxsize=4096)
def _mx(preference: int, exchange: Labels) -> MX:
    """One MX value per (preference, host): thousands of domains share a few hosts, and
    MX normalises its host name (immutable, so shared safely)."""
    return MX(preference, to_text(exchange))


async def query_all(
    client: DNSClient, servers: Sequence[HostPort], name: str, *, recursive: bool
) -> list[ServerAnswer]:
    """Ask every server concurrently (within the client's limits); the result keeps the
    servers' order."""
    nested = await asyncio.gather(
        *(query_mx(client, s, name, recursive=recursive) for s in servers)
    )
    return [answer for answers in nested for answer in answers]


async def query_batch(
    batch: Sequence[tuple[Sequence[HostPort], str]],
    *,
    recursive: bool,
    timeout: float,
    limits: Limits | None = None,
) -> list[list[ServerAnswer]]:
    """Ask every (servers, name) pair through one client; one list of answers per pair."""
    client = DNSClient(timeout, limits)
    return list(
        await asyncio.gather(
            *(query_all(client, servers, name, recursive=recursive) for servers, name in batch)
        )
    )
