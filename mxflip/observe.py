"""Observe what is live for each domain: at the provider, at every verification
nameserver and at configured resolvers; and which profile that is.

Provider reads are blocking SDK calls, so they run in a thread pool (one batched read per
provider and zone); DNS queries run concurrently on asyncio. Nothing here prints.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mxflip.config import Config, DomainConfig
from mxflip.dnsview import ServerAnswer, query_all
from mxflip.errors import MxflipError
from mxflip.hostport import HostPort, parse_hostport
from mxflip.logs import timed
from mxflip.net.dns import DNSClient
from mxflip.provider import Provider, load_provider_class
from mxflip.records import RRset

_log = logging.getLogger(__name__)

#: Profile names a record set can match, plus the states that are not a profile.
ACTIVE_STATES = ("primary", "backup", "mixed", "unknown", "absent")


@dataclass(frozen=True)
class ProfileMatch:
    """Which configured profile a record set is, and how it differs from it."""

    active: str
    #: False when the set is a strict subset of the profile (a drained host, say).
    exact: bool = True
    missing: tuple[str, ...] = ()


def match_profile(rrset: RRset | None, domain: DomainConfig) -> ProfileMatch:
    """Classify ``rrset`` against the domain's profiles.

    Exactly a profile's records → that profile. Only hosts of one profile, but not all of
    them or with other preferences → that profile, ``exact=False``. Hosts of both
    profiles → ``mixed``. No MX RRset → ``absent``. Anything else → ``unknown``.
    """
    if rrset is None:
        return ProfileMatch("absent")
    for profile in ("primary", "backup"):
        if rrset.records == domain.profile(profile):
            return ProfileMatch(profile)
    hosts = rrset.hosts
    primary_hosts = frozenset(mx.host for mx in domain.primary)
    backup_hosts = frozenset(mx.host for mx in domain.backup)
    for profile, profile_hosts in (("primary", primary_hosts), ("backup", backup_hosts)):
        if hosts <= profile_hosts:
            wanted = {str(mx) for mx in domain.profile(profile)}
            have = set(rrset.strings())
            return ProfileMatch(profile, exact=False, missing=tuple(sorted(wanted - have)))
    if hosts <= primary_hosts | backup_hosts:
        return ProfileMatch("mixed")
    return ProfileMatch("unknown")


@dataclass(frozen=True)
class ServerView:
    """A nameserver's or resolver's answer, classified."""

    answer: ServerAnswer
    match: ProfileMatch | None

    @property
    def server(self) -> str:
        a = self.answer
        return f"{a.server} ({a.address})" if a.address else a.server


@dataclass(frozen=True)
class DomainStatus:
    """Everything ``mxflip status`` knows about one domain."""

    domain: DomainConfig
    provider_rrset: RRset | None
    provider_error: str | None
    match: ProfileMatch
    nameservers: tuple[ServerView, ...]
    resolvers: tuple[ServerView, ...]
    nameserver_error: str | None = None
    findings: tuple[str, ...] = field(default=())

    @property
    def consistent(self) -> bool:
        """Every reachable nameserver serves exactly what the provider holds (records and
        TTL), and the provider could be read."""
        if self.provider_error is not None:
            return False
        return all(
            v.answer.rrset == self.provider_rrset
            for v in self.nameservers
            if v.answer.error is None
        )

    @property
    def unreachable(self) -> bool:
        """The provider, or every nameserver, could not be asked: an operational failure."""
        if self.provider_error is not None or self.nameserver_error is not None:
            return True
        return bool(self.nameservers) and all(v.answer.error for v in self.nameservers)

    @property
    def needs_attention(self) -> bool:
        return (
            self.match.active != "primary"
            or not self.match.exact
            or not self.consistent
            or any(v.answer.error for v in self.nameservers)
        )


def build_provider(config: Config, name: str) -> Provider:
    """Instantiate the configured provider ``name`` through its entry point."""
    pconf = config.providers[name]
    cls = load_provider_class(pconf.type)
    return cls.from_settings(name, pconf.settings)


#: Provider reads (one per zone) in flight at once, each in a thread.
_PROVIDER_READS = 8


class Observer:
    """Builds providers lazily and observes domains; close() releases them."""

    def __init__(
        self,
        config: Config,
        *,
        dns_timeout: float = 3.0,
        providers: Mapping[str, Provider] | None = None,
    ) -> None:
        self.config = config
        self.dns_timeout = dns_timeout
        self._providers: dict[str, Provider] = dict(providers or {})
        self._zone_nameservers: dict[tuple[str, str], list[str]] = {}
        # Reads run in threads; one lock keeps a provider from being built twice.
        self._lock = threading.Lock()

    def provider(self, name: str) -> Provider:
        with self._lock:
            if name not in self._providers:
                self._providers[name] = build_provider(self.config, name)
            return self._providers[name]

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()

    # ----------------------------------------------------------------- provider side

    async def read_provider(
        self, domains: Sequence[DomainConfig]
    ) -> dict[str, tuple[RRset | None, str | None]]:
        """One batched read per (provider, zone), concurrently: each zone's read in a
        thread (provider SDKs block), at most 8 at once. Maps domain name → (rrset, error
        message)."""
        groups: dict[tuple[str, str], list[DomainConfig]] = defaultdict(list)
        for d in domains:
            groups[(d.provider, d.zone)].append(d)
        out: dict[str, tuple[RRset | None, str | None]] = {}
        limit = asyncio.Semaphore(_PROVIDER_READS)

        async def read(key: tuple[str, str]) -> None:
            provider_name, zone = key
            members = groups[key]
            try:
                async with limit:
                    with timed(
                        _log, "provider read", provider=provider_name, zone=zone, names=len(members)
                    ):
                        found = await asyncio.to_thread(
                            lambda: self.provider(provider_name).read(
                                zone, [d.name for d in members]
                            )
                        )
            except MxflipError as exc:
                for d in members:
                    out[d.name] = (None, str(exc))
                return
            for d in members:
                out[d.name] = (found.get(d.name), None)

        await asyncio.gather(*(read(key) for key in groups))
        return out

    def verification_servers(self, domain: DomainConfig) -> tuple[list[HostPort], str | None]:
        """The configured nameservers, or the provider's view of the zone's NS records."""
        if domain.nameservers:
            return list(domain.nameservers), None
        key = (domain.provider, domain.zone)
        try:
            if key not in self._zone_nameservers:
                provider = self.provider(domain.provider)
                with timed(
                    _log, "provider nameservers", provider=domain.provider, zone=domain.zone
                ):
                    self._zone_nameservers[key] = provider.nameservers(domain.zone)
            return [parse_hostport(n, 53) for n in self._zone_nameservers[key]], None
        except (MxflipError, ValueError) as exc:
            return [], f"cannot find the nameservers of zone {domain.zone}: {exc}"

    # ----------------------------------------------------------------- the whole view

    async def status(self, domains: Sequence[DomainConfig]) -> list[DomainStatus]:
        """Observe ``domains``: provider reads and DNS queries, all concurrent."""
        # Provider SDKs block: their calls run in threads while the DNS questions go out.
        provider_task = asyncio.ensure_future(self.read_provider(domains))
        # The provider is asked for NS records once per zone (in a thread: it may block),
        # not once per domain: thousands of thread hand-offs cost more than the questions.
        by_zone = {(d.provider, d.zone): d for d in domains if not d.nameservers}
        looked_up = await asyncio.gather(
            *(asyncio.to_thread(self.verification_servers, d) for d in by_zone.values())
        )
        zone_servers = dict(zip(by_zone, looked_up, strict=True))
        servers = [
            (list(d.nameservers), None) if d.nameservers else zone_servers[(d.provider, d.zone)]
            for d in domains
        ]
        # One client for every question: it bounds what is in flight (per server too).
        client = DNSClient(self.dns_timeout)
        ns_answers, resolver_answers = await asyncio.gather(
            asyncio.gather(
                *(
                    query_all(client, ns, d.name, recursive=False)
                    for d, (ns, _) in zip(domains, servers, strict=True)
                )
            ),
            asyncio.gather(
                *(query_all(client, d.resolvers, d.name, recursive=True) for d in domains)
            ),
        )
        provider_view = await provider_task
        results = []
        for d, (_, ns_error), ns, res in zip(
            domains, servers, ns_answers, resolver_answers, strict=True
        ):
            rrset, error = provider_view[d.name]
            results.append(_domain_status(d, rrset, error, ns, res, ns_error))
        return results


def _domain_status(
    domain: DomainConfig,
    rrset: RRset | None,
    provider_error: str | None,
    ns: Sequence[ServerAnswer],
    resolvers: Sequence[ServerAnswer],
    ns_error: str | None,
) -> DomainStatus:
    ns_views = tuple(
        ServerView(a, match_profile(a.rrset, domain) if not a.error else None) for a in ns
    )
    res_views = tuple(
        ServerView(a, match_profile(a.rrset, domain) if not a.error else None) for a in resolvers
    )
    if provider_error is None:
        match = match_profile(rrset, domain)
    else:
        # The provider cannot be read: say what the nameservers serve, if they can.
        served = [v.answer.rrset for v in ns_views if v.answer.error is None]
        match = match_profile(served[0], domain) if served else ProfileMatch("unknown")
    findings: list[str] = []
    if provider_error:
        findings.append(f"provider {domain.provider}: {provider_error}")
    if ns_error:
        findings.append(ns_error)
    if not match.exact:
        findings.append(
            f"differs from the {match.active} profile"
            + (f": missing {', '.join(match.missing)}" if match.missing else "")
        )
    for v in ns_views:
        if v.answer.slow:
            findings.append(f"nameserver {v.server}: slow (answered on try {v.answer.tries})")
        if v.answer.error:
            findings.append(f"nameserver {v.server}: {v.answer.error}")
        elif provider_error is None and v.answer.rrset != rrset:
            findings.append(
                f"nameserver {v.server} serves {_describe(v.answer.rrset)}, "
                f"the provider holds {_describe(rrset)}"
            )
    for v in res_views:
        if v.answer.slow:
            findings.append(f"resolver {v.server}: slow (answered on try {v.answer.tries})")
        if v.answer.error:
            findings.append(f"resolver {v.server}: {v.answer.error}")
        elif rrset is not None and not rrset.same_records(v.answer.rrset):
            ttl = v.answer.rrset.ttl if v.answer.rrset else None
            findings.append(
                f"resolver {v.server} still caches {_describe(v.answer.rrset)}"
                + (f" for up to {ttl} s" if ttl is not None else "")
            )
    return DomainStatus(
        domain=domain,
        provider_rrset=rrset,
        provider_error=provider_error,
        match=match,
        nameservers=ns_views,
        resolvers=res_views,
        nameserver_error=ns_error,
        findings=tuple(findings),
    )


def _describe(rrset: RRset | None) -> str:
    if rrset is None:
        return "no MX"
    return f"{', '.join(rrset.strings())} (TTL {rrset.ttl})"
