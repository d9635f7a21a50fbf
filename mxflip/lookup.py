"""The DNS questions readiness asks (MX, A/AAAA, TLSA, TXT), asynchronously.

One :class:`Lookup` asks the configured resolvers (``[probe] resolvers``) or the system's.
Absent data is an empty answer; only resolvers that cannot answer raise
:class:`~mxflip.errors.DNSQueryError`.

Queries share one UDP socket per resolver, matched to their answers by ID and question.
dnspython's resolver opens a socket per query; for a check of hundreds of domains that
cost more CPU than every SMTP handshake together (``bench/bench_check.py``). dnspython
still builds and parses every message, and carries truncated answers over TCP.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.TLSA import TLSA

from mxflip.errors import DNSQueryError
from mxflip.hostport import HostPort
from mxflip.records import MX, RRset, normalize_name

#: One try at one resolver waits at most this long before the next try.
_ATTEMPT_TIMEOUT = 2.0


@dataclass(frozen=True)
class HostAddresses:
    """A host's A and AAAA addresses, and the target if the name is a CNAME."""

    host: str
    addresses: tuple[str, ...]
    cname: str | None = None


@dataclass(frozen=True)
class TLSARecord:
    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


class _Mux(asyncio.DatagramProtocol):
    """One UDP socket carrying many queries to one resolver."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[dns.message.Message, asyncio.Future[dns.message.Message]]]
        self.pending = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        entry = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if entry is None:
            return  # late, duplicate or stray: its asker has given up or never existed
        query, future = entry
        try:
            response = dns.message.from_wire(data, ignore_trailing=True)
        except dns.exception.DNSException:
            return
        # the ID alone is 16 bits; the question must match too
        if query.is_response(response) and not future.done():
            future.set_result(response)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors cannot be tied to one query; the asker's timeout covers them

    def connection_lost(self, exc: Exception | None) -> None:
        for _, future in self.pending.values():
            if not future.done():
                future.set_exception(OSError("the DNS socket was closed"))


class Lookup:
    """Async DNS lookups through one resolver configuration."""

    def __init__(
        self, resolvers: Sequence[HostPort] = (), *, timeout: float = 5.0, in_flight: int = 64
    ) -> None:
        if resolvers:
            self.nameservers = tuple(resolvers)
            self.where = ", ".join(str(r) for r in resolvers)
        else:
            try:
                system = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise DNSQueryError(
                    "no system resolver is configured",
                    hint='set [probe] resolvers = ["IP[:PORT]"] in the config',
                ) from None
            self.nameservers = tuple(HostPort(str(ns), 53) for ns in system.nameservers)
            self.where = "the system resolver"
        self.lifetime = timeout
        self.in_flight = in_flight
        # Sockets and the semaphore belong to one event loop; made on first use in it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._muxes: dict[HostPort, _Mux] = {}
        self._limit: asyncio.Semaphore | None = None

    def _bind(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._limit is None:
            self._loop, self._muxes = loop, {}
            # Thousands of UDP queries at once overflow socket buffers and come back only
            # after a retry timeout; a bounded number in flight is faster overall.
            self._limit = asyncio.Semaphore(self.in_flight)
        return self._limit

    async def _mux(self, server: HostPort) -> _Mux:
        mux = self._muxes.get(server)
        if mux is None or mux.transport is None or mux.transport.is_closing():
            loop = asyncio.get_running_loop()
            _, mux = await loop.create_datagram_endpoint(
                _Mux, remote_addr=None, local_addr=("::" if ":" in server.host else "0.0.0.0", 0)
            )
            self._muxes[server] = mux
        return mux

    def close(self) -> None:
        """Close the sockets (a later query opens new ones)."""
        for mux in self._muxes.values():
            if mux.transport is not None:
                mux.transport.close()
        self._muxes = {}

    def _error(self, name: str, rdtype: str, problems: Sequence[str]) -> DNSQueryError:
        name = name.rstrip(".")
        if problems and all(p.endswith("timed out") for p in problems):
            return DNSQueryError(
                f"{rdtype} lookup of {name} timed out at {self.where}",
                hint="check that the resolvers in [probe] resolvers are reachable",
            )
        return DNSQueryError(
            f"{rdtype} lookup of {name} failed at {self.where}: {'; '.join(problems)}",
            hint="check [probe] resolvers in the config",
        )

    async def _exchange(self, name: str, rdtype: str) -> dns.message.Message:
        """One question, answered NOERROR or NXDOMAIN by some resolver within the
        lifetime. A resolver that answers otherwise (SERVFAIL, REFUSED, a broken
        message) is not asked again for this question, as dnspython's resolver does;
        silent ones are retried until the lifetime ends."""
        async with self._bind():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.lifetime
            query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
            servers = list(self.nameservers)
            problems: dict[HostPort, str] = {}
            while servers and loop.time() < deadline:
                for server in list(servers):
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        response = await self._udp(server, query, min(_ATTEMPT_TIMEOUT, remaining))
                        if response.flags & dns.flags.TC:
                            response = await dns.asyncquery.tcp(
                                query, server.host, timeout=remaining, port=server.port
                            )
                    except (TimeoutError, dns.exception.Timeout):
                        problems[server] = f"{server}: timed out"
                        continue
                    except (OSError, dns.exception.DNSException) as exc:
                        problems[server] = f"{server}: {exc}"
                        servers.remove(server)
                        continue
                    rcode = response.rcode()
                    if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                        return response
                    problems[server] = f"{server}: {dns.rcode.to_text(rcode)}"
                    servers.remove(server)
            raise self._error(name, rdtype, list(problems.values()))

    async def _udp(
        self, server: HostPort, query: dns.message.QueryMessage, timeout: float
    ) -> dns.message.Message:
        mux = await self._mux(server)
        assert mux.transport is not None
        qid = random.randrange(65536)
        while qid in mux.pending:
            qid = random.randrange(65536)
        query.id = qid
        future: asyncio.Future[dns.message.Message] = asyncio.get_running_loop().create_future()
        mux.pending[qid] = (query, future)
        try:
            mux.transport.sendto(query.to_wire(), (server.host, server.port))
            async with asyncio.timeout(timeout):
                return await future
        finally:
            mux.pending.pop(qid, None)

    async def _answer(self, name: str, rdtype: str) -> dns.rrset.RRset | None:
        """The RRset answering ``name``/``rdtype`` (following CNAMEs in the answer), or
        None when the name or the data does not exist."""
        response = await self._exchange(name, rdtype)
        if response.rcode() == dns.rcode.NXDOMAIN:
            return None
        assert isinstance(response, dns.message.QueryMessage)
        return response.resolve_chaining().answer

    async def addresses(self, host: str) -> HostAddresses:
        """A and AAAA of ``host`` (absolute name); a CNAME is reported, not followed.

        The A answer carries any CNAME chain (its canonical name differs from the query),
        so no separate CNAME query is needed; A and AAAA are asked at once."""
        name = dns.name.from_text(host)
        a, aaaa = await asyncio.gather(self._exchange(host, "A"), self._exchange(host, "AAAA"))
        assert isinstance(a, dns.message.QueryMessage)
        chain = a.resolve_chaining()
        if chain.canonical_name != name:
            return HostAddresses(host, (), cname=chain.canonical_name.to_text().lower())
        found: list[str] = []
        for response in (a, aaaa):
            assert isinstance(response, dns.message.QueryMessage)
            if response.rcode() != dns.rcode.NOERROR:
                continue
            rrset = response.resolve_chaining().answer
            if rrset is not None:
                found.extend(sorted(str(r.address) for r in rrset))
        return HostAddresses(host, tuple(found))

    async def mx(self, domain: str) -> RRset | None:
        """The MX RRset of ``domain`` as the resolver sees it (None when there is none).
        A null MX (``0 .``) yields a set without hosts."""
        rrset = await self._answer(domain, "MX")
        if rrset is None:
            return None
        records = []
        for r in rrset:
            host = str(r.exchange).lower()
            if host == ".":
                continue
            records.append(MX(int(r.preference), normalize_name(host)))
        return RRset(domain, rrset.ttl, frozenset(records))

    async def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name`` as one string (its character-strings joined)."""
        rrset = await self._answer(name, "TXT")
        if rrset is None:
            return []
        return [b"".join(r.strings).decode("utf-8", "replace") for r in rrset]

    async def tlsa(self, host: str, port: int = 25) -> list[TLSARecord]:
        """TLSA records at ``_PORT._tcp.HOST``."""
        rrset = await self._answer(f"_{port}._tcp.{host}", "TLSA")
        if rrset is None:
            return []
        out = []
        for r in rrset:
            assert isinstance(r, TLSA)
            out.append(TLSARecord(r.usage, r.selector, r.mtype, bytes(r.cert)))
        return out
