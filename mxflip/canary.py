"""Delivery canaries: send a uniquely tagged message through the live MX path, find it in
the destination mailbox, and say how long the path took.

MX and SMTP checks see only whether a proxy *accepts* mail; a canary sees whether the mail
*arrives*, and when. The pieces: :func:`build_message` (a token in a header and the
subject), :func:`send_canaries` (SMTP in threads, STARTTLS when offered, one attempt per
host), :class:`MaildirMailbox` and :class:`ImapMailbox` (find and remove canaries),
:func:`check_canaries` (delay per canary against ``warn_after``/``fail_after``),
:class:`CanaryStore` (what was sent, when, and the last result per domain and path, as
JSON beside the operations journal). Nothing here prints; results are plain values.
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import imaplib
import json
import os
import re
import secrets
import smtplib
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, Protocol

from mxflip.config import CanaryConfig, Config, DomainConfig
from mxflip.errors import ConfigError, ExitCode, MxflipError, UsageError
from mxflip.hostport import HostPort
from mxflip.records import MX, RRset

#: The header that marks a canary; its value is the token (also in the subject).
TOKEN_HEADER = "X-Mxflip-Canary"
SENT_HEADER = "X-Mxflip-Canary-Sent"
PATH_HEADER = "X-Mxflip-Canary-Path"
#: ``--via`` choices: the MX set the provider serves now, or one configured profile.
VIA_CHOICES = ("live", "primary", "backup")
#: A canary's result. ``pending``: not found yet, younger than ``warn_after``.
STATUSES = ("on_time", "late", "missing", "send_failed", "pending")
#: Results that mean the path is not delivering on time.
FAILING = ("late", "missing", "send_failed")
STATE_VERSION = 1
#: Resolved canaries kept in the state file for history (outstanding ones are always kept).
_HISTORY = 200
_TOKEN_RE = re.compile(r"^[0-9a-f]{8,64}$")


class CanaryError(MxflipError):
    """A canary could not be sent, looked for or recorded."""


@dataclass(frozen=True)
class Clock:
    """Wall-clock time and sleeping, injectable so that tests never wait."""

    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


def default_clock() -> Clock:
    """The clock the CLI uses (tests replace this function)."""
    return SYSTEM_CLOCK


# ------------------------------------------------------------------------- state


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/mxflip`` or ``~/.local/state/mxflip`` (shared with the journal)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mxflip"


def state_file(canary: CanaryConfig) -> Path:
    """Where canary state lives: ``[canary] state_file`` or ``canary.json`` in the state
    folder."""
    return canary.state_file or default_state_dir() / "canary.json"


@dataclass
class CanaryRecord:
    """One canary that was sent (or could not be): stored in the state file."""

    token: str
    domain: str  # display form, no trailing dot
    path: str  # "primary", "backup" or "live" (a set that is neither profile)
    via: str
    address: str
    sent_at: float
    status: str = "pending"
    host: str | None = None
    tls: str | None = None
    arrived_at: float | None = None
    delay: float | None = None
    checked_at: float | None = None
    error: str | None = None

    @property
    def outstanding(self) -> bool:
        """Still worth looking for: not found yet (a "missing" canary can still arrive,
        late — which is exactly what a delaying proxy does)."""
        return self.status in ("pending", "late", "missing") and self.arrived_at is None


@dataclass
class PathSummary:
    """The last result for one domain and path, and how long it has been failing."""

    domain: str
    path: str
    status: str
    checked_at: float
    sent_at: float
    delay: float | None = None
    token: str | None = None
    last_success_at: float | None = None
    #: Send time of the first canary in the current run of late/missing/failed ones.
    failing_since: float | None = None


@dataclass
class CanaryState:
    """Everything in the state file. No secret is ever stored here."""

    records: list[CanaryRecord] = field(default_factory=list)
    paths: list[PathSummary] = field(default_factory=list)

    def summary(self, domain: str, path: str) -> PathSummary | None:
        for s in self.paths:
            if s.domain == domain and s.path == path:
                return s
        return None

    def record_result(self, record: CanaryRecord, status: str, now: float) -> None:
        """Fold one canary's result into the per-path summary."""
        old = self.summary(record.domain, record.path)
        if old is not None and record.sent_at < old.sent_at and status != "on_time":
            # An older canary turning up late says nothing newer than what we know.
            return
        new = PathSummary(
            domain=record.domain,
            path=record.path,
            status=status,
            checked_at=now,
            sent_at=record.sent_at,
            delay=record.delay if record.delay is not None else now - record.sent_at,
            token=record.token,
            last_success_at=old.last_success_at if old else None,
            failing_since=old.failing_since if old else None,
        )
        if status == "on_time":
            if old is not None and record.sent_at < old.sent_at:
                return
            new.last_success_at = record.arrived_at or now
            new.failing_since = None
        elif status in FAILING:
            new.failing_since = min(x for x in (new.failing_since, record.sent_at) if x is not None)
        else:
            return
        self.paths = [s for s in self.paths if (s.domain, s.path) != (new.domain, new.path)]
        self.paths.append(new)
        self.paths.sort(key=lambda s: (s.domain, s.path))


