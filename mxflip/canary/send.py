"""Build a canary message and submit it through an MX path over SMTP."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage

from mxflip.canary._base import (
    PATH_HEADER,
    SENT_HEADER,
    SYSTEM_CLOCK,
    TOKEN_HEADER,
    VIA_CHOICES,
    require_canary,
)
from mxflip.canary.state import CanaryRecord, canary_store
from mxflip.clock import Clock
from mxflip.config import Config, DomainConfig
from mxflip.errors import ConfigError, UsageError
from mxflip.hostport import HostPort
from mxflip.logs import timed
from mxflip.net.smtp import (
    Abort,
    SMTPSettings,
    StartTLSFailed,
    SubmissionClient,
    helo_name,
    opportunistic_context,
)
from mxflip.records import MX, RRset

_log = logging.getLogger(__name__)

# ----------------------------------------------------------------------- message


def new_token() -> str:
    """A unique, unguessable canary token (hex, so it survives any header folding)."""
    return secrets.token_hex(12)


def build_message(
    *, token: str, domain: str, address: str, mail_from: str, path: str, sent_at: float
) -> EmailMessage:
    """The canary: the token in ``X-Mxflip-Canary`` and the subject, the send time in
    ``X-Mxflip-Canary-Sent`` (RFC 3339) and in ``Date``."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = address
    msg["Subject"] = f"mxflip canary {token}"
    msg["Date"] = email.utils.formatdate(sent_at, usegmt=True)
    msg["Message-ID"] = f"<{token}.canary@mxflip.invalid>"
    msg[TOKEN_HEADER] = token
    msg[SENT_HEADER] = _rfc3339(sent_at)
    msg[PATH_HEADER] = path
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        f"This is a delivery canary sent by mxflip to measure how long mail for {domain}\n"
        f"takes through its {path} path. It is removed automatically when found.\n"
    )
    return msg


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ----------------------------------------------------------------------- sending

#: Submissions in flight at once.
_CONCURRENT = 8


@dataclass(frozen=True)
class SendAttempt:
    """One MX host tried: where it was reached and what went wrong, if anything."""

    host: str
    target: str
    error: str | None = None
    tls: str | None = None  # "starttls" or "none"


