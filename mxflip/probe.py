"""SMTP readiness handshakes: one polite conversation per MX address, never DATA.

A :class:`Prober` opens one connection to one address and walks the handshake a sending
MTA walks (banner, EHLO, STARTTLS with a verified certificate, EHLO again, then for each
domain asked about ``MAIL FROM``, ``RCPT TO`` and ``RSET``), and always ends with QUIT.
Every step is timed and kept as a :class:`Step`; what it shows becomes a :class:`Session`
of plain facts. Judging those facts against a domain's mail policy (is TLS required?)
is :func:`assess_address`; the orchestration across hosts and domains is
:mod:`mxflip.readiness`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import hashlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mxflip import certs
from mxflip.errors import ConfigError
from mxflip.retry import AsyncSleep, async_retrying
from mxflip.sanitize import clean

#: Monotonic seconds, for step timings (injectable so tests control "slow").
Clock = Callable[[], float]
#: Seconds since the epoch, for certificate expiry (injectable so tests control "soon").
WallClock = Callable[[], float]

_log = logging.getLogger(__name__)
_REPLY = re.compile(r"^([2-5][0-9][0-9])([ -]|$)(.*)$")
_MAX_REPLY_LINES = 100
_LINE_LIMIT = 8192
_QUIT_TIMEOUT = 5.0
_X509_EXPIRED = 10
_X509_HOSTNAME_MISMATCH = 62


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


class Severity(enum.StrEnum):
    FAIL = "fail"
    WARN = "warn"
    INFO = "info"


@dataclass(frozen=True)
class Step:
    """One timed step of a handshake: its reply code (None when there was no reply)."""

    name: str
    code: int | None
    ms: int
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Finding:
    """Something a person should know, with a stable ``code`` scripts can match on."""

    severity: Severity
    code: str
    message: str


def fail(code: str, message: str) -> Finding:
    # Findings quote remote text (replies, certificates, MTA-STS policies): shown safe.
    return Finding(Severity.FAIL, code, clean(message))


def warn(code: str, message: str) -> Finding:
    return Finding(Severity.WARN, code, clean(message))


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """not-ready on any failure, degraded on any warning, else ready."""
    severities = {f.severity for f in findings}
    if Severity.FAIL in severities:
        return Verdict.NOT_READY
    if Severity.WARN in severities:
        return Verdict.DEGRADED
    return Verdict.READY


@dataclass(frozen=True)
class TLSInfo:
    """What the STARTTLS handshake showed. ``verify_error`` is None when the chain was
    trusted and named the MX host; ``chain`` is DER, leaf first."""

    version: str
    cipher: str
    verify_error: str | None
    chain: tuple[bytes, ...]
    not_after: dt.datetime | None
    #: False when only the leaf of the presented chain could be read (see certs.peer_chain).
    chain_complete: bool = True

    @property
    def verified(self) -> bool:
        return self.verify_error is None

    @property
    def fingerprint(self) -> str | None:
        """SHA-256 of the leaf certificate, hex."""
        return hashlib.sha256(self.chain[0]).hexdigest() if self.chain else None

    def days_left(self, now: float) -> int | None:
        if self.not_after is None:
            return None
        return int((self.not_after.timestamp() - now) // 86400)


@dataclass(frozen=True)
class Transaction:
    """The envelope questions asked for one domain inside a session."""

    domain: str  # absolute, trailing dot
    recipient: str
    catch_all_recipient: str | None = None
    relay_recipient: str | None = None


@dataclass(frozen=True)
class TransactionResult:
    steps: tuple[Step, ...]
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
    steps: tuple[Step, ...]
    findings: tuple[Finding, ...]
    tls_problems: tuple[tuple[str, str], ...]
    tls: TLSInfo | None
    extensions: frozenset[str]
    transactions: Mapping[str, TransactionResult]
    closing: tuple[Step, ...]
    closing_findings: tuple[Finding, ...]
    #: False when the conversation ended before EHLO succeeded (TLS was never judged).
    reached_ehlo: bool


@dataclass(frozen=True)
class AddressResult:
    """One address of one MX host, judged for one domain."""

    address: str
    verdict: Verdict
    steps: tuple[Step, ...]
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


# ----------------------------------------------------------------------- the wire


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " / ".join(line for line in self.lines if line)[:300]


class _Garbage(Exception):
    """The peer sent something that is not an SMTP reply."""


class _Lost(Exception):
    """The peer closed or reset the connection."""


class _Abort(Exception):
    """Stop the conversation; ``finding`` says why."""

    def __init__(self, finding: Finding, *, alive: bool) -> None:
        super().__init__(finding.message)
        self.finding = finding
        self.alive = alive


class _StartTLSFailed(_Abort):
    """STARTTLS was refused (the connection is still usable in plaintext) or its handshake
    failed (the connection is not)."""


class _Deferred(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    lines: list[str] = []
    code: int | None = None
    for _ in range(_MAX_REPLY_LINES):
        try:
            raw = await reader.readline()
        except ValueError as exc:  # a line longer than the stream limit
            raise _Garbage("a reply line longer than 8 KiB") from exc
        except (ConnectionError, OSError) as exc:
            raise _Lost(str(exc) or type(exc).__name__) from exc
        if not raw.endswith(b"\n"):
            raise _Lost("the server closed the connection")
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        match = _REPLY.match(text)
        if match is None or (code is not None and int(match.group(1)) != code):
            raise _Garbage(f"not an SMTP reply: {clean(text[:80])!r}")
        code = int(match.group(1))
        lines.append(clean(match.group(3)))  # remote text: no escapes reach a terminal
        if match.group(2) != "-":
            return Reply(code, tuple(lines))
    raise _Garbage(f"a reply of more than {_MAX_REPLY_LINES} lines")


def parse_extensions(reply: Reply) -> frozenset[str]:
    """EHLO keywords (upper case, without parameters); the first line is the greeting."""
    return frozenset(line.split()[0].upper() for line in reply.lines[1:] if line.split())


def make_ssl_contexts(ca_file: Path | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(verifying, opportunistic) client contexts. Both accept TLS 1.0+ so an old
    server is seen and reported rather than silently unreachable."""
    try:
        verifying = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"cannot load the CA file {ca_file}: {getattr(exc, 'reason', None) or exc}",
            key="probe.ca_file",
            hint="give a PEM file with one or more CA certificates",
        ) from None
    # create_default_context's settings without its CA store: loading the system's CAs
    # costs ~80 ms of CPU per context, and a context that verifies nothing never reads them.
    opportunistic = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    opportunistic.check_hostname = False
    opportunistic.verify_mode = ssl.CERT_NONE
    for ctx in (verifying, opportunistic):
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return verifying, opportunistic