class CanaryStore:
    """The JSON state file, written atomically, locked while read-modify-written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> CanaryState:
        """The stored state; empty when the file does not exist yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return CanaryState()
        except OSError as exc:
            raise CanaryError(f"cannot read canary state {self.path}: {exc.strerror}") from None
        try:
            raw = json.loads(text)
            return CanaryState(
                records=[CanaryRecord(**r) for r in raw.get("canaries", [])],
                paths=[PathSummary(**p) for p in raw.get("paths", [])],
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise CanaryError(
                f"canary state {self.path} is damaged: {exc}",
                hint="move it aside; the next run starts a fresh history",
            ) from None

    def save(self, state: CanaryState) -> None:
        """Write atomically (temporary file, then rename), readable by the owner only."""
        outstanding = [r for r in state.records if r.outstanding]
        done = [r for r in state.records if not r.outstanding][-_HISTORY:]
        doc = {
            "version": STATE_VERSION,
            "canaries": [asdict(r) for r in sorted(outstanding + done, key=_by_sent)],
            "paths": [asdict(p) for p in state.paths],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _atomic_write(self.path, json.dumps(doc, indent=1) + "\n", mode=0o600)
        except OSError as exc:
            raise CanaryError(
                f"cannot write canary state {self.path}: {exc.strerror or exc}",
                hint="set [canary] state_file to a writable place",
            ) from None

    @contextlib.contextmanager
    def update(self) -> Iterator[CanaryState]:
        """Load, let the caller change, save; one process at a time."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock = open(self.path.with_name(self.path.name + ".lock"), "a")  # noqa: SIM115
        except OSError as exc:
            raise CanaryError(
                f"cannot lock canary state {self.path}: {exc.strerror or exc}"
            ) from None
        with lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            state = self.load()
            yield state
            self.save(state)


def _by_sent(r: CanaryRecord) -> float:
    return r.sent_at


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_textfile(path: Path, text: str) -> None:
    """Write a node_exporter textfile atomically, so the collector never reads half a
    file."""
    try:
        _atomic_write(path, text)
    except OSError as exc:
        raise CanaryError(f"cannot write {path}: {exc.strerror or exc}") from None


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
    tls: str | None = None  # "verified", "unverified" or "none"


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


def require_canary(config: Config) -> CanaryConfig:
    """The ``[canary]`` table, or a usage error saying how to add one."""
    if config.canary is None:
        raise ConfigError(
            "no [canary] section",
            path=str(config.path) if config.path else None,
            hint='add [canary] with mailbox = "maildir" and maildir = "…", or mailbox = '
            '"imap" and imap_host = "…"',
        )
    return config.canary


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


def _tls_context(ca_file: Path | None) -> tuple[ssl.SSLContext, str]:
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file)), "verified"
    # Like the senders whose experience we measure: MTAs encrypt opportunistically and do
    # not refuse a certificate they cannot verify. Set [canary] ca_file to insist.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx, "unverified"


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
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


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
    ca_file: Path | None,
) -> str:
    """One SMTP transaction; returns the TLS state. Raises what smtplib raises."""
    with smtplib.SMTP(target.host, target.port, local_hostname=helo, timeout=timeout) as smtp:
        smtp.ehlo()
        tls = "none"
        if smtp.has_extn("starttls"):
            ctx, tls = _tls_context(ca_file)
            smtp.starttls(context=ctx)
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
        target = config.probe.connect.get(mx.host) or HostPort(mx.host.rstrip("."), 25)
        try:
            tls = _submit(
                target,
                message,
                mail_from,
                address,
                helo=helo,
                timeout=config.probe.timeout,
                ca_file=canary.ca_file,
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
    store = CanaryStore(state_file(require_canary(config)))
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


# ----------------------------------------------------------------------- mailboxes


@dataclass(frozen=True)
class FoundCanary:
    """A canary message in the mailbox: its token and when the mailbox received it."""

    token: str
    arrived_at: float
    ref: str  # IMAP UID or Maildir file path


class Mailbox(Protocol):
    """Where canaries arrive."""

    def find(self) -> list[FoundCanary]:
        """Every canary message in the mailbox."""

    def delete(self, found: Sequence[FoundCanary]) -> None:
        """Remove these messages."""

    def close(self) -> None: ...


def _token_of(headers: bytes) -> str | None:
    msg = BytesHeaderParser().parsebytes(headers)
    value = msg.get(TOKEN_HEADER)
    if value is None:
        return None
    token = str(value).strip().lower()
    return token if _TOKEN_RE.match(token) else None


class MaildirMailbox:
    """A local Maildir (``new/`` and ``cur/``). The arrival time is the file's
    modification time, as Dovecot reports it for INTERNALDATE."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def find(self) -> list[FoundCanary]:
        if not (self.path / "new").is_dir() and not (self.path / "cur").is_dir():
            raise CanaryError(
                f"{self.path} is not a Maildir (no new/ or cur/ folder)",
                hint="check [canary] maildir",
            )
        found = []
        for sub in ("new", "cur"):
            folder = self.path / sub
            try:
                entries = sorted(folder.iterdir())
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise CanaryError(f"cannot read {folder}: {exc.strerror}") from None
            for entry in entries:
                try:
                    with entry.open("rb") as f:
                        head = _read_headers(f)
                    mtime = entry.stat().st_mtime
                except (FileNotFoundError, IsADirectoryError):
                    continue  # moved or removed by the mail server meanwhile
                except OSError as exc:
                    raise CanaryError(f"cannot read {entry}: {exc.strerror}") from None
                token = _token_of(head)
                if token:
                    found.append(FoundCanary(token, mtime, str(entry)))
        return found

    def delete(self, found: Sequence[FoundCanary]) -> None:
        for f in found:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f.ref)

    def close(self) -> None:
        pass


def _read_headers(f: Any, limit: int = 256 * 1024) -> bytes:
    lines = []
    size = 0
    for line in f:
        if line in (b"\n", b"\r\n") or size > limit:
            break
        lines.append(line)
        size += len(line)
    return b"".join(lines)


_FETCH_RE = re.compile(rb"UID (\d+)")


class ImapMailbox:
    """An IMAP folder over TLS (implicit TLS, as on port 993). Credentials come from the
    environment variables the configuration names; they are never stored or shown."""

    def __init__(self, canary: CanaryConfig, *, timeout: float = 30.0) -> None:
        assert canary.imap_host is not None
        self.host = canary.imap_host
        self.port = canary.imap_port
        self.folder = canary.imap_folder
        self.user_env = canary.imap_user_env
        self.password_env = canary.imap_password_env
        self.ca_file = canary.ca_file
        self.timeout = timeout
        self._imap: imaplib.IMAP4_SSL | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _credentials(self) -> tuple[str, str]:
        user = os.environ.get(self.user_env)
        password = os.environ.get(self.password_env)
        for name, value in ((self.user_env, user), (self.password_env, password)):
            if not value:
                raise ConfigError(
                    f"environment variable {name} is not set",
                    hint="it holds the IMAP login for the canary mailbox "
                    "([canary] imap_user_env / imap_password_env)",
                )
        assert user is not None and password is not None
        return user, password

    def _connect(self) -> imaplib.IMAP4_SSL:
        if self._imap is not None:
            return self._imap
        user, password = self._credentials()
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        try:
            imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=ctx, timeout=self.timeout)
        except ssl.SSLError as exc:
            raise CanaryError(
                f"IMAP server {self.where}: TLS failed: {exc.reason or exc}",
                hint="set [canary] ca_file if the server's certificate is from a private CA",
            ) from None
        except OSError as exc:
            raise CanaryError(
                f"cannot reach IMAP server {self.where}: {_smtp_error(exc)}"
            ) from None
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error:
            with contextlib.suppress(Exception):
                imap.shutdown()
            # The server's text is not repeated: some servers echo what was sent.
            raise CanaryError(
                f"IMAP server {self.where} refused the login for the user in ${self.user_env}",
                hint=f"check ${self.user_env} and ${self.password_env}",
            ) from None
        self._imap = imap
        return imap

    def _call(self, what: str, fn: Callable[[], tuple[str, list[Any]]]) -> list[Any]:
        try:
            typ, data = fn()
        except (imaplib.IMAP4.error, OSError) as exc:
            self._drop()
            raise CanaryError(f"IMAP server {self.where}: {what} failed: {exc}") from None
        if typ != "OK":
            raise CanaryError(f"IMAP server {self.where}: {what} failed: {data!r}")
        return data

    def _drop(self) -> None:
        if self._imap is not None:
            with contextlib.suppress(Exception):
                self._imap.shutdown()
        self._imap = None

    def find(self) -> list[FoundCanary]:
        imap = self._connect()
        # Selecting again each time makes the server report mail that arrived meanwhile.
        self._call(f"SELECT {self.folder}", lambda: imap.select(_quote(self.folder)))
        data = self._call("SEARCH", lambda: imap.uid("SEARCH", "HEADER", TOKEN_HEADER, '""'))
        uids = b" ".join(d for d in data if d).split()
        if not uids:
            return []
        fields = f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({TOKEN_HEADER})])"
        fetched = self._call("FETCH", lambda: imap.uid("FETCH", b",".join(uids).decode(), fields))
        found = []
        for item in fetched:
            if not isinstance(item, tuple):
                continue
            meta, headers = item
            uid = _FETCH_RE.search(meta)
            when = imaplib.Internaldate2tuple(meta)
            token = _token_of(headers)
            if uid and when and token:
                found.append(FoundCanary(token, time.mktime(when), uid.group(1).decode()))
        return found

    def delete(self, found: Sequence[FoundCanary]) -> None:
        if not found:
            return
        imap = self._connect()
        uids = ",".join(f.ref for f in found)
        self._call("STORE", lambda: imap.uid("STORE", uids, "+FLAGS.SILENT", r"(\Deleted)"))
        if "UIDPLUS" in imap.capabilities:
            self._call("UID EXPUNGE", lambda: imap.uid("EXPUNGE", uids))
        else:
            self._call("EXPUNGE", imap.expunge)

    def close(self) -> None:
        if self._imap is not None:
            with contextlib.suppress(Exception):
                self._imap.logout()
        self._imap = None


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_mailbox(config: Config) -> Mailbox:
    """The configured mailbox reader."""
    canary = require_canary(config)
    if canary.mailbox == "imap":
        return ImapMailbox(canary, timeout=config.probe.timeout)
    assert canary.maildir is not None
    return MaildirMailbox(canary.maildir)


