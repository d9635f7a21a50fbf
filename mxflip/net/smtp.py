"""The one SMTP client of mxflip (asyncio): the readiness probe's handshakes and the
canary's submissions both talk through it.

:class:`SMTPClient` walks a conversation step by step (connect, banner, EHLO, STARTTLS,
any envelope command, QUIT), timing every step as an :class:`SMTPStep` and turning what
goes wrong into findings or an :class:`Abort`. It cannot send DATA (or BDAT): the probe
promises never to deliver mail, so the one class that can, :class:`SubmissionClient`, is
used only by the canary. The EHLO name is :func:`helo_name`, for both.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import functools
import hashlib
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType

from mxflip import certs
from mxflip.errors import ConfigError
from mxflip.findings import Finding, fail, warn
from mxflip.net.starttls import PreparedTLS, TLSStream, prepare_tls, start_tls
from mxflip.retry import AsyncSleep
from mxflip.sanitize import clean

#: Monotonic seconds, for step timings (injectable so tests control "slow").
Timer = Callable[[], float]

_log = logging.getLogger(__name__)
#: A reply line is three digits 2xx-5xx, then " ", "-" or its end (RFC 5321 §4.2).
_DIGITS = frozenset("0123456789")
_SEPARATORS = frozenset({"", " ", "-"})
_MAX_REPLY_LINES = 100
_LINE_LIMIT = 8192
_QUIT_TIMEOUT = 5.0
_X509_EXPIRED = 10
_X509_HOSTNAME_MISMATCH = 62
#: Commands that hand the server a message. Only :class:`SubmissionClient` sends one.
_MESSAGE_VERBS = frozenset({"DATA", "BDAT"})


def helo_name(configured: str | None = None) -> str:
    """The EHLO name: ``[probe] helo`` when set, else this machine's FQDN (lower case),
    else ``localhost.localdomain`` when the machine has no dotted name."""
    if configured:
        return configured
    name = socket.getfqdn().rstrip(".").lower()
    return name if "." in name else "localhost.localdomain"


@dataclass(frozen=True)
class SMTPStep:
    """One timed step of a conversation: its reply code (None when there was no reply)."""

    name: str
    code: int | None
    ms: int
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class SMTPReply:
    """One SMTP reply: its code and its lines (a DNS reply is ``mxflip.net.dns.Reply``)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " / ".join(line for line in self.lines if line)[:300]


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


class ProtocolError(Exception):
    """The peer sent something that is not an SMTP reply."""


class ConnectionLost(Exception):
    """The peer closed or reset the connection."""


class Abort(Exception):
    """Stop the conversation; ``finding`` says why; ``alive`` whether QUIT is still
    possible; ``reply`` the server's refusal, when it was one."""

    def __init__(self, finding: Finding, *, alive: bool, reply: SMTPReply | None = None) -> None:
        super().__init__(finding.message)
        self.finding = finding
        self.alive = alive
        self.reply = reply


class StartTLSFailed(Abort):
    """STARTTLS was refused (the connection is still usable in plaintext) or its handshake
    failed (the connection is not)."""


async def read_reply(reader: asyncio.StreamReader | TLSStream) -> SMTPReply:
    lines: list[str] = []
    code: int | None = None
    for _ in range(_MAX_REPLY_LINES):
        try:
            raw = await reader.readline()
        except ValueError as exc:  # a line longer than the stream limit
            raise ProtocolError("a reply line longer than 8 KiB") from exc
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(str(exc) or type(exc).__name__) from exc
        if not raw.endswith(b"\n"):
            raise ConnectionLost("the server closed the connection")
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        # Checked by hand, not by a regex: a session reads ~10 replies (tests compare
        # this with the regex ^([2-5][0-9][0-9])([ -]|$)(.*)$ it replaced).
        head, sep = text[:3], text[3:4]
        if not (
            len(head) == 3
            and head[0] in "2345"
            and head[1] in _DIGITS
            and head[2] in _DIGITS
            and sep in _SEPARATORS
        ) or (code is not None and int(head) != code):
            raise ProtocolError(f"not an SMTP reply: {clean(text[:80])!r}")
        code = int(head)
        lines.append(clean(text[4:]))  # remote text: no escapes reach a terminal
        if sep != "-":
            return SMTPReply(code, tuple(lines))
    raise ProtocolError(f"a reply of more than {_MAX_REPLY_LINES} lines")


