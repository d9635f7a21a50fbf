"""The DNS questions readiness asks (MX, A/AAAA, TLSA, TXT), asynchronously.

One :class:`Lookup` asks the configured resolvers (``[probe] resolvers``) or the system's.
Absent data is an empty answer; only resolvers that cannot answer raise
:class:`~mxflip.errors.DNSQueryError`.

Queries share one UDP socket per resolver, matched to their answers by ID and question;
truncated answers are asked again over TCP. dnspython's resolver opens a socket per query,
and its message objects cost about 0.8 ms of CPU per lookup; for a check of hundreds of
domains (thousands of lookups) either cost more CPU than every SMTP handshake together
(``bench/bench_check.py``). So the messages are written and read by the small
:mod:`mxflip._dnswire`; dnspython still validates names and reads the system's resolvers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_ntop
from typing import cast

import dns.rcode
import dns.resolver

from mxflip._dnswire import Labels, Question, Record, Response, WireError, parse, to_text
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


@dataclass(frozen=True)
class TLSAAnswer:
    """The TLSA records of one host and whether DANE may rely on them: only an answer a
    validating resolver marked authenticated (AD) counts (RFC 7672 §2.2); ``why_not``
    says why an answer with records does not."""

    records: tuple[TLSARecord, ...]
    authenticated: bool
    why_not: str = ""


class _Mux(asyncio.DatagramProtocol):
    """One UDP socket carrying many queries to one resolver."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[Question, asyncio.Future[Response]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        entry = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if entry is None:
            return  # late, duplicate or stray: its asker has given up or never existed
        question, future = entry
        try:
            response = parse(data)
        except WireError:
            return
        # the ID alone is 16 bits; the question must match too
        if response.answers(question) and not future.done():
            future.set_result(response)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors cannot be tied to one query; the asker's timeout covers them

    def connection_lost(self, exc: Exception | None) -> None:
        for _, future in self.pending.values():
            if not future.done():
                future.set_exception(OSError("the DNS socket was closed"))