# ----------------------------------------------------------------------- checking


@dataclass(frozen=True)
class CanaryOutcome:
    """One canary's result in a check."""

    domain: str
    path: str
    token: str
    status: str
    address: str
    sent_at: float
    arrived_at: float | None
    #: Seconds from sending to arrival; for a canary not found yet, its age.
    delay: float
    host: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class CheckReport:
    """The result of ``mxflip canary check`` (or of the check in ``run``)."""

    checked_at: float
    warn_after: float
    fail_after: float
    outcomes: tuple[CanaryOutcome, ...]
    deleted: int = 0
    sent: tuple[SendResult, ...] = ()

    @property
    def exit_code(self) -> ExitCode:
        """0 on time (or still within warn_after), 1 late, 3 missing or not sent."""
        statuses = {o.status for o in self.outcomes}
        if statuses & {"missing", "send_failed"}:
            return ExitCode.FAILURE
        if "late" in statuses:
            return ExitCode.ATTENTION
        return ExitCode.OK


def classify(delay: float, arrived: bool, warn_after: float, fail_after: float) -> str:
    """``on_time`` / ``late`` for an arrived canary; ``pending`` / ``late`` / ``missing``
    for one not found yet, by its age."""
    if arrived:
        return "on_time" if delay <= warn_after else "late"
    if delay < warn_after:
        return "pending"
    return "late" if delay < fail_after else "missing"


