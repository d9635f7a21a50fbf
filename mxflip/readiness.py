"""Readiness of a profile's MX set: which hosts, probed how, judged how.

:func:`check_domains` is the core entry point the CLI calls. For each domain it takes the
hosts of the asked profile (``primary``, ``backup`` from the config; ``live`` from what is
published), resolves every host, fetches the domain's MTA-STS policy and each host's TLSA
records, then probes every address of every host concurrently: one SMTP session per
address at a time (the domains sharing an address are asked in the same session, in
batches), and at most ``[probe] concurrency`` sessions at once overall. The results are
judged per address, per host (addresses must agree) and per domain.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from mxflip.clock import Clock, SystemClock
from mxflip.config import Config, DomainConfig, ProbeConfig
from mxflip.errors import DNSQueryError, UsageError
from mxflip.findings import Finding, Severity, fail, warn
from mxflip.hostport import HostPort
from mxflip.mailpolicy import (
    MTASTS,
    coverage_findings,
    dane_findings,
    fetch_mta_sts,
    usable_tlsa,
)
from mxflip.net.lookup import HostAddresses, Lookup, TLSAAnswer
from mxflip.net.smtp import SMTPSettings, Timer, helo_name
from mxflip.plan import Readiness, ReadinessVerdict
from mxflip.probe import (
    AddressResult,
    DomainReadiness,
    HostResult,
    Prober,
    Session,
    Transaction,
    Verdict,
    assess_address,
    consistency_findings,
    verdict_of,
)
from mxflip.records import RRset
from mxflip.retry import AsyncSleep

_T = TypeVar("_T")

#: What ``check`` can judge: a configured profile (:data:`mxflip.config.PROFILES`) or the
#: MX set published now.
CHECK_PROFILES = ("backup", "primary", "live")
#: Domains asked in one SMTP session; more go in the next session to the same address.
#: Postfix counts RSET as a junk command (smtpd_junk_command_limit = 100) and a rejected
#: RCPT as an error (it slows down after smtpd_soft_error_limit = 10 and hangs up at
#: smtpd_hard_error_limit = 20), so a session stays well under both.
SESSION_BATCH = 50
SESSION_EXPECTED_ERRORS = 8


def session_batch(probe: ProbeConfig) -> int:
    """How many domains one session may ask about: the catch-all and relay checks each
    expect a rejection per domain, which the server counts as errors."""
    expected = int(probe.check_catch_all) + int(probe.relay_test_recipient is not None)
    return SESSION_BATCH if expected == 0 else max(1, SESSION_EXPECTED_ERRORS // expected)


@dataclass(frozen=True)
class _Target:
    host: str
    address: str
    port: int


@dataclass
class _DomainChecks:
    """Per domain: the hosts to judge and their preferences (what the check will look at;
    unrelated to :class:`mxflip.plan.Plan`)."""

    domain: DomainConfig
    hosts: dict[str, int | None] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    live_hosts: frozenset[str] | None = None


def probe_settings(
    probe: ProbeConfig,
    *,
    timer: Timer = time.monotonic,
    sleep: AsyncSleep = asyncio.sleep,
) -> SMTPSettings:
    """Handshake settings from the ``[probe]`` table (the EHLO name defaults to this
    machine's FQDN, the sender to ``postmaster@`` that name)."""
    helo = helo_name(probe.helo)
    return SMTPSettings(
        helo=helo,
        mail_from=probe.mail_from or f"postmaster@{helo}",
        timeout=probe.timeout,
        slow_step=probe.slow_step,
        rcpt_retry_wait=probe.rcpt_retry_wait,
        ca_file=probe.ca_file,
        timer=timer,
        sleep=sleep,
    )


def default_readiness(config: Config) -> Readiness:
    """The engine's readiness check (:data:`mxflip.plan.Readiness`) for ``config``: is the
    MX set a switch is about to publish ready to receive mail, per domain? An engine built
    without one refuses every switch unless ``--skip-readiness --reason`` is given: an
    unknown verdict is never taken for "ready"."""

    async def readiness(
        domains: Sequence[DomainConfig], targets: Mapping[str, RRset]
    ) -> Mapping[str, ReadinessVerdict]:
        # "live" with live_records = the target sets probes exactly the hosts a switch
        # would publish (drained and restored sets are not a configured profile).
        results = await check_domains(config, list(domains), "live", live_records=dict(targets))
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


async def check_domains(
    config: Config,
    domains: Sequence[DomainConfig],
    profile: str,
    *,
    live_records: Mapping[str, RRset | None] | None = None,
    lookup: Lookup | None = None,
    timer: Timer = time.monotonic,
    clock: Clock | None = None,
    sleep: AsyncSleep = asyncio.sleep,
) -> list[DomainReadiness]:
    """Probe ``profile``'s MX set of each domain and judge it; one result per domain, in
    order. ``live_records`` (domain → published MX RRset) saves looking the live sets up
    again when the caller has observed them; otherwise they are resolved."""
    if profile not in CHECK_PROFILES:
        raise UsageError(
            f"unknown profile {profile!r} (expected one of: {', '.join(CHECK_PROFILES)})"
        )
    probe = config.probe
    lookup = lookup or Lookup(probe.resolvers, timeout=min(probe.timeout, 10.0))
    settings = probe_settings(probe, timer=timer, sleep=sleep)
    verifying, _ = settings.ssl_contexts()

    # A host's pipeline (resolve, then probe each address) starts as soon as its name is
    # known, so lookups overlap with the other hosts' handshakes. Only for "live" must the
    # published MX sets be known first; otherwise they are asked after the pipelines
    # start (below), so the first free lookup slots go to host addresses, not to MX sets
    # that are only judged at the end.
    checks = [_DomainChecks(d) for d in domains]

    def learn_live_sets() -> asyncio.Future[list[None]]:
        return asyncio.gather(*(_live(p, profile, live_records, lookup) for p in checks))

    if profile == "live":
        live_sets = learn_live_sets()
        await live_sets
    else:
        for dc in checks:
            for mx in sorted(dc.domain.profile(profile)):
                dc.hosts[mx.host] = mx.preference
    target_hosts = sorted({h for p in checks for h in p.hosts})
    transactions: dict[str, list[Transaction]] = {}
    for dc in checks:
        tx = _transaction(dc.domain, probe)
        for host in dc.hosts:
            transactions.setdefault(host, []).append(tx)

    prober = Prober(settings)
    limit = asyncio.Semaphore(probe.concurrency)
    locks: dict[tuple[str, int], asyncio.Lock] = {}
    resolved: dict[str, HostAddresses | DNSQueryError] = {}
    targets: dict[str, list[_Target]] = {}
    sessions: dict[tuple[_Target, str], Session] = {}

    async def probe_target(target: _Target, txs: list[Transaction]) -> None:
        # One connection per address at a time, even when two host names share it;
        # the domains asking it share sessions, in batches.
        lock = locks.setdefault((target.address, target.port), asyncio.Lock())
        size = session_batch(probe)
        for i in range(0, len(txs), size):
            batch = txs[i : i + size]
            async with lock, limit:
                session = await prober.session(target.host, target.address, target.port, batch)
            for tx in batch:
                sessions[(target, tx.domain)] = session

    async def host_pipeline(host: str) -> None:
        try:
            addrs = await lookup.addresses(host)
        except DNSQueryError as exc:
            resolved[host] = exc
            return
        resolved[host] = addrs
        if not addrs.addresses:
            return
        overrides = probe.connect.get(host)
        connect: Iterable[HostPort] = overrides or (HostPort(a, 25) for a in addrs.addresses)
        targets[host] = [_Target(host, hp.host, hp.port) for hp in connect]
        await asyncio.gather(*(probe_target(t, transactions[host]) for t in targets[host]))

    pipelines = asyncio.gather(*(host_pipeline(h) for h in target_hosts))
    if profile != "live":
        live_sets = learn_live_sets()

    async def all_tlsa() -> dict[str, TLSAAnswer | DNSQueryError]:
        await live_sets
        hosts = {h for p in checks for h in p.hosts} | {
            h for p in checks for h in p.live_hosts or ()
        }
        return await _gather_map(sorted(hosts), lookup.tlsa)

    policies_task = _gather_map(
        [p.domain.name for p in checks],
        lambda name: fetch_mta_sts(
            name,
            lookup,
            url_template=probe.mta_sts_url,
            context=verifying,
            timeout=probe.timeout,
            sleep=sleep,
            connect=probe.connect,
        ),
    )
    _, tlsa, policies, _ = await asyncio.gather(
        live_sets,
        all_tlsa(),
        policies_task,
        pipelines,
    )

    now = (clock or SystemClock()).now()
    results = []
    for dc in checks:
        sts = policies[dc.domain.name]
        results.append(_judge(dc, profile, sts, resolved, tlsa, targets, sessions, now, probe))
    return results


async def _gather_map(
    keys: Sequence[str], fn: Callable[[str], Awaitable[_T]]
) -> dict[str, _T | DNSQueryError]:
    """``fn`` over every key concurrently; a DNS failure is kept as the key's value so one
    broken name does not hide the others' results."""

    async def one(key: str) -> _T | DNSQueryError:
        try:
            return await fn(key)
        except DNSQueryError as exc:
            return exc

    values = await asyncio.gather(*(one(k) for k in keys))
    return dict(zip(keys, values, strict=True))


async def _live(
    dc: _DomainChecks,
    profile: str,
    live_records: Mapping[str, RRset | None] | None,
    lookup: Lookup,
) -> None:
    """Learn the published MX set (for ``live``: the hosts to probe; otherwise the hosts
    whose DANE records a switch would drop)."""
    domain = dc.domain
    live: RRset | None = None
    if live_records is not None and domain.name in live_records:
        live = live_records[domain.name]
    else:
        try:
            live = await lookup.mx(domain.name, urgent=profile == "live")
        except DNSQueryError as exc:
            if profile == "live":
                dc.findings.append(fail("live-unknown", f"the live MX set is unknown: {exc}"))
            return
    dc.live_hosts = live.hosts if live else frozenset()
    if profile == "live":
        if live is None or not live.records:
            dc.findings.append(
                fail("no-mx", f"{domain.display} publishes no MX hosts (or only a null MX)")
            )
            return
        for mx in sorted(live.records):
            dc.hosts[mx.host] = mx.preference


def _transaction(domain: DomainConfig, probe: ProbeConfig) -> Transaction:
    name = domain.display
    return Transaction(
        domain=domain.name,
        recipient=domain.probe_recipient or f"postmaster@{name}",
        # unguessable, so a 250 can only mean "accepts anything"
        catch_all_recipient=(
            f"mxflip-nonexistent-{secrets.token_hex(6)}@{name}" if probe.check_catch_all else None
        ),
        relay_recipient=probe.relay_test_recipient,
    )


def _judge(
    dc: _DomainChecks,
    profile: str,
    sts: MTASTS | DNSQueryError,
    resolved: Mapping[str, HostAddresses | DNSQueryError],
    tlsa: Mapping[str, TLSAAnswer | DNSQueryError],
    targets: Mapping[str, list[_Target]],
    sessions: Mapping[tuple[_Target, str], Session],
    now: float,
    probe: ProbeConfig,
) -> DomainReadiness:
    domain = dc.domain
    findings = list(dc.findings)
    now_dt = dt.datetime.fromtimestamp(now, dt.UTC)
    mode: str | None = None
    if isinstance(sts, MTASTS):
        mode = sts.mode
        findings.extend(sts.findings)
        findings.extend(coverage_findings(sts, dc.hosts))
    else:
        findings.append(warn("mta-sts-lookup", f"the MTA-STS TXT lookup failed: {sts}"))
    tls_required = "the domain's MTA-STS policy (mode enforce)" if mode == "enforce" else None

    hosts = []
    for host, preference in dc.hosts.items():
        host_findings: list[Finding] = []
        name = host.rstrip(".")
        addrs = resolved.get(host)
        answer = TLSAAnswer((), True)
        tl = tlsa.get(host)
        if isinstance(tl, TLSAAnswer):
            answer = tl
        elif isinstance(tl, Exception):
            host_findings.append(warn("tlsa-lookup", f"the TLSA lookup failed: {tl}"))
        if isinstance(addrs, Exception):
            host_findings.append(fail("resolve-error", str(addrs)))
        elif isinstance(addrs, HostAddresses) and addrs.cname:
            host_findings.append(
                fail(
                    "cname-target",
                    f"{name} is a CNAME to {addrs.cname.rstrip('.')}; an MX target must be "
                    "a host name with its own A/AAAA records (RFC 5321 §5.1)",
                )
            )
        elif isinstance(addrs, HostAddresses) and not addrs.addresses:
            host_findings.append(fail("no-address", f"{name} has no A or AAAA records"))
        results: list[AddressResult] = []
        # Only authenticated TLSA records bind senders (RFC 7672 §2.2).
        dane = answer.authenticated and bool(usable_tlsa(answer.records))
        for target in targets.get(host, []):
            session = sessions.get((target, domain.name))
            if session is None:
                continue
            results.append(
                assess_address(
                    session,
                    domain.name,
                    tls_required=tls_required,
                    dane_required=dane,
                    extra_findings=dane_findings(host, answer, session.tls, now_dt),
                    now=now,
                    expiry_warning_days=probe.expiry_warning_days,
                )
            )
        host_findings.extend(consistency_findings(host, results))
        verdict = Verdict.worst([verdict_of(host_findings), *(a.verdict for a in results)])
        hosts.append(HostResult(host, verdict, tuple(results), tuple(host_findings), preference))

    if profile != "live" and dc.live_hosts:
        live_dane = [h for h in dc.live_hosts if _has_usable(tlsa.get(h))]
        target_dane = [h for h in dc.hosts if _has_usable(tlsa.get(h))]
        if live_dane and not target_dane and set(dc.hosts) != set(dc.live_hosts):
            findings.append(
                warn(
                    "dane-dropped",
                    f"the live MX hosts publish DANE TLSA records "
                    f"({', '.join(sorted(h.rstrip('.') for h in live_dane))}) but no {profile} "
                    "host does: switching turns DANE off for this domain",
                )
            )
    verdict = Verdict.worst([verdict_of(findings), *(h.verdict for h in hosts)])
    return DomainReadiness(domain.name, profile, verdict, tuple(hosts), tuple(findings), mode)


def _has_usable(answer: object) -> bool:
    return (
        isinstance(answer, TLSAAnswer)
        and answer.authenticated
        and bool(usable_tlsa(answer.records))
    )


def exit_verdict(results: Iterable[DomainReadiness]) -> Verdict:
    """The worst verdict over all domains (what the exit code reports)."""
    return Verdict.worst(r.verdict for r in results)
