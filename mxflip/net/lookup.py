"""The DNS questions readiness asks (MX, A/AAAA, TLSA, TXT), asynchronously.

One :class:`Lookup` asks the configured resolvers (``[probe] resolvers``) or the system's.
Absent data is an empty answer; only resolvers that cannot answer raise
:class:`~mxflip.errors.DNSQueryError`.

Every question goes through the one DNS client (:class:`~mxflip.net.dns.DNSClient`:
bounded, retried, slow told from unreachable): each try leaves from a UDP socket of its
own (a fresh source port) with a cryptographically random ID, and is matched to its
answer by ID and question; truncated answers are asked again over TCP. The messages are
written and read by the small :mod:`mxflip.net.dnswire`, not as dnspython messages: a
check of hundreds of domains asks thousands of questions, and dnspython's message objects
cost about 0.5 ms of CPU per lookup more (``bench/bench_check.py --dns dnspython``: at
500 domains 6.2 s of CPU instead of 3.5 s). dnspython still validates unusual names and
reads the system's resolvers.
"""

from __future__ import annotations

import asyncio
import heapq
import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_ntop

import dns.rcode
import dns.resolver

from mxflip.errors import DNSQueryError
from mxflip.hostport import HostPort
from mxflip.net.dns import DNSClient, Limits
from mxflip.net.dnswire import Labels, Question, Record, Response, WireError, to_text
from mxflip.records import MX, RRset, normalize_name


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


class _Limiter:
    """At most ``size`` queries in flight. Waiting urgent queries (a host's addresses:
    its handshakes wait on them) go before the others (TLSA, MTA-STS, MX sets that are
    only judged), so handshakes start early and the rest is asked while they run. Among
    urgent ones, a lower ``group`` goes first: a host's A and AAAA share the number its
    lookup drew, so they leave together and its handshake starts after one round trip,
    not after every other host's A (``bench/bench_check.py``: 600 hosts' connections
    then began ~40 ms sooner). Otherwise first come, first served."""

    def __init__(self, size: int) -> None:
        self.free = size
        #: Waiters by (not urgent, group, arrival): a heap.
        self.waiting: list[tuple[bool, int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        # Stateless, so one of each serves every ungrouped query (a generator-based
        # context manager per query cost a few µs each, thousands of times a check).
        self._slots = (_Slot(self, False, 0), _Slot(self, True, 0))

    def slot(self, urgent: bool, group: int = 0) -> _Slot:
        """``async with limiter.slot(urgent, group):`` holds one of the slots."""
        return _Slot(self, urgent, group) if group else self._slots[urgent]

    async def acquire(self, urgent: bool, group: int = 0) -> None:
        if self.free > 0:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self.waiting, (not urgent, group if urgent else 0, next(self._arrivals), waiter)
        )
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        waiting = self.waiting
        while waiting:
            waiter = heapq.heappop(waiting)[3]
            if not waiter.done():  # a cancelled waiter is dropped here
                waiter.set_result(None)  # the slot passes straight to it
                return
        self.free += 1


class _Slot:
    __slots__ = ("_group", "_limiter", "_urgent")

    def __init__(self, limiter: _Limiter, urgent: bool, group: int) -> None:
        self._limiter = limiter
        self._urgent = urgent
        self._group = group

    async def __aenter__(self) -> None:
        await self._limiter.acquire(self._urgent, self._group)

    async def __aexit__(self, *exc: object) -> None:
        self._limiter.release()


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
        # One DNS client for every question: each resolver gets an equal share of the
        # lifetime, so a question never takes longer than the lifetime over all of them.
        # Its bound in flight is the limiter's (below), which also orders the waiters.
        self._client = DNSClient(
            timeout / max(1, len(self.nameservers)),
            Limits(in_flight=in_flight, per_server=in_flight),
            caller_bounds=True,
        )
        # Thousands of UDP queries at once overflow socket buffers and come back only
        # after a retry timeout; a bounded number in flight is faster overall. (The limiter
        # holds no loop: its waiters are made in whichever loop the command runs.)
        self._limit = _Limiter(in_flight)
        #: Urgent lookups' groups (see _Limiter), from 1 (0: no group).
        self._groups = itertools.count(1)

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
        self, name: str, rdtype: str, urgent: bool = False, group: int = 0
    ) -> tuple[Question, Response]:
        """One question, answered NOERROR or NXDOMAIN by some resolver. Each resolver in
        turn gets its share of the lifetime through the DNS client (tries with doubling
        timeouts, a fresh socket and ID each); one that answers otherwise (SERVFAIL,
        REFUSED, a broken message) or not at all leaves the question to the next, as
        dnspython's resolver does."""
        question = Question.make(name, rdtype)
        async with self._limit.slot(urgent, group):
            problems: list[str] = []
            for server in self.nameservers:
                reply = await self._client.ask_wire(question, server.host, server.port)
                response = reply.response
                if response is None:
                    silent = reply.unreachable and reply.exception is None
                    problems.append(f"{server}: {'timed out' if silent else reply.error}")
                    continue
                if response.rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return question, response
                rcode = dns.rcode.to_text(dns.rcode.Rcode.make(response.rcode))
                problems.append(f"{server}: {rcode}")
            raise self._error(name, rdtype, problems)

    def _chain(self, question: Question, response: Response) -> tuple[Labels, list[Record]]:
        try:
            return response.chain(question)
        except WireError as exc:
            raise self._error(question.text, question.type_text, [str(exc)]) from None

    async def _answer(self, name: str, rdtype: str, urgent: bool = False) -> list[Record]:
        """The records answering ``name``/``rdtype`` (following CNAMEs in the answer);
        empty when the name or the data does not exist."""
        group = next(self._groups) if urgent else 0
        question, response = await self._exchange(name, rdtype, urgent, group)
        if response.rcode == dns.rcode.NXDOMAIN:
            return []
        return self._chain(question, response)[1]

    async def addresses(self, host: str) -> HostAddresses:
        """A and AAAA of ``host`` (absolute name); a CNAME is reported, not followed.

        The A answer carries any CNAME chain (its canonical name differs from the query),
        so no separate CNAME query is needed; A and AAAA are asked at once."""
        # AAAA in a task of its own, A in this one: one task per host, not two (gather's).
        group = next(self._groups)  # A and AAAA leave together (see _Limiter)
        aaaa_task = asyncio.ensure_future(self._exchange(host, "AAAA", True, group))
        try:
            qa, a = await self._exchange(host, "A", True, group)
        except BaseException:
            # the A failure is the answer; its twin is not waited for (nor its error kept)
            if not aaaa_task.done():
                aaaa_task.cancel()
            elif not aaaa_task.cancelled():
                aaaa_task.exception()
            raise
        qaaaa, aaaa = await aaaa_task
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