def check_canaries(
    config: Config,
    *,
    mailbox: Mailbox | None = None,
    domains: Sequence[str] = (),
    delete: bool | None = None,
    clock: Clock = SYSTEM_CLOCK,
    only: Sequence[str] = (),
) -> CheckReport:
    """Look for every outstanding canary (of ``domains``, default all; of the tokens in
    ``only`` when given), record each result, remove the ones found.

    A canary found counts from its send time to its arrival in the mailbox; one not found
    counts by its age: pending before ``warn_after``, late before ``fail_after``, missing
    after. A missing canary stays watched for a retry window in case it turns up late.
    """
    canary = require_canary(config)
    delete = canary.delete_after_check if delete is None else delete
    wanted = {d.rstrip(".").lower() for d in domains}
    own_box = mailbox is None
    box = mailbox or open_mailbox(config)
    store = CanaryStore(state_file(canary))
    try:
        with store.update() as state:
            now = clock.now()
            watch = [
                r
                for r in state.records
                if r.outstanding
                and (not wanted or r.domain in wanted)
                and (not only or r.token in only)
                and now - r.sent_at < 2 * canary.retry_window
            ]
            if not watch:
                return CheckReport(now, canary.warn_after, canary.fail_after, ())
            found = {f.token: f for f in box.find()}
            now = clock.now()
            outcomes = []
            arrived: list[FoundCanary] = []
            for r in sorted(watch, key=_by_sent):
                f = found.get(r.token)
                if f is not None:
                    arrived.append(f)
                    r.arrived_at = f.arrived_at
                    # Clocks differ between this host and the mailbox: never below zero.
                    r.delay = max(0.0, f.arrived_at - r.sent_at)
                    status = classify(r.delay, True, canary.warn_after, canary.fail_after)
                else:
                    status = classify(now - r.sent_at, False, canary.warn_after, canary.fail_after)
                if r.status == "missing" and status == "missing":
                    # Reported once already; watched quietly in case it turns up late,
                    # so that a recovered path is not reported as failing for days.
                    continue
                r.status = status
                r.checked_at = now
                state.record_result(r, status, now)
                outcomes.append(
                    CanaryOutcome(
                        domain=r.domain,
                        path=r.path,
                        token=r.token,
                        status=status,
                        address=r.address,
                        sent_at=r.sent_at,
                        arrived_at=r.arrived_at,
                        delay=r.delay if r.delay is not None else now - r.sent_at,
                        host=r.host,
                    )
                )
            if delete and arrived:
                box.delete(arrived)
            return CheckReport(
                now,
                canary.warn_after,
                canary.fail_after,
                tuple(outcomes),
                deleted=len(arrived) if delete else 0,
            )
    finally:
        if own_box:
            box.close()


