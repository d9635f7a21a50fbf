"""SMTP readiness handshakes: one polite conversation per MX address, never DATA.

A :class:`Prober` opens one connection to one address through the SMTP client of
:mod:`mxflip.net.smtp` (an :class:`~mxflip.net.smtp.SMTPClient`, which cannot send a
message) and walks the handshake a sending MTA walks (banner, EHLO, STARTTLS with a
verified certificate, EHLO again, then for each domain asked about ``MAIL FROM``,
``RCPT TO`` and ``RSET``), and always ends with QUIT. Every step is timed and kept as an
:class:`~mxflip.net.smtp.SMTPStep`; what it shows becomes a :class:`Session` of plain
facts. Judging those facts against a domain's mail policy (is TLS required?) is
:func:`assess_address`; the orchestration across hosts and domains is
:mod:`mxflip.readiness`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from mxflip.findings import Finding, Severity, fail, warn
from mxflip.net.smtp import (
    Abort,
    SMTPClient,
    SMTPReply,
    SMTPSettings,
    SMTPStep,
    StartTLSFailed,
    TLSInfo,
    verify_problem,
)
from mxflip.retry import async_retrying


class Verdict(enum.StrEnum):
    """Readiness of an address, a host or a whole MX set; ordered best to worst."""

    READY = "ready"
    DEGRADED = "degraded"
    NOT_READY = "not-ready"

    @property
    def rank(self) -> int:
        return _VERDICT_RANK[self]

    @classmethod
    def worst(cls, verdicts: Iterable[Verdict]) -> Verdict:
        return max(verdicts, key=lambda v: v.rank, default=cls.READY)


_VERDICT_RANK = {Verdict.READY: 0, Verdict.DEGRADED: 1, Verdict.NOT_READY: 2}


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """not-ready on any failure, degraded on any warning, else ready."""
    severities = {f.severity for f in findings}
    if Severity.FAIL in severities:
        return Verdict.NOT_READY
    if Severity.WARN in severities:
        return Verdict.DEGRADED
    return Verdict.READY


@dataclass(frozen=True)
class Transaction:
    """The envelope questions asked for one domain inside a session."""

    domain: str  # absolute, trailing dot
    recipient: str
    catch_all_recipient: str | None = None
    relay_recipient: str | None = None


@dataclass(frozen=True)
class TransactionResult:
    steps: tuple[SMTPStep, ...]
    findings: tuple[Finding, ...]
    rcpt_code: int | None


@dataclass(frozen=True)
class Session:
    """The facts of one conversation with one address, before any policy is applied.

    ``tls_problems`` are (code, message) pairs that fail under an enforcing MTA-STS
    policy or DANE and only warn otherwise.
    """

    host: str
    address: str
    steps: tuple[SMTPStep, ...]
    findings: tuple[Finding, ...]
    tls_problems: tuple[tuple[str, str], ...]
    tls: TLSInfo | None
    extensions: frozenset[str]
    transactions: Mapping[str, TransactionResult]
    closing: tuple[SMTPStep, ...]
    closing_findings: tuple[Finding, ...]
    #: False when the conversation ended before EHLO succeeded (TLS was never judged).
    reached_ehlo: bool


@dataclass(frozen=True)
class AddressResult:
    """One address of one MX host, judged for one domain."""

    address: str
    verdict: Verdict
    steps: tuple[SMTPStep, ...]
    findings: tuple[Finding, ...]
    extensions: frozenset[str] = frozenset()
    tls: TLSInfo | None = None
    tls_days_left: int | None = None
    rcpt_code: int | None = None


@dataclass(frozen=True)
class HostResult:
    host: str  # absolute, trailing dot
    verdict: Verdict
    addresses: tuple[AddressResult, ...]
    findings: tuple[Finding, ...] = ()
    preference: int | None = None


@dataclass(frozen=True)
class DomainReadiness:
    """The readiness of one domain's MX set for a profile (``backup``, ``primary``, ``live``)."""

    domain: str  # absolute, trailing dot
    profile: str
    verdict: Verdict
    hosts: tuple[HostResult, ...]
    findings: tuple[Finding, ...] = ()
    mta_sts_mode: str | None = None

    @property
    def display(self) -> str:
        return self.domain.rstrip(".")

    def located_findings(self) -> list[tuple[str, Finding]]:
        """Every finding at every level, with where it was found (``""`` for the domain,
        ``"mx.example.com"`` for a host, ``"mx.example.com 192.0.2.1"`` for an address)."""
        out: list[tuple[str, Finding]] = [("", f) for f in self.findings]
        for h in self.hosts:
            host = h.host.rstrip(".")
            out += [(host, f) for f in h.findings]
            for a in h.addresses:
                out += [(f"{host} {a.address}", f) for f in a.findings]
        return out