def _expire(future: asyncio.Future[Response]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _Limiter:
    """At most ``size`` queries in flight. Waiting urgent queries (a host's addresses:
    its handshakes wait on them) go before the others (TLSA, MTA-STS, MX sets that are
    only judged), so handshakes start early and the rest is asked while they run."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.queues: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @contextlib.asynccontextmanager
    async def slot(self, urgent: bool) -> AsyncIterator[None]:
        if self.free > 0:
            self.free -= 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self.queues[0 if urgent else 1].append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # handed a slot just as it was cancelled: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in self.queues:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():  # a cancelled waiter is dropped here
                    waiter.set_result(None)  # the slot passes straight to it
                    return
        self.free += 1


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
        # The AD bit means something only on a path an attacker cannot touch: resolvers the
        # config names, or a system resolver on this machine (glibc's trust-ad rule).
        self.trust_ad = bool(resolvers) or all(_loopback(ns.host) for ns in self.nameservers)
        self.lifetime = timeout
        self.in_flight = in_flight
        # Sockets and the semaphore belong to one event loop; made on first use in it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._muxes: dict[HostPort, _Mux] = {}
        self._limit: _Limiter | None = None

    def _bind(self) -> _Limiter:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._limit is None:
            self._loop, self._muxes = loop, {}
            # Thousands of UDP queries at once overflow socket buffers and come back only
            # after a retry timeout; a bounded number in flight is faster overall.
            self._limit = _Limiter(self.in_flight)
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

    async def _exchange(
        self, name: str, rdtype: str, urgent: bool = False
    ) -> tuple[Question, Response]:
        """One question, answered NOERROR or NXDOMAIN by some resolver within the
        lifetime. A resolver that answers otherwise (SERVFAIL, REFUSED, a broken
        message) is not asked again for this question, as dnspython's resolver does;
        silent ones are retried until the lifetime ends."""
        question = Question.make(name, rdtype)
        async with self._bind().slot(urgent):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.lifetime
            servers = list(self.nameservers)
            problems: dict[HostPort, str] = {}
            while servers and loop.time() < deadline:
                for server in list(servers):
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        response = await self._udp(
                            server, question, min(_ATTEMPT_TIMEOUT, remaining)
                        )
                        if response.truncated:
                            response = await self._tcp(server, question, deadline - loop.time())
                    except TimeoutError:
                        problems[server] = f"{server}: timed out"
                        continue
                    except (OSError, WireError) as exc:
                        problems[server] = f"{server}: {exc}"
                        servers.remove(server)
                        continue
                    if response.rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                        return question, response
                    problems[server] = (
                        f"{server}: {dns.rcode.to_text(dns.rcode.Rcode.make(response.rcode))}"
                    )
                    servers.remove(server)
            raise self._error(name, rdtype, list(problems.values()))

    async def _udp(self, server: HostPort, question: Question, timeout: float) -> Response:
        mux = await self._mux(server)
        assert mux.transport is not None
        qid = random.randrange(65536)
        while qid in mux.pending:
            qid = random.randrange(65536)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        mux.pending[qid] = (question, future)
        # The timeout fails the future itself: one timer, where asyncio.timeout() also
        # cancels and uncancels the task (a tenth of a lookup's CPU, thousands a check).
        expiry = loop.call_later(timeout, _expire, future)
        try:
            mux.transport.sendto(question.to_wire(qid), (server.host, server.port))
            return await future
        finally:
            expiry.cancel()
            mux.pending.pop(qid, None)

    async def _tcp(self, server: HostPort, question: Question, timeout: float) -> Response:
        """Ask again over TCP (the UDP answer was truncated); one connection per question."""
        qid = random.randrange(65536)
        query = question.to_wire(qid)
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                writer.write(len(query).to_bytes(2, "big") + query)
                await writer.drain()
                size = int.from_bytes(await reader.readexactly(2), "big")
                response = parse(await reader.readexactly(size))
            except asyncio.IncompleteReadError:
                raise OSError("the server closed the TCP connection mid-answer") from None
            finally:
                writer.close()
        if response.id != qid or not response.answers(question):
            raise WireError("the TCP answer does not match the question")
        return response

    def _chain(self, question: Question, response: Response) -> tuple[Labels, list[Record]]:
        try:
            return response.chain(question)
        except WireError as exc:
            raise self._error(question.text, question.type_text, [str(exc)]) from None

    async def _answer(self, name: str, rdtype: str, urgent: bool = False) -> list[Record]:
        """The records answering ``name``/``rdtype`` (following CNAMEs in the answer);
        empty when the name or the data does not exist."""
        question, response = await self._exchange(name, rdtype, urgent)
        if response.rcode == dns.rcode.NXDOMAIN:
            return []
        return self._chain(question, response)[1]

    async def addresses(self, host: str) -> HostAddresses:
        """A and AAAA of ``host`` (absolute name); a CNAME is reported, not followed.

        The A answer carries any CNAME chain (its canonical name differs from the query),
        so no separate CNAME query is needed; A and AAAA are asked at once."""
        (qa, a), (qaaaa, aaaa) = await asyncio.gather(
            self._exchange(host, "A", urgent=True), self._exchange(host, "AAAA", urgent=True)
        )
        canonical, _ = self._chain(qa, a)
        if canonical != qa.labels:
            return HostAddresses(host, (), cname=to_text(canonical).lower())
        found: list[str] = []
        for question, response, family in ((qa, a, AF_INET), (qaaaa, aaaa, AF_INET6)):
            if response.rcode != dns.rcode.NOERROR:
                continue
            records = self._chain(question, response)[1]
            try:
                found.extend(sorted(inet_ntop(family, r.rdata) for r in records))
            except ValueError:  # not 4 (A) or 16 (AAAA) bytes
                raise self._error(host, question.type_text, ["a malformed address"]) from None
        return HostAddresses(host, tuple(found))

    async def mx(self, domain: str, *, urgent: bool = False) -> RRset | None:
        """The MX RRset of ``domain`` as the resolver sees it (None when there is none).
        A null MX (``0 .``) yields a set without hosts. ``urgent`` when handshakes wait
        on it (it goes before TLSA and MTA-STS lookups, as address lookups do)."""
        rrset = await self._answer(domain, "MX", urgent)
        if not rrset:
            return None
        records = []
        for r in rrset:
            if not r.target:
                continue  # the null MX "0 ."
            host = to_text(r.target)
            records.append(MX(int.from_bytes(r.rdata[:2], "big"), normalize_name(host)))
        # an RRset's TTL is its smallest record TTL, as dnspython reports it
        return RRset(domain, min(r.ttl for r in rrset), frozenset(records))

    async def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name`` as one string (its character-strings joined)."""
        out = []
        for r in await self._answer(name, "TXT"):
            strings, pos = [], 0
            while pos < len(r.rdata):
                length = r.rdata[pos]
                strings.append(r.rdata[pos + 1 : pos + 1 + length])
                pos += 1 + length
            out.append(b"".join(strings).decode("utf-8", "replace"))
        return out

    async def tlsa(self, host: str, port: int = 25) -> TLSAAnswer:
        """TLSA records at ``_PORT._tcp.HOST``, and whether they are authenticated."""
        question, response = await self._exchange(f"_{port}._tcp.{host}", "TLSA")
        found = [] if response.rcode == dns.rcode.NXDOMAIN else self._chain(question, response)[1]
        records = tuple(
            TLSARecord(r.rdata[0], r.rdata[1], r.rdata[2], r.rdata[3:])
            for r in found
            if len(r.rdata) >= 3  # shorter is malformed: no usage, selector and type
        )
        if not self.trust_ad:
            why = f"{self.where} is not on this machine and not named in [probe] resolvers"
            return TLSAAnswer(records, False, why)
        if not response.authenticated:
            why = f"{self.where} did not mark the answer DNSSEC-validated (no AD bit)"
            return TLSAAnswer(records, False, why)
        return TLSAAnswer(records, True)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