# ----------------------------------------------------------------------- run


@dataclass(frozen=True)
class WaitProgress:
    """Reported while ``run`` waits: how many of the canaries have arrived."""

    arrived: int
    total: int
    elapsed: float
    wait: float


def wait_for(
    mailbox: Mailbox,
    tokens: Sequence[str],
    *,
    wait: float,
    poll_interval: float,
    clock: Clock = SYSTEM_CLOCK,
    progress: Callable[[WaitProgress], None] | None = None,
) -> set[str]:
    """Poll the mailbox until every token has arrived or ``wait`` seconds have passed
    (bounded: at most ``wait / poll_interval + 1`` looks). Returns the tokens found."""
    start = clock.now()
    wanted = set(tokens)
    seen: set[str] = set()
    looks = int(wait / poll_interval) + 2
    for _ in range(looks):
        seen = wanted & {f.token for f in mailbox.find()}
        elapsed = clock.now() - start
        if progress:
            progress(WaitProgress(len(seen), len(wanted), elapsed, wait))
        if seen == wanted or elapsed >= wait:
            break
        clock.sleep(min(poll_interval, wait - elapsed))
    return seen


def run_canaries(
    config: Config,
    domains: Sequence[DomainConfig],
    via: str,
    *,
    wait: float | None = None,
    live_reader: LiveReader | None = None,
    mailbox: Mailbox | None = None,
    clock: Clock = SYSTEM_CLOCK,
    progress: Callable[[WaitProgress], None] | None = None,
) -> CheckReport:
    """Send, wait (bounded; default ``fail_after``), check: for cron or CI.

    The check also covers canaries still outstanding from earlier runs of these domains.
    """
    canary = require_canary(config)
    sent = send_canaries(config, domains, via, live_reader=live_reader, clock=clock)
    tokens = [s.token for s in sent if s.ok]
    own_box = mailbox is None
    box = mailbox or open_mailbox(config)
    try:
        if tokens:
            wait_for(
                box,
                tokens,
                wait=canary.fail_after if wait is None else wait,
                poll_interval=canary.poll_interval,
                clock=clock,
                progress=progress,
            )
        report = check_canaries(
            config, mailbox=box, domains=[d.display for d in domains], clock=clock
        )
    finally:
        if own_box:
            box.close()
    failed = tuple(
        CanaryOutcome(
            domain=s.domain,
            path=s.path,
            token=s.token,
            status="send_failed",
            address=s.address,
            sent_at=s.sent_at,
            arrived_at=None,
            delay=0.0,
            error=s.error,
        )
        for s in sent
        if not s.ok
    )
    return replace(report, outcomes=failed + report.outcomes, sent=tuple(sent))


