"""Build a canary message and submit it through an MX path over SMTP."""

from __future__ import annotations

import email.utils
import logging
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from email.message import EmailMessage

from mxflip.canary._base import (
    PATH_HEADER,
    SENT_HEADER,
    SYSTEM_CLOCK,
    TOKEN_HEADER,
    VIA_CHOICES,
    Clock,
    require_canary,
)
from mxflip.canary.state import CanaryRecord, canary_store
from mxflip.config import Config, DomainConfig
from mxflip.errors import ConfigError, UsageError
from mxflip.hostport import HostPort
from mxflip.logs import timed
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


LiveReader = Callable[[Sequence[DomainConfig]], dict[str, tuple[RRset | None, str | None]]]


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


def _opportunistic_tls() -> ssl.SSLContext:
    # Like the senders whose experience the canary measures: MTAs encrypt when STARTTLS is
    # offered and do not refuse a certificate they cannot verify (certificate checks are
    # the SMTP probe's job, not the canary's).
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _smtp_error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return f"recipient refused: {code} {_text(text)}"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender refused: {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


def _text(value: bytes | str) -> str:
    """A remote server's reply text, safe to show and store (no terminal escapes)."""
    from mxflip.sanitize import clean

    return clean(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)


def _permanent(exc: BaseException) -> bool:
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = next(iter(exc.recipients.values()))[0]
    return isinstance(code, int) and 500 <= code < 600


def _submit(
    target: HostPort,
    message: EmailMessage,
    mail_from: str,
    rcpt: str,
    *,
    helo: str,
    timeout: float,
) -> str:
    """One SMTP transaction; returns the TLS state. Raises what smtplib raises."""
    with smtplib.SMTP(target.host, target.port, local_hostname=helo, timeout=timeout) as smtp:
        smtp.ehlo()
        tls = "none"
        if smtp.has_extn("starttls"):
            smtp.starttls(context=_opportunistic_tls())
            tls = "starttls"
            smtp.ehlo()
        smtp.send_message(message, from_addr=mail_from, to_addrs=[rcpt])
        return tls


def send_one(
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
    helo = config.probe.helo or socket.getfqdn()
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
                tls = _submit(
                    target,
                    message,
                    mail_from,
                    address,
                    helo=helo,
                    timeout=config.probe.timeout,
                )
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            attempts.append(SendAttempt(mx.host, str(target), _smtp_error(exc)))
            if _permanent(exc):
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


def send_canaries(
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
        live = (live_reader or _observer_reader(config))(domains)
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(domains)))) as pool:
        results = list(
            pool.map(
                lambda d: send_one(config, d, via, live=live.get(d.name), clock=clock), domains
            )
        )
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


def _observer_reader(config: Config) -> LiveReader:
    def read(domains: Sequence[DomainConfig]) -> dict[str, tuple[RRset | None, str | None]]:
        from mxflip.observe import Observer

        observer = Observer(config)
        try:
            return observer.read_provider(domains)
        finally:
            observer.close()

    return read
