"""A loopback mail lab for readiness tests: aiosmtpd servers with trustme certificates,
hand-written misbehaving servers, an HTTPS server for MTA-STS policies, and a BIND9 zone.

Servers run on an event loop in a background thread (the code under test runs its own
``asyncio.run``), all bound to 127.0.0.1 port 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession

from mxflip import certs as certfacts
from tests.support.bind import BindServer, zone_text
from tests.support.unbound import SignedZone, UnboundServer, sign_zone

LAB_ZONE = "lab.test."
EXTERNAL = "relay-check.invalid"


class Handler:
    """aiosmtpd handler: which recipients exist and how RCPT answers.

    ``rcpt`` maps a recipient (lower case) or ``"*"`` (any other local one) to a reply;
    recipients outside ``local_suffix`` are refused as relaying unless ``open_relay``."""

    def __init__(
        self,
        rcpt: Mapping[str, str] | None = None,
        *,
        local_suffix: str = "lab.test",
        open_relay: bool = False,
        deferrals: int = 0,
    ) -> None:
        self.rcpt = dict(rcpt or {})
        self.local_suffix = local_suffix
        self.open_relay = open_relay
        self.deferrals = deferrals  # answer 450 this many times first (greylisting)
        self.seen: list[str] = []
        self.data_seen = False

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.seen.append(address)
        domain = address.rpartition("@")[2].lower()
        if not domain.endswith(self.local_suffix):
            if self.open_relay:
                return "250 2.1.5 OK"
            return "554 5.7.1 Relay access denied"
        if self.deferrals > 0:
            self.deferrals -= 1
            return "450 4.2.0 Greylisted, try again later"
        reply = self.rcpt.get(address.lower(), self.rcpt.get("*"))
        if reply is None:
            reply = (
                "250 2.1.5 OK"
                if address.lower().startswith("postmaster@")
                else ("550 5.1.1 No such user")
            )
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        self.data_seen = True
        return "554 5.6.0 the probe must never send DATA"


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Lab:
    """Servers on a private event loop in a thread."""

    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Lab:
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def _run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)  # type: ignore[arg-type]

    async def _serve(self, factory: Callable[[], asyncio.BaseProtocol], host: str) -> int:
        server = await self.loop.create_server(factory, host, 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def smtp(
        self,
        handler: Handler,
        *,
        tls: ssl.SSLContext | None = None,
        hostname: str = "mx.lab.test",
        host: str = "127.0.0.1",
    ) -> int:
        """An aiosmtpd server; STARTTLS is offered when ``tls`` is given. Returns the port."""

        def factory() -> asyncio.BaseProtocol:
            return SMTP(handler, hostname=hostname, tls_context=tls, loop=self.loop)

        return int(self._run(self._serve(factory, host)))

    def raw(self, behaviour: Behaviour, host: str = "127.0.0.1") -> int:
        """A hand-written server: ``behaviour`` gets each connection's streams."""

        async def start() -> int:
            async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                try:
                    await behaviour(r, w)
                except (ConnectionError, OSError, asyncio.CancelledError):
                    pass
                finally:
                    w.close()

            server = await asyncio.start_server(handle, host, 0)
            self.servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        return int(self._run(start()))

    def https(self, context: ssl.SSLContext, pages: Mapping[str, str]) -> int:
        """A tiny HTTPS server answering GET ``path`` from ``pages`` (else 404)."""

        async def start() -> int:
            async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                try:
                    request = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                    path = request.split(b" ")[1].decode()
                    body = pages.get(path)
                    if body is None:
                        w.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    else:
                        data = body.encode()
                        w.write(
                            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                            + f"Content-Length: {len(data)}\r\n\r\n".encode()
                            + data
                        )
                    await w.drain()
                except (OSError, asyncio.IncompleteReadError, TimeoutError):
                    pass
                finally:
                    w.close()

            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
            self.servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        return int(self._run(start()))

    def stop(self) -> None:
        async def close_all() -> None:
            for server in self.servers:
                server.close()
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()

        self._run(close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.loop.close()


# ------------------------------------------------------------- misbehaving servers


def banner_server(code: int, text: str = "mx.lab.test not accepting mail") -> Behaviour:
    async def run(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(f"{code} {text}\r\n".encode())
        await w.drain()
        line = await asyncio.wait_for(r.readline(), 5)
        if line.upper().startswith(b"QUIT"):
            w.write(b"221 bye\r\n")
            await w.drain()

    return run


def tarpit(delay: float) -> Behaviour:
    """Greets only after ``delay`` seconds (longer than the probe's timeout)."""

    async def run(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        w.write(b"220 finally\r\n")
        await w.drain()

    return run


def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Awaitable[None]:
    async def run() -> None:
        w.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await w.drain()
        await asyncio.wait_for(r.read(100), 5)

    return run()


def reset_mid_ehlo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Awaitable[None]:
    async def run() -> None:
        w.write(b"220 mx.lab.test ESMTP\r\n")
        await w.drain()
        await asyncio.wait_for(r.readline(), 5)
        w.write(b"250-mx.lab.test\r\n250-PIPEL")
        await w.drain()
        w.transport.abort()  # RST, mid-reply

    return run()


def silent_after_banner(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Awaitable[None]:
    async def run() -> None:
        w.write(b"220 mx.lab.test ESMTP\r\n")
        await w.drain()
        await asyncio.wait_for(r.read(), 30)  # never answers; ends when the client leaves

    return run()


# ----------------------------------------------------------------------- certificates


@dataclass
class Certs:
    """A trusted CA (written to ``ca_file``), an untrusted one, and server contexts."""

    ca: trustme.CA
    rogue: trustme.CA
    ca_file: Path

    def server(self, *names: str, ca: trustme.CA | None = None, **kw: Any) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (ca or self.ca).issue_cert(*names, **kw).configure_cert(ctx)
        return ctx

    def server_with_spki(self, *names: str) -> tuple[ssl.SSLContext, bytes, bytes]:
        """A context and its leaf (DER) and SubjectPublicKeyInfo, for TLSA records."""
        leaf = self.ca.issue_cert(*names)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        return ctx, der, certfacts.spki(certfacts.load(der))

    def expired(self, *names: str) -> ssl.SSLContext:
        now = dt.datetime.now(dt.UTC)
        return self.server(
            *names, not_before=now - dt.timedelta(days=90), not_after=now - dt.timedelta(days=1)
        )

    def expiring(self, *names: str, days: int) -> ssl.SSLContext:
        now = dt.datetime.now(dt.UTC)
        return self.server(
            *names,
            not_before=now - dt.timedelta(days=30),
            not_after=now + dt.timedelta(days=days, hours=12),
        )


def make_certs(folder: Path) -> Certs:
    ca = trustme.CA()
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Certs(ca, trustme.CA(), ca_file)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    server = Lab().start()
    yield server
    server.stop()


def start_lab_dns(
    folder: Path, records: str, zone: str = LAB_ZONE, *, signed: SignedZone | None = None
) -> BindServer:
    """A BIND9 authoritative for ``zone``, answering the probe's MX, A/AAAA, TLSA and TXT
    questions (``records`` in zone-file syntax, relative to the zone; ``signed``: serve
    this DNSSEC-signed text instead)."""
    text = signed.text if signed else zone_text(zone, records, ttl=60)
    return BindServer(folder, {zone: text}, allow_update=False).start()


def start_validated_lab_dns(
    folder: Path, records: str, zone: str = LAB_ZONE
) -> tuple[BindServer, UnboundServer]:
    """The lab zone DNSSEC-signed on BIND9, and a validating Unbound in front of it that
    trusts the zone's key (its answers carry AD)."""
    signed = sign_zone(folder / "keys", zone, zone_text(zone, records, ttl=60))
    bind = start_lab_dns(folder / "bind", records, zone, signed=signed)
    try:
        unbound = UnboundServer(folder / "unbound", {zone: bind.address}, [signed.trust_anchor])
        return bind, unbound.start()
    except BaseException:
        bind.stop()
        raise


def scripted(
    replies: Mapping[str, str] | None = None, banner: str = "220 mx.lab.test ESMTP"
) -> Behaviour:
    """A minimal line-by-line SMTP server; ``replies`` overrides the answer per verb
    (``"QUIT": "500 what"``). EHLO offers no STARTTLS."""
    answers = {
        "EHLO": "250-mx.lab.test\r\n250-PIPELINING\r\n250 8BITMIME",
        "MAIL": "250 2.1.0 OK",
        "RCPT": "250 2.1.5 OK",
        "RSET": "250 2.0.0 OK",
        "QUIT": "221 2.0.0 Bye",
        "NOOP": "250 OK",
    }
    answers.update(replies or {})

    async def run(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(banner.encode() + b"\r\n")
        await w.drain()
        for _ in range(200):
            line = await asyncio.wait_for(r.readline(), 10)
            if not line:
                return
            verb = line.decode(errors="replace").split()[0].upper() if line.strip() else ""
            w.write(answers.get(verb, "502 5.5.2 Command not recognized").encode() + b"\r\n")
            await w.drain()
            if verb == "QUIT":
                return

    return run