@dataclass
class ProbeSettings:
    """How the prober identifies itself and how long it waits."""

    helo: str
    mail_from: str
    timeout: float = 30.0
    slow_step: float = 10.0
    rcpt_retry_wait: float = 5.0
    ca_file: Path | None = None
    clock: Clock = time.monotonic
    sleep: AsyncSleep = asyncio.sleep
    contexts: tuple[ssl.SSLContext, ssl.SSLContext] | None = field(default=None, repr=False)

    def ssl_contexts(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        if self.contexts is None:
            self.contexts = make_ssl_contexts(self.ca_file)
        return self.contexts


class _Conversation:
    """One SMTP conversation; records steps and findings as it goes."""

    def __init__(self, settings: ProbeSettings, host: str, address: str, port: int) -> None:
        self.s = settings
        self.host = host.rstrip(".")
        self.address = address
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.steps: list[Step] = []
        self.findings: list[Finding] = []
        self.tls_problems: list[tuple[str, str]] = []
        self.tls: TLSInfo | None = None
        self.extensions: frozenset[str] = frozenset()
        self.reached_ehlo = False

    # -- timing ------------------------------------------------------------------

    def _ms(self, start: float) -> int:
        return max(0, round((self.s.clock() - start) * 1000))

    def _record(self, name: str, code: int | None, start: float, ok: bool, detail: str) -> int:
        ms = self._ms(start)
        self.steps.append(Step(name, code, ms, ok, detail))
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "smtp step",
                extra={
                    "host": self.host,
                    "address": _join(self.address, self.port),
                    "step": name,
                    "code": code,
                    "ok": ok,
                    "ms": ms,
                },
            )
        if ms > self.s.slow_step * 1000:
            self.findings.append(
                warn("slow-step", f"{name} took {ms / 1000:.1f} s (over {self.s.slow_step:g} s)")
            )
        return ms

    async def _timed(self, name: str, action: Awaitable[Reply], start: float) -> Reply:
        """Run one step (begun at ``start``) under the step timeout; a missing or broken
        reply records the failed step and aborts."""
        try:
            async with asyncio.timeout(self.s.timeout):
                reply = await action
        except TimeoutError:
            self._record(name, None, start, False, f"no reply within {self.s.timeout:g} s")
            raise _Abort(
                fail(f"{name}-timeout", f"no {name} reply within {self.s.timeout:g} s"),
                alive=False,
            ) from None
        except _Garbage as exc:
            self._record(name, None, start, False, str(exc))
            raise _Abort(fail("protocol-error", f"{name}: {exc}"), alive=False) from None
        except (_Lost, ConnectionError, OSError) as exc:
            self._record(name, None, start, False, str(exc))
            raise _Abort(
                fail("connection-lost", f"{name}: connection lost ({exc})"), alive=False
            ) from None
        return reply

    async def _send(self, line: str) -> Reply:
        assert self.reader is not None and self.writer is not None
        if any(c in line for c in "\r\n\0"):
            # The last line of defence for "never DATA": one command per line, always.
            raise ConfigError(f"refusing to send an SMTP command with a line break: {line!r}")
        try:
            self.writer.write(line.encode("utf-8") + b"\r\n")
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _Lost(str(exc) or type(exc).__name__) from exc
        return await _read_reply(self.reader)

    async def command(self, name: str, line: str, ok: Callable[[int], bool]) -> Reply:
        start = self.s.clock()
        reply = await self._timed(name, self._send(line), start)
        self._record(name, reply.code, start, ok(reply.code), reply.text)
        return reply

    # -- phases --------------------------------------------------------------------

    async def connect(self, name: str) -> None:
        start = self.s.clock()
        try:
            async with asyncio.timeout(self.s.timeout):
                self.reader, self.writer = await asyncio.open_connection(
                    self.address, self.port, limit=_LINE_LIMIT
                )
        except TimeoutError:
            self._record(name, None, start, False, "timed out")
            raise _Abort(
                fail("connect-timeout", f"no TCP connection within {self.s.timeout:g} s"),
                alive=False,
            ) from None
        except ConnectionRefusedError:
            self._record(name, None, start, False, "refused")
            raise _Abort(fail("connect-refused", "connection refused"), alive=False) from None
        except OSError as exc:
            self._record(name, None, start, False, str(exc))
            raise _Abort(fail("connect-error", f"cannot connect: {exc}"), alive=False) from None
        self._record(name, None, start, True, "")

    async def banner(self, name: str) -> None:
        assert self.reader is not None
        start = self.s.clock()
        reply = await self._timed(name, _read_reply(self.reader), start)
        ok = reply.code == 220
        self._record(name, reply.code, start, ok, reply.text)
        if not ok:
            raise _Abort(
                fail("banner-rejected", f"the server greets with {reply.code} {reply.text}"),
                alive=True,
            )

    async def ehlo(self, name: str, failure_code: str) -> None:
        reply = await self.command(name, f"EHLO {self.s.helo}", lambda c: c == 250)
        if reply.code != 250:
            raise _Abort(
                fail(failure_code, f"{name.upper()} answered {reply.code} {reply.text}"),
                alive=True,
            )
        self.extensions = parse_extensions(reply)
        self.reached_ehlo = True

    async def starttls(self, name: str, context: ssl.SSLContext) -> None:
        reply = await self.command(name, "STARTTLS", lambda c: c == 220)
        if reply.code != 220:
            raise _StartTLSFailed(
                fail("tls-handshake", f"STARTTLS answered {reply.code} {reply.text}"),
                alive=True,
            )
        assert self.writer is not None
        start = self.s.clock()
        try:
            async with asyncio.timeout(self.s.timeout):
                await self.writer.start_tls(context, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            self._record("tls", None, start, False, str(exc.verify_message or exc))
            raise
        except TimeoutError:
            self._record("tls", None, start, False, "handshake timed out")
            raise _StartTLSFailed(
                fail("tls-handshake", "TLS handshake timed out"), alive=False
            ) from None
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            self._record("tls", None, start, False, str(exc))
            raise _StartTLSFailed(
                fail("tls-handshake", f"TLS handshake failed: {exc}"), alive=False
            ) from None
        self.tls = self._tls_facts(verify_error=None)
        self._record("tls", None, start, True, f"{self.tls.version} {self.tls.cipher}")

    def _tls_facts(self, verify_error: str | None) -> TLSInfo:
        assert self.writer is not None
        obj = self.writer.get_extra_info("ssl_object")
        version = obj.version() or "?"
        cipher = (obj.cipher() or ("?",))[0]
        chain = certs.peer_chain(obj)
        not_after = certs.not_after(chain.certs[0]) if chain.certs else None
        return TLSInfo(version, cipher, verify_error, chain.certs, not_after, chain.complete)

    async def close(self, polite: bool) -> tuple[list[Step], list[Finding]]:
        steps: list[Step] = []
        findings: list[Finding] = []
        if self.writer is None:
            return steps, findings
        if polite and self.reader is not None:
            start = self.s.clock()
            try:
                async with asyncio.timeout(min(self.s.timeout, _QUIT_TIMEOUT)):
                    reply = await self._send("QUIT")
                code: int | None = reply.code
                detail = reply.text
            except (TimeoutError, _Garbage, _Lost, ConnectionError, OSError) as exc:
                code, detail = None, str(exc) or "no reply"
            steps.append(Step("quit", code, self._ms(start), code == 221, detail))
            if code != 221:
                got = f"{code} {detail}" if code else detail
                findings.append(warn("quit-not-221", f"QUIT answered {got}, not 221"))
        self.writer.close()
        try:
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()
        except (TimeoutError, ssl.SSLError, ConnectionError, OSError):
            pass  # the verdict is made; a peer that closes badly changes nothing
        self.writer = None
        self.reader = None
        return steps, findings

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
            self.writer = None
            self.reader = None


def _verify_problem(exc: ssl.SSLCertVerificationError, host: str) -> tuple[str, str]:
    reason = exc.verify_message or exc.reason or str(exc)
    if exc.verify_code == _X509_EXPIRED:
        return "tls-expired", f"the certificate has expired ({reason})"
    if exc.verify_code == _X509_HOSTNAME_MISMATCH:
        return "tls-name-mismatch", f"the certificate does not name {host} ({reason})"
    return "tls-untrusted", f"the certificate chain is not trusted ({reason})"


class Prober:
    """Runs SMTP sessions with the given settings."""

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings

    async def session(
        self, host: str, address: str, port: int, transactions: Sequence[Transaction]
    ) -> Session:
        """Talk to one address of ``host`` and ask the envelope questions of each
        transaction. Never raises for anything the server does; it becomes a finding."""
        conv = _Conversation(self.settings, host, address, port)
        verifying, opportunistic = self.settings.ssl_contexts()
        tx_results: dict[str, TransactionResult] = {}
        alive = False
        try:
            try:
                await self._greet(conv, "")
                alive = True
                if "STARTTLS" in conv.extensions:
                    try:
                        await self._tls(conv, verifying, opportunistic)
                    except _StartTLSFailed as exc:
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
                    conv.tls_problems.append(("starttls-missing", "STARTTLS is not offered"))
                for tx in transactions:
                    tx_results[tx.domain] = await self._transaction(conv, tx)
            except _TransactionAbort as exc:
                tx_results[exc.domain] = exc.result
                conv.findings.append(exc.finding)
                alive = exc.alive
            except _Abort as exc:
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
        conv: _Conversation,
        verifying: ssl.SSLContext,
        opportunistic: ssl.SSLContext,
    ) -> None:
        """STARTTLS with a verified certificate; when verification fails, again on a new
        connection without verification (as a sending MTA without a policy does), then
        EHLO inside TLS. Raises _StartTLSFailed when TLS cannot be had at all."""
        try:
            await conv.starttls("starttls", verifying)
        except ssl.SSLCertVerificationError as exc:
            conv.tls_problems.append(_verify_problem(exc, conv.host))
            conv.abandon()
            # A sending MTA without a policy carries on unverified; so do we, on a fresh
            # connection, to see the rest of the handshake.
            await self._greet(conv, "retry-")
            await conv.starttls("retry-starttls", opportunistic)
            assert conv.tls is not None
            conv.tls = dataclasses.replace(conv.tls, verify_error=conv.tls_problems[-1][1])
        if conv.tls and conv.tls.version in ("TLSv1", "TLSv1.1", "SSLv3"):
            conv.tls_problems.append(
                ("tls-old-version", f"{conv.tls.version} is older than TLS 1.2")
            )
        conv.extensions = frozenset()
        await conv.ehlo("ehlo-tls", "ehlo-tls-rejected")

    async def _greet(self, conv: _Conversation, prefix: str) -> None:
        await conv.connect(f"{prefix}connect")
        await conv.banner(f"{prefix}banner")
        await conv.ehlo(f"{prefix}ehlo", "ehlo-rejected")

    async def _transaction(self, conv: _Conversation, tx: Transaction) -> TransactionResult:
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
        except _Abort as exc:
            # the conversation is over; keep what this domain saw, then let it end
            conv.findings.append(exc.finding)
            result = TransactionResult(tuple(conv.steps), tuple(conv.findings), rcpt_code)
            raise _TransactionAbort(tx.domain, result, exc) from None
        finally:
            conv.steps = outer
            conv.findings = outer_findings

    async def _rcpt_with_retry(self, conv: _Conversation, recipient: str) -> Reply:
        retrying = async_retrying(
            lambda exc: isinstance(exc, _Deferred),
            attempts=2,
            max_wait=self.settings.rcpt_retry_wait,
            sleep=self.settings.sleep,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
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


def _sender_domain_hint(reply: Reply, mail_from: str) -> str | None:
    """A hint when a refusal is about the probe's sender, not the recipient."""
    if not _SENDER_DOMAIN.search(reply.text):
        return None
    domain = mail_from.rpartition("@")[2] or mail_from
    return (
        f"the server rejects the probe's sender domain {domain}, not the recipient: "
        "set [probe] mail_from to an address whose domain resolves (MX or A)"
    )


def _deferral_hint(reply: Reply, mail_from: str) -> str:
    """What a temporary RCPT refusal most likely means."""
    return _sender_domain_hint(reply, mail_from) or "greylisting or postscreen?"


class _TransactionAbort(_Abort):
    def __init__(self, domain: str, result: TransactionResult, cause: _Abort) -> None:
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