# ----------------------------------------------------------------------- status


@dataclass(frozen=True)
class CanaryStatus:
    """The last canary result for one domain and path, as ``mxflip status`` shows it."""

    summary: PathSummary
    #: The primary path has been late or failing for longer than ``fail_after``.
    alert: bool
    failing_since: float | None
    failing_for: float | None
    #: Seconds until typical senders' retry windows run out (negative: already over).
    retry_left: float | None


def canary_status(
    config: Config, domains: Sequence[DomainConfig], *, clock: Clock = SYSTEM_CLOCK
) -> dict[str, list[CanaryStatus]]:
    """Per domain (display name), the last result of each path from the state file.

    Canaries still outstanding count too: one sent to the primary path long ago and never
    found makes the path failing even if nobody ran ``check`` since.
    """
    if config.canary is None:
        return {}
    canary = config.canary
    state = CanaryStore(state_file(canary)).load()
    now = clock.now()
    names = {d.display for d in domains}
    out: dict[str, list[CanaryStatus]] = {}
    for s in state.paths:
        if s.domain in names:
            out.setdefault(s.domain, []).append(_path_status(s, state, canary, now))
    # Outstanding canaries on a path that has no summary yet.
    for r in state.records:
        if r.domain in names and r.outstanding and state.summary(r.domain, r.path) is None:
            status = classify(now - r.sent_at, False, canary.warn_after, canary.fail_after)
            if status != "pending" and not any(
                c.summary.path == r.path for c in out.get(r.domain, [])
            ):
                summary = PathSummary(
                    r.domain, r.path, status, now, r.sent_at, now - r.sent_at, r.token
                )
                summary.failing_since = r.sent_at
                out.setdefault(r.domain, []).append(_path_status(summary, state, canary, now))
    return out


def _path_status(
    s: PathSummary, state: CanaryState, canary: CanaryConfig, now: float
) -> CanaryStatus:
    failing_since = s.failing_since
    if failing_since is None:
        # An outstanding canary, sent after the last result, older than warn_after.
        late = [
            r.sent_at
            for r in state.records
            if r.domain == s.domain
            and r.path == s.path
            and r.outstanding
            and now - r.sent_at >= canary.warn_after
            and r.sent_at > s.sent_at
        ]
        if late:
            failing_since = min(late)
            age = now - failing_since
            s = replace(
                s,
                status=classify(age, False, canary.warn_after, canary.fail_after),
                delay=age,
            )
    if failing_since is None:
        return CanaryStatus(s, False, None, None, None)
    failing_for = now - failing_since
    alert = s.path == "primary" and failing_for >= canary.fail_after
    left = failing_since + canary.retry_window - now
    return CanaryStatus(s, alert, failing_since, failing_for, left)