class _Deferred(Exception):
    def __init__(self, reply: SMTPReply) -> None:
        super().__init__(reply.text)
        self.reply = reply


class Prober:
    """Runs SMTP sessions with the given settings."""

    def __init__(self, settings: SMTPSettings) -> None:
        self.settings = settings

    async def session(
        self, host: str, address: str, port: int, transactions: Sequence[Transaction]
    ) -> Session:
        """Talk to one address of ``host`` and ask the envelope questions of each
        transaction. Never raises for anything the server does; it becomes a finding."""
        conv = SMTPClient(self.settings, host, address, port)
        verifying, opportunistic = self.settings.ssl_contexts()
        tx_results: dict[str, TransactionResult] = {}
        alive = False
        try:
            try:
                await self._greet(conv, "", verifying)
                alive = True
                if "STARTTLS" in conv.extensions:
                    try:
                        await self._tls(conv, verifying, opportunistic)
                    except StartTLSFailed as exc:
                        # A sending MTA without MTA-STS enforce or DANE falls back to
                        # plaintext, as it does when STARTTLS is not offered at all: on the
                        # same connection after a refusal, on a new one after a failed
                        # handshake. So do we; the verdict depends on the policy.
                        conv.tls_problems.append(("starttls-failed", exc.finding.message))
                        conv.tls = None
                        if not exc.alive:
                            conv.abandon()
                            alive = False
                            await self._greet(conv, "plain-")
                            alive = True
                else:
                    conv.drop_prepared_tls()
                    conv.tls_problems.append(("starttls-missing", "STARTTLS is not offered"))
                for tx in transactions:
                    tx_results[tx.domain] = await self._transaction(conv, tx)
            except _TransactionAbort as exc:
                tx_results[exc.domain] = exc.result
                conv.findings.append(exc.finding)
                alive = exc.alive
            except Abort as exc:
                conv.findings.append(exc.finding)
                alive = exc.alive
            closing, closing_findings = await conv.close(polite=alive)
        except BaseException:
            conv.abandon()
            raise
        return Session(
            host=host,
            address=address if port == 25 else _join(address, port),
            steps=tuple(conv.steps),
            findings=tuple(conv.findings),
            tls_problems=tuple(conv.tls_problems),
            tls=conv.tls,
            extensions=conv.extensions,
            transactions=tx_results,
            closing=tuple(closing),
            closing_findings=tuple(closing_findings),
            reached_ehlo=conv.reached_ehlo,
        )

    async def _tls(
        self,
        conv: SMTPClient,
        verifying: ssl.SSLContext,
        opportunistic: ssl.SSLContext,
    ) -> None:
        """STARTTLS with a verified certificate; when verification fails, again on a new
        connection without verification (as a sending MTA without a policy does), then
        EHLO inside TLS. Raises StartTLSFailed when TLS cannot be had at all."""
        try:
            await conv.starttls("starttls", verifying)
        except ssl.SSLCertVerificationError as exc:
            conv.tls_problems.append(verify_problem(exc, conv.host))
            conv.abandon()
            # A sending MTA without a policy carries on unverified; so do we, on a fresh
            # connection, to see the rest of the handshake.
            await self._greet(conv, "retry-", opportunistic)
            await conv.starttls("retry-starttls", opportunistic)
            assert conv.tls is not None
            conv.tls = dataclasses.replace(conv.tls, verify_error=conv.tls_problems[-1][1])
        if conv.tls and conv.tls.version in ("TLSv1", "TLSv1.1", "SSLv3"):
            conv.tls_problems.append(
                ("tls-old-version", f"{conv.tls.version} is older than TLS 1.2")
            )
        conv.extensions = frozenset()
        await conv.ehlo("ehlo-tls", "ehlo-tls-rejected")

    async def _greet(
        self, conv: SMTPClient, prefix: str, tls: ssl.SSLContext | None = None
    ) -> None:
        """Connect, read the greeting and say EHLO; with ``tls`` (the context STARTTLS
        will use when offered) its ClientHello is built while the greeting is awaited:
        out of the busy stretch after the greetings of a large check."""
        await conv.connect(f"{prefix}connect")
        if tls is not None:
            conv.prepare_starttls(tls)
        await conv.banner(f"{prefix}banner")
        await conv.ehlo(f"{prefix}ehlo", "ehlo-rejected")

    async def _transaction(self, conv: SMTPClient, tx: Transaction) -> TransactionResult:
        """MAIL, RCPT (one polite retry on 4xx), the optional extra RCPTs, RSET.

        Steps go to a list of their own so each domain sees only its own envelope."""
        outer = conv.steps
        outer_findings = conv.findings
        conv.steps = []
        conv.findings = []
        rcpt_code: int | None = None
        try:
            mail = await conv.command(
                "mail", f"MAIL FROM:<{self.settings.mail_from}>", lambda c: c == 250
            )
            if mail.code >= 500:
                conv.findings.append(
                    fail("mail-rejected", f"MAIL FROM answered {mail.code} {mail.text}")
                )
            elif mail.code >= 400:
                conv.findings.append(
                    warn("mail-deferred", f"MAIL FROM answered {mail.code} {mail.text}")
                )
            else:
                rcpt = await self._rcpt_with_retry(conv, tx.recipient)
                rcpt_code = rcpt.code
                if rcpt.code >= 500:
                    sender = _sender_domain_hint(rcpt, self.settings.mail_from)
                    conv.findings.append(
                        fail(
                            "rcpt-rejected",
                            f"RCPT TO:<{tx.recipient}> answered {rcpt.code} {rcpt.text}"
                            + (f" ({sender})" if sender else ""),
                        )
                    )
                elif rcpt.code >= 400:
                    conv.findings.append(
                        warn(
                            "rcpt-deferred",
                            f"RCPT TO:<{tx.recipient}> still answered {rcpt.code} after a "
                            f"polite retry ({_deferral_hint(rcpt, self.settings.mail_from)}): "
                            f"{rcpt.text}",
                        )
                    )
                if tx.catch_all_recipient:
                    extra = await conv.command(
                        "rcpt-catch-all", f"RCPT TO:<{tx.catch_all_recipient}>", lambda c: c >= 400
                    )
                    if 200 <= extra.code < 300:
                        conv.findings.append(
                            warn(
                                "catch-all",
                                f"a random recipient <{tx.catch_all_recipient}> was accepted: "
                                "the host accepts any local part (backscatter risk)",
                            )
                        )
                if tx.relay_recipient:
                    relay = await conv.command(
                        "rcpt-relay", f"RCPT TO:<{tx.relay_recipient}>", lambda c: c >= 500
                    )
                    if 200 <= relay.code < 300:
                        conv.findings.append(
                            fail(
                                "open-relay",
                                f"the external recipient <{tx.relay_recipient}> was accepted: "
                                "the host is an open relay",
                            )
                        )
            rset = await conv.command("rset", "RSET", lambda c: c == 250)
            if rset.code != 250:
                conv.findings.append(warn("rset-failed", f"RSET answered {rset.code} {rset.text}"))
            return TransactionResult(tuple(conv.steps), tuple(conv.findings), rcpt_code)
        except Abort as exc:
            # the conversation is over; keep what this domain saw, then let it end
            conv.findings.append(exc.finding)
            result = TransactionResult(tuple(conv.steps), tuple(conv.findings), rcpt_code)
            raise _TransactionAbort(tx.domain, result, exc) from None
        finally:
            conv.steps = outer
            conv.findings = outer_findings

    async def _rcpt_with_retry(self, conv: SMTPClient, recipient: str) -> SMTPReply:
        first = await conv.command("rcpt", f"RCPT TO:<{recipient}>", lambda c: 200 <= c < 300)
        if not 400 <= first.code < 500:
            return first
        # Deferred (greylisting?): one polite retry under the shared retry policy. Built
        # only now: a tenacity loop costs ~0.2 ms of CPU, a tenth of a whole session's.
        retrying = async_retrying(
            lambda exc: isinstance(exc, _Deferred),
            attempts=2,
            max_wait=self.settings.rcpt_retry_wait,
            sleep=self.settings.sleep,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number == 1:
                        raise _Deferred(first)  # the answer above: wait, then try again
                    await conv.command("rset", "RSET", lambda c: c == 250)
                    mail = await conv.command(
                        "mail", f"MAIL FROM:<{self.settings.mail_from}>", lambda c: c == 250
                    )
                    if mail.code != 250:
                        return mail
                    reply = await conv.command(
                        "rcpt", f"RCPT TO:<{recipient}>", lambda c: 200 <= c < 300
                    )
                    if 400 <= reply.code < 500:
                        raise _Deferred(reply)
                    return reply
        except _Deferred as exc:
            return exc.reply
        raise AssertionError("unreachable: tenacity re-raises or returns")


#: RFC 3463 X.1.8 "bad sender's system address": the server cannot find the sender's domain.
_SENDER_DOMAIN = re.compile(r"(?:^|\s)[45]\.1\.8(?:\s|$)|sender address rejected", re.I)


def _sender_domain_hint(reply: SMTPReply, mail_from: str) -> str | None:
    """A hint when a refusal is about the probe's sender, not the recipient."""
    if not _SENDER_DOMAIN.search(reply.text):
        return None
    domain = mail_from.rpartition("@")[2] or mail_from
    return (
        f"the server rejects the probe's sender domain {domain}, not the recipient: "
        "set [probe] mail_from to an address whose domain resolves (MX or A)"
    )


def _deferral_hint(reply: SMTPReply, mail_from: str) -> str:
    """What a temporary RCPT refusal most likely means."""
    return _sender_domain_hint(reply, mail_from) or "greylisting or postscreen?"


class _TransactionAbort(Abort):
    def __init__(self, domain: str, result: TransactionResult, cause: Abort) -> None:
        super().__init__(cause.finding, alive=cause.alive)
        self.domain = domain
        self.result = result


def _join(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# ------------------------------------------------------------------------ judging


def assess_address(
    session: Session,
    domain: str,
    *,
    tls_required: str | None,
    dane_required: bool = False,
    extra_findings: Sequence[Finding] = (),
    now: float,
    expiry_warning_days: int = 14,
) -> AddressResult:
    """Judge one session for one domain. ``tls_required`` names why TLS must work
    (``"MTA-STS enforce"``) or is None, in which case TLS problems only warn. With usable
    DANE records TLS itself is required, but the certificate is judged by its TLSA match
    (in ``extra_findings``), not by its chain or name (RFC 7672 §3.1)."""
    tx = session.transactions.get(domain)
    steps = list(session.steps)
    findings = list(session.findings)
    if tx is not None:
        steps.extend(tx.steps)
        findings.extend(tx.findings)
    steps.extend(session.closing)
    findings.extend(session.closing_findings)
    for code, message in session.tls_problems:
        if tls_required:
            findings.append(fail(code, f"{message}; required by {tls_required}"))
        elif dane_required and code in _DANE_TLS_CODES:
            findings.append(fail(code, f"{message}; required by the host's DANE TLSA records"))
        else:
            findings.append(warn(code, message))
    days = session.tls.days_left(now) if session.tls else None
    if days is not None and 0 <= days < expiry_warning_days:
        findings.append(
            warn("cert-expiring", f"the certificate expires in {days} day{'s' * (days != 1)}")
        )
    findings.extend(extra_findings)
    return AddressResult(
        address=session.address,
        verdict=verdict_of(findings),
        steps=tuple(steps),
        findings=tuple(_dedupe(findings)),
        extensions=session.extensions,
        tls=session.tls,
        tls_days_left=days,
        rcpt_code=tx.rcpt_code if tx else None,
    )


_DANE_TLS_CODES = frozenset({"starttls-missing", "starttls-failed", "tls-old-version"})


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[Finding] = set()
    out = []
    for f in findings:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out


def _certificate_state(a: AddressResult) -> str:
    if a.tls is None:
        return "no TLS"
    return "verified" if a.tls.verified else "not verified"


def consistency_findings(host: str, addresses: Sequence[AddressResult]) -> list[Finding]:
    """Addresses of one host that disagree: the "one bad server in rotation" case."""
    reached = [a for a in addresses if any(s.ok and s.name.endswith("ehlo") for s in a.steps)]
    if len(reached) < 2:
        return []
    out = []
    name = host.rstrip(".")
    aspects: list[tuple[str, Callable[[AddressResult], object]]] = [
        ("EHLO extensions", lambda a: ", ".join(sorted(a.extensions)) or "none"),
        # Which certificate is not compared: nodes with their own ACME keys present
        # different certificates, all valid for the name. What a sender sees is.
        ("certificate", _certificate_state),
        ("RCPT result", lambda a: a.rcpt_code),
    ]
    for label, key in aspects:
        values = {a.address: key(a) for a in reached}
        if len(set(map(str, values.values()))) > 1:
            detail = "; ".join(f"{addr}: {val}" for addr, val in values.items())
            out.append(
                fail(
                    "node-inconsistent",
                    f"the addresses of {name} disagree on {label} ({detail}): "
                    "one server in the rotation is configured differently",
                )
            )
    return out