@dataclass(frozen=True)
class SendResult:
    """One canary submitted (``ok``) or not, with every host tried."""

    domain: str
    path: str
    via: str
    token: str
    address: str
    sent_at: float
    attempts: tuple[SendAttempt, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def host(self) -> str | None:
        return self.attempts[-1].host if self.ok and self.attempts else None


LiveReader = Callable[
    [Sequence[DomainConfig]], Awaitable[dict[str, tuple[RRset | None, str | None]]]
]


def canary_domains(config: Config, names: Sequence[str]) -> list[DomainConfig]:
    """The named domains (each must have ``canary_address``), or every domain that has
    one."""
    require_canary(config)
    if names:
        chosen = config.select(names)
        for d in chosen:
            if not d.canary_address:
                raise UsageError(
                    f"domain {d.display} has no canary_address",
                    hint=f'add canary_address = "canary@{d.display}" to its table',
                )
        return chosen
    chosen = [d for d in config.domains.values() if d.canary_address]
    if not chosen:
        raise ConfigError(
            "no domain has a canary_address",
            path=str(config.path) if config.path else None,
            hint='add canary_address = "canary@example.com" to a domain or to [defaults]',
        )
    return chosen


def _route(
    domain: DomainConfig, via: str, live: tuple[RRset | None, str | None] | None
) -> tuple[str, list[MX], str | None]:
    """(path label, hosts in the order to try them, error)."""
    if via in ("primary", "backup"):
        return via, _ordered(domain.profile(via)), None
    from mxflip.observe import match_profile

    rrset, error = live or (None, "the provider gave no answer for this domain")
    if error is not None:
        return "live", [], f"cannot read the live MX set: {error}"
    if rrset is None:
        return "live", [], "the domain has no MX records"
    active = match_profile(rrset, domain).active
    path = active if active in ("primary", "backup") else "live"
    return path, _ordered(rrset.records), None


def _ordered(records: frozenset[MX]) -> list[MX]:
    return sorted(records, key=lambda mx: (mx.preference, mx.host))


class _Refused(Exception):
    """The server refused the envelope or the message; ``text`` is what is recorded."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _abort_error(exc: Abort) -> str:
    """What a conversation that stopped records: short, like the reasons an MTA logs."""
    if exc.reply is not None:
        return f"{exc.reply.code} {exc.reply.text}"
    code = exc.finding.code
    if code.endswith("-timeout") or exc.finding.message.endswith("timed out"):
        return "timed out"
    if code == "connect-refused":
        return "Connection refused"
    if code == "connection-lost":
        return "the server closed the connection"
    if isinstance(exc, StartTLSFailed):
        return f"TLS failed: {exc.finding.message.removeprefix('TLS handshake failed: ')}"
    return exc.finding.message


async def _submit(
    target: HostPort,
    message: EmailMessage,
    mail_from: str,
    rcpt: str,
    settings: SMTPSettings,
) -> str:
    """One SMTP transaction; returns the TLS state. Raises :class:`_Refused` for a refused
    envelope or message and :class:`~mxflip.net.smtp.Abort` when the conversation stops."""
    client = SubmissionClient(settings, target.host, target.host, target.port)
    polite = False
    try:
        await client.connect("connect")
        polite = True
        await client.banner("banner")
        await client.ehlo("ehlo", "ehlo-rejected")
        tls = "none"
        if "STARTTLS" in client.extensions:
            # Like the senders whose experience the canary measures: MTAs encrypt when
            # STARTTLS is offered and do not refuse a certificate they cannot verify
            # (certificate checks are the SMTP probe's job, not the canary's).
            await client.starttls("starttls", opportunistic_context())
            tls = "starttls"
            await client.ehlo("ehlo-tls", "ehlo-tls-rejected")
        mail = await client.command("mail", f"MAIL FROM:<{mail_from}>", lambda c: c == 250)
        if mail.code != 250:
            raise _Refused(mail.code, f"sender refused: {mail.code} {mail.text}")
        to = await client.command("rcpt", f"RCPT TO:<{rcpt}>", lambda c: c in (250, 251))
        if to.code not in (250, 251):
            raise _Refused(to.code, f"recipient refused: {to.code} {to.text}")
        done = await client.data(message)
        if done.code != 250:
            raise _Refused(done.code, f"{done.code} {done.text}")
        return tls
    except Abort as exc:
        polite = exc.alive
        raise
    finally:
        if polite:
            await client.close(polite=True)
        else:
            client.abandon()


async def send_one(
    config: Config,
    domain: DomainConfig,
    via: str,
    *,
    live: tuple[RRset | None, str | None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SendResult:
    """Submit one canary for ``domain`` through ``via``: each MX host in preference order,
    once; the first that accepts wins. A permanent (5xx) refusal stops at once. Never
    retries in a loop: the next run is the retry."""
    canary = require_canary(config)
    address = domain.canary_address
    if not address:
        raise UsageError(f"domain {domain.display} has no canary_address")
    mail_from = canary.mail_from or address
    token = new_token()
    path, hosts, error = _route(domain, via, live)
    sent_at = clock.now()
    result = SendResult(domain.display, path, via, token, address, sent_at, (), error)
    if error is not None:
        return result
    message = build_message(
        token=token,
        domain=domain.display,
        address=address,
        mail_from=mail_from,
        path=path,
        sent_at=sent_at,
    )
    settings = _settings(config)
    attempts: list[SendAttempt] = []
    for mx in hosts:
        # [probe.connect] may list several targets per host (probed as its addresses);
        # a canary needs to reach the host once, through the first.
        overrides = config.probe.connect.get(mx.host)
        target = overrides[0] if overrides else HostPort(mx.host.rstrip("."), 25)
        try:
            with timed(
                _log, "canary submit", level=logging.INFO, domain=domain.display, host=str(target)
            ):
                tls = await _submit(target, message, mail_from, address, settings)
        except _Refused as exc:
            attempts.append(SendAttempt(mx.host, str(target), exc.text))
            if 500 <= exc.code < 600:
                break  # permanent: another host of the same domain says the same
            continue
        except Abort as exc:
            attempts.append(SendAttempt(mx.host, str(target), _abort_error(exc)))
            if exc.reply is not None and 500 <= exc.reply.code < 600:
                break
            continue
        attempts.append(SendAttempt(mx.host, str(target), None, tls))
        return replace(result, attempts=tuple(attempts))
    last = attempts[-1]
    return replace(
        result,
        attempts=tuple(attempts),
        error=f"no MX host accepted the canary (last: {last.host.rstrip('.')}: {last.error})",
    )


async def send_canaries(
    config: Config,
    domains: Sequence[DomainConfig],
    via: str,
    *,
    live_reader: LiveReader | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> list[SendResult]:
    """Send one canary per domain, concurrently, and record each in the state file."""
    if via not in VIA_CHOICES:
        raise UsageError(f"--via must be one of {', '.join(VIA_CHOICES)}, not {via!r}")
    live: dict[str, tuple[RRset | None, str | None]] = {}
    if via == "live":
        live = await (live_reader or _observer_reader(config))(domains)
    results = await _send_all(config, domains, via, live, clock)
    require_canary(config)
    store = canary_store(config)
    with store.update() as state:
        for r in results:
            record = CanaryRecord(
                token=r.token,
                domain=r.domain,
                path=r.path,
                via=r.via,
                address=r.address,
                sent_at=r.sent_at,
                status="pending" if r.ok else "send_failed",
                host=r.host,
                tls=r.attempts[-1].tls if r.ok else None,
                error=r.error,
                checked_at=None if r.ok else r.sent_at,
            )
            state.records.append(record)
            if not r.ok:
                state.record_result(record, "send_failed", r.sent_at)
    return results


async def _send_all(
    config: Config,
    domains: Sequence[DomainConfig],
    via: str,
    live: Mapping[str, tuple[RRset | None, str | None]],
    clock: Clock,
) -> list[SendResult]:
    # At most 8 submissions at once, as many as the thread pool this replaced allowed.
    limit = asyncio.Semaphore(_CONCURRENT)

    async def one(d: DomainConfig) -> SendResult:
        async with limit:
            return await send_one(config, d, via, live=live.get(d.name), clock=clock)

    return list(await asyncio.gather(*(one(d) for d in domains)))


def _settings(config: Config) -> SMTPSettings:
    """The SMTP client's settings: the probe's EHLO name and timeout (the envelope sender
    is the canary's own)."""
    helo = helo_name(config.probe.helo)
    return SMTPSettings(helo=helo, mail_from="", timeout=config.probe.timeout)


def _observer_reader(config: Config) -> LiveReader:
    async def read(
        domains: Sequence[DomainConfig],
    ) -> dict[str, tuple[RRset | None, str | None]]:
        from mxflip.observe import Observer

        observer = Observer(config)
        try:
            return await observer.read_provider(domains)
        finally:
            observer.close()

    return read
