"""The DNS questions readiness asks (MX, A/AAAA, CNAME, TLSA, TXT), asynchronously.

One :class:`Lookup` wraps dnspython's async resolver, pointed at the configured resolvers
(``[probe] resolvers``) or the system's. Absent data is an empty answer; only a resolver
that cannot answer raises :class:`~mxflip.errors.DNSQueryError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.TLSA import TLSA

from mxflip.errors import DNSQueryError
from mxflip.hostport import HostPort
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


class Lookup:
    """Async DNS lookups through one resolver configuration."""

    def __init__(
        self, resolvers: Sequence[HostPort] = (), *, timeout: float = 5.0, in_flight: int = 64
    ) -> None:
        if resolvers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(r.host, r.port) for r in resolvers
            ]
            self.where = ", ".join(str(r) for r in resolvers)
        else:
            try:
                resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise DNSQueryError(
                    "no system resolver is configured",
                    hint='set [probe] resolvers = ["IP[:PORT]"] in the config',
                ) from None
            self.where = "the system resolver"
        resolver.lifetime = timeout
        resolver.timeout = min(timeout, 2.0)
        self._resolver = resolver
        # Thousands of UDP queries at once overflow socket buffers and come back only
        # after a retry timeout; a bounded number in flight is faster overall.
        self._in_flight = asyncio.Semaphore(in_flight)

    def _error(self, name: str, rdtype: str, exc: dns.exception.DNSException) -> DNSQueryError:
        name = name.rstrip(".")
        if isinstance(exc, dns.resolver.NoNameservers):
            return DNSQueryError(
                f"{rdtype} lookup of {name} failed at {self.where}: {exc.msg}",
                hint="check [probe] resolvers in the config",
            )
        if isinstance(exc, dns.exception.Timeout):
            return DNSQueryError(
                f"{rdtype} lookup of {name} timed out at {self.where}",
                hint="check that the resolvers in [probe] resolvers are reachable",
            )
        return DNSQueryError(f"{rdtype} lookup of {name} failed: {exc}")

    async def _resolve(
        self, name: str | dns.name.Name, rdtype: str, *, raise_on_no_answer: bool = True
    ) -> dns.resolver.Answer:
        async with self._in_flight:
            return await self._resolver.resolve(
                name, rdtype, search=False, raise_on_no_answer=raise_on_no_answer
            )

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return await self._resolve(name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            raise self._error(name, rdtype, exc) from None

    async def addresses(self, host: str) -> HostAddresses:
        """A and AAAA of ``host`` (absolute name); a CNAME is reported, not followed.

        The A answer carries any CNAME chain (its canonical name differs from the query),
        so no separate CNAME query is needed; A and AAAA are asked at once."""
        name = dns.name.from_text(host)
        try:
            a, aaaa = await asyncio.gather(
                self._resolve(name, "A", raise_on_no_answer=False),
                self._resolve(name, "AAAA", raise_on_no_answer=False),
            )
        except dns.resolver.NXDOMAIN as exc:
            canonical = exc.canonical_name
            if canonical != name:
                return HostAddresses(host, (), cname=canonical.to_text().lower())
            return HostAddresses(host, ())
        except dns.exception.DNSException as exc:
            raise self._error(host, "A/AAAA", exc) from None
        if a.canonical_name != name:
            return HostAddresses(host, (), cname=a.canonical_name.to_text().lower())
        found: list[str] = []
        for answer in (a, aaaa):
            if answer.rrset is not None:
                found.extend(sorted(str(r.address) for r in answer.rrset))
        return HostAddresses(host, tuple(found))

    async def mx(self, domain: str) -> RRset | None:
        """The MX RRset of ``domain`` as the resolver sees it (None when there is none).
        A null MX (``0 .``) yields a set holding no hosts but a ``.`` marker host."""
        answer = await self._query(domain, "MX")
        if answer is None or answer.rrset is None:
            return None
        records = []
        for r in answer.rrset:
            host = str(r.exchange).lower()
            if host == ".":
                continue
            records.append(MX(int(r.preference), normalize_name(host)))
        return RRset(domain, answer.rrset.ttl, frozenset(records))

    async def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name`` as one string (its character-strings joined)."""
        answer = await self._query(name, "TXT")
        if answer is None or answer.rrset is None:
            return []
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset]

    async def tlsa(self, host: str, port: int = 25) -> list[TLSARecord]:
        """TLSA records at ``_PORT._tcp.HOST``."""
        answer = await self._query(f"_{port}._tcp.{host}", "TLSA")
        if answer is None or answer.rrset is None:
            return []
        out = []
        for r in answer.rrset:
            assert isinstance(r, TLSA)
            out.append(TLSARecord(r.usage, r.selector, r.mtype, bytes(r.cert)))
        return out