def parse_extensions(reply: SMTPReply) -> frozenset[str]:
    """EHLO keywords (upper case, without parameters); the first line is the greeting."""
    return frozenset(line.split()[0].upper() for line in reply.lines[1:] if line.split())


def make_ssl_contexts(ca_file: Path | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(verifying, opportunistic) client contexts. Both accept TLS 1.0+ so an old
    server is seen and reported rather than silently unreachable."""
    return verifying_context(ca_file), opportunistic_context()


def verifying_context(ca_file: Path | None) -> ssl.SSLContext:
    """The client context that verifies against ``ca_file`` (None: the system's CAs).

    Built once per CA file *as it is now*: loading a CA store costs ~80 ms of CPU, and
    ``watch`` checks every round, so the context is kept while the file (or the system
    store's file and folder) is unchanged, and built again once it changes — a CA file
    replaced before a SIGHUP, or the system store updated under a long-running watch. A
    context holds no per-connection state and is never changed once built."""
    cafile = str(ca_file) if ca_file is not None else None
    if cafile is not None:
        where: tuple[str | None, ...] = (cafile,)
    else:
        paths = ssl.get_default_verify_paths()
        where = (paths.cafile, paths.capath)
    return _verifying_context(cafile, tuple(_stamp(w) for w in where))


def _stamp(path: str | None) -> tuple[int, int, int, int] | None:
    """What changes when a file is rewritten or replaced (None: absent)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=8)
def _verifying_context(cafile: str | None, _stamps: object) -> ssl.SSLContext:
    # ``_stamps`` only keys the cache: a changed CA file is a new entry, built afresh.
    try:
        verifying = ssl.create_default_context(cafile=cafile)
    except (ssl.SSLError, OSError) as exc:  # not cached: the next check tries again
        raise ConfigError(
            f"cannot load the CA file {cafile}: {getattr(exc, 'reason', None) or exc}",
            key="probe.ca_file",
            hint="give a PEM file with one or more CA certificates",
        ) from None
    verifying.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return verifying


@functools.cache
def opportunistic_context() -> ssl.SSLContext:
    """The client context that encrypts without verifying (what MTAs do by default), one
    per process: it holds no per-connection state and is never changed once built.

    create_default_context's settings without its CA store: loading the system's CAs
    costs ~80 ms of CPU per context, and a context that verifies nothing never reads them.
    """
    opportunistic = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    opportunistic.check_hostname = False
    opportunistic.verify_mode = ssl.CERT_NONE
    opportunistic.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return opportunistic


@dataclass
class SMTPSettings:
    """How the client identifies itself and how long it waits (``mail_from``,
    ``rcpt_retry_wait`` and ``sleep`` are the probe's envelope settings)."""

    helo: str
    mail_from: str
    timeout: float = 30.0
    slow_step: float = 10.0
    rcpt_retry_wait: float = 5.0
    ca_file: Path | None = None
    timer: Timer = time.monotonic
    sleep: AsyncSleep = asyncio.sleep
    contexts: tuple[ssl.SSLContext, ssl.SSLContext] | None = field(default=None, repr=False)

    def ssl_contexts(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        if self.contexts is None:
            self.contexts = make_ssl_contexts(self.ca_file)
        return self.contexts


def verify_problem(exc: ssl.SSLCertVerificationError, host: str) -> tuple[str, str]:
    """(finding code, message) for a certificate that did not verify."""
    reason = exc.verify_message or exc.reason or str(exc)
    if exc.verify_code == _X509_EXPIRED:
        return "tls-expired", f"the certificate has expired ({reason})"
    if exc.verify_code == _X509_HOSTNAME_MISMATCH:
        return "tls-name-mismatch", f"the certificate does not name {host} ({reason})"
    return "tls-untrusted", f"the certificate chain is not trusted ({reason})"


class StepTimeout:
    """The step timeouts of one conversation, as ``asyncio.timeout()`` gives them, but with
    one timer for the whole conversation instead of one per step.

    A check takes about a dozen steps per address, and ``asyncio.timeout()`` schedules and
    cancels a timer for each: with thousands of sessions in flight that was a quarter of
    the probe's CPU beyond the dialogue itself (``bench/bench_check.py --plain``). Here the
    timer is armed once; when it fires before the running step's deadline (the deadline
    moves on with every step) it is armed again for that deadline, so a conversation of
    quick steps costs one timer every ``timeout`` seconds. A step that outlives its
    deadline has its task cancelled, and leaving the step turns that cancellation into
    :class:`TimeoutError` exactly as ``asyncio.timeout()`` does; a cancellation from
    anywhere else passes through. Use: ``async with steps(seconds): ...``, one step at a
    time; :meth:`close` when the conversation ends.
    """

    __slots__ = ("_cancelling", "_deadline", "_delay", "_expired", "_handle", "_loop", "_task")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        #: Loop time by which the running step must end; None between steps.
        self._deadline: float | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False
        self._delay = 0.0

    def __call__(self, delay: float) -> StepTimeout:
        self._delay = delay
        return self

    async def __aenter__(self) -> None:
        if self._deadline is not None:
            raise RuntimeError("step timeouts do not nest")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a step timeout must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        deadline = self._deadline = loop.time() + self._delay
        handle = self._handle
        if handle is None or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(deadline, self._fire)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._deadline = None
        if self._expired:
            self._expired = False
            assert self._task is not None
            # as asyncio.timeout(): ours when no other cancellation was asked for meanwhile
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _fire(self) -> None:
        self._handle = None
        deadline, loop, task = self._deadline, self._loop, self._task
        if deadline is None or loop is None or task is None or self._expired:
            return  # between steps: the next step arms the timer again
        if loop.time() < deadline:
            self._handle = loop.call_at(deadline, self._fire)
            return
        self._expired = True
        task.cancel()

    def close(self) -> None:
        """Drop the timer (the conversation is over, or starts again on a new connection)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class SMTPClient:
    """One SMTP conversation with one address; records steps and findings as it goes.
    Never sends a message: see :class:`SubmissionClient`."""

    def __init__(self, settings: SMTPSettings, host: str, address: str, port: int) -> None:
        self.s = settings
        self.host = host.rstrip(".")
        self.address = address
        self.port = port
        # plain streams, then one TLSStream for both after STARTTLS
        self.reader: asyncio.StreamReader | TLSStream | None = None
        self.writer: asyncio.StreamWriter | TLSStream | None = None
        self.steps: list[SMTPStep] = []
        self.findings: list[Finding] = []
        self.tls_problems: list[tuple[str, str]] = []
        self.tls: TLSInfo | None = None
        self.extensions: frozenset[str] = frozenset()
        self.reached_ehlo = False
        self._step_timeout = StepTimeout()
        #: STARTTLS's session, first flight built ahead (prepare_starttls); used once.
        self._prepared: PreparedTLS | None = None

    # -- timing ------------------------------------------------------------------

    def _ms(self, start: float) -> int:
        return max(0, round((self.s.timer() - start) * 1000))

    def _record(self, name: str, code: int | None, start: float, ok: bool, detail: str) -> int:
        ms = self._ms(start)
        self.steps.append(SMTPStep(name, code, ms, ok, detail))
        if _log.isEnabledFor(logging.DEBUG):
            address = f"[{self.address}]" if ":" in self.address else self.address
            _log.debug(
                "smtp step",
                extra={
                    "host": self.host,
                    "address": f"{address}:{self.port}",
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

    async def _timed(self, name: str, action: Awaitable[SMTPReply], start: float) -> SMTPReply:
        """Run one step (begun at ``start``) under the step timeout; a missing or broken
        reply records the failed step and aborts."""
        try:
            async with self._step_timeout(self.s.timeout):
                reply = await action
        except TimeoutError:
            self._record(name, None, start, False, f"no reply within {self.s.timeout:g} s")
            raise Abort(
                fail(f"{name}-timeout", f"no {name} reply within {self.s.timeout:g} s"),
                alive=False,
            ) from None
        except ProtocolError as exc:
            self._record(name, None, start, False, str(exc))
            raise Abort(fail("protocol-error", f"{name}: {exc}"), alive=False) from None
        except (ConnectionLost, ConnectionError, OSError) as exc:
            self._record(name, None, start, False, str(exc))
            raise Abort(
                fail("connection-lost", f"{name}: connection lost ({exc})"), alive=False
            ) from None
        return reply

    async def _write(self, data: bytes) -> None:
        assert self.writer is not None
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(str(exc) or type(exc).__name__) from exc

    async def _send(self, line: str) -> SMTPReply:
        assert self.reader is not None and self.writer is not None
        if "\r" in line or "\n" in line or "\0" in line:
            # The last line of defence for "never DATA": one command per line, always.
            raise ConfigError(f"refusing to send an SMTP command with a line break: {line!r}")
        verb = line.partition(" ")[0].upper()
        if verb in _MESSAGE_VERBS and not self._may_send_message():
            # The probe's promise, kept by the client: it has no way to hand over mail.
            raise ConfigError(f"refusing to send {verb}: this client never sends mail")
        await self._write(line.encode("utf-8") + b"\r\n")
        return await read_reply(self.reader)

    def _may_send_message(self) -> bool:
        return False

    async def command(self, name: str, line: str, ok: Callable[[int], bool]) -> SMTPReply:
        start = self.s.timer()
        reply = await self._timed(name, self._send(line), start)
        self._record(name, reply.code, start, ok(reply.code), reply.text)
        return reply

    # -- phases --------------------------------------------------------------------

    async def connect(self, name: str) -> None:
        start = self.s.timer()
        try:
            async with self._step_timeout(self.s.timeout):
                self.reader, self.writer = await asyncio.open_connection(
                    self.address, self.port, limit=_LINE_LIMIT
                )
        except TimeoutError:
            self._record(name, None, start, False, "timed out")
            raise Abort(
                fail("connect-timeout", f"no TCP connection within {self.s.timeout:g} s"),
                alive=False,
            ) from None
        except ConnectionRefusedError:
            self._record(name, None, start, False, "refused")
            raise Abort(fail("connect-refused", "connection refused"), alive=False) from None
        except OSError as exc:
            self._record(name, None, start, False, str(exc))
            raise Abort(fail("connect-error", f"cannot connect: {exc}"), alive=False) from None
        self._record(name, None, start, True, "")

    def prepare_starttls(self, context: ssl.SSLContext) -> None:
        """Build the TLS session a STARTTLS with ``context`` on this connection will use,
        up to its first flight (see :func:`mxflip.net.starttls.prepare_tls`): call it
        between :meth:`connect` and :meth:`banner`, where the client waits for the
        server's greeting anyway. Nothing is sent; without STARTTLS, or with another
        context, it is dropped unused."""
        self.drop_prepared_tls()
        self._prepared = prepare_tls(context, self.host)

    def drop_prepared_tls(self) -> None:
        """Drop the session :meth:`prepare_starttls` built (STARTTLS is not offered, or
        the connection is over)."""
        if self._prepared is not None:
            self._prepared.drop()
            self._prepared = None

    async def banner(self, name: str) -> None:
        assert self.reader is not None
        start = self.s.timer()
        reply = await self._timed(name, read_reply(self.reader), start)
        ok = reply.code == 220
        self._record(name, reply.code, start, ok, reply.text)
        if not ok:
            raise Abort(
                fail("banner-rejected", f"the server greets with {reply.code} {reply.text}"),
                alive=True,
                reply=reply,
            )

    async def ehlo(self, name: str, failure_code: str) -> None:
        reply = await self.command(name, f"EHLO {self.s.helo}", lambda c: c == 250)
        if reply.code != 250:
            raise Abort(
                fail(failure_code, f"{name.upper()} answered {reply.code} {reply.text}"),
                alive=True,
                reply=reply,
            )
        self.extensions = parse_extensions(reply)
        self.reached_ehlo = True

    async def starttls(self, name: str, context: ssl.SSLContext) -> None:
        reply = await self.command(name, "STARTTLS", lambda c: c == 220)
        if reply.code != 220:
            raise StartTLSFailed(
                fail("tls-handshake", f"STARTTLS answered {reply.code} {reply.text}"),
                alive=True,
                reply=reply,
            )
        reader, writer = self.reader, self.writer
        if not isinstance(reader, asyncio.StreamReader) or not isinstance(
            writer, asyncio.StreamWriter
        ):
            # TLS inside TLS: no server asks for it and no conversation here does
            raise StartTLSFailed(
                fail("tls-handshake", "STARTTLS inside a TLS session"), alive=False
            )
        start = self.s.timer()
        prepared, self._prepared = self._prepared, None
        try:
            async with self._step_timeout(self.s.timeout):
                self.reader = self.writer = await start_tls(
                    reader,
                    writer,
                    context,
                    self.host,
                    _LINE_LIMIT,
                    prepared=prepared,
                )
        except ssl.SSLCertVerificationError as exc:
            self._record("tls", None, start, False, str(exc.verify_message or exc))
            raise
        except TimeoutError:
            self._record("tls", None, start, False, "handshake timed out")
            raise StartTLSFailed(
                fail("tls-handshake", "TLS handshake timed out"), alive=False
            ) from None
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            self._record("tls", None, start, False, str(exc))
            raise StartTLSFailed(
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

    async def close(self, polite: bool) -> tuple[list[SMTPStep], list[Finding]]:
        """QUIT (when ``polite``) and close; the QUIT step and any finding about it."""
        steps: list[SMTPStep] = []
        findings: list[Finding] = []
        self.drop_prepared_tls()
        if self.writer is None:
            self._step_timeout.close()
            return steps, findings
        if polite and self.reader is not None:
            start = self.s.timer()
            try:
                async with self._step_timeout(min(self.s.timeout, _QUIT_TIMEOUT)):
                    reply = await self._send("QUIT")
                code: int | None = reply.code
                detail = reply.text
            except (TimeoutError, ProtocolError, ConnectionLost, ConnectionError, OSError) as exc:
                code, detail = None, str(exc) or "no reply"
            steps.append(SMTPStep("quit", code, self._ms(start), code == 221, detail))
            if code != 221:
                got = f"{code} {detail}" if code else detail
                findings.append(warn("quit-not-221", f"QUIT answered {got}, not 221"))
        self.writer.close()
        try:
            async with self._step_timeout(1.0):
                await self.writer.wait_closed()
        except (TimeoutError, ssl.SSLError, ConnectionError, OSError):
            pass  # the verdict is made; a peer that closes badly changes nothing
        self._step_timeout.close()
        self.writer = None
        self.reader = None
        return steps, findings

    def abandon(self) -> None:
        self._step_timeout.close()
        self.drop_prepared_tls()  # built for that connection
        if self.writer is not None:
            self.writer.transport.abort()
            self.writer = None
            self.reader = None


class SubmissionClient(SMTPClient):
    """An :class:`SMTPClient` that may hand over a message (the canary's submission)."""

    def _may_send_message(self) -> bool:
        return True

    async def data(self, message: EmailMessage) -> SMTPReply:
        """DATA, then the message (CRLF lines, dot-stuffed) and its end; the last reply
        (354 refused, or the server's verdict on the message)."""
        reply = await self.command("data", "DATA", lambda c: c == 354)
        if reply.code != 354:
            return reply
        start = self.s.timer()
        payload = _dot_stuffed(message.as_bytes(policy=email.policy.SMTP))
        reply = await self._timed("data-end", self._message(payload), start)
        self._record("data-end", reply.code, start, reply.code == 250, reply.text)
        return reply

    async def _message(self, payload: bytes) -> SMTPReply:
        assert self.reader is not None
        await self._write(payload)
        return await read_reply(self.reader)


def _dot_stuffed(content: bytes) -> bytes:
    """RFC 5321 §4.5.2: a line beginning with a period gets another; the message ends
    with CRLF . CRLF."""
    lines = re.sub(rb"\r\n|\r|\n", b"\r\n", content)
    if not lines.endswith(b"\r\n"):
        lines += b"\r\n"
    stuffed = re.sub(rb"(?m)^\.", b"..", lines)
    return stuffed + b".\r\n"
