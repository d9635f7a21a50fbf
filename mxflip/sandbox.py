"""A throw-away drill lab on loopback, for ``mxflip drill --sandbox``.

Everything a real drill touches, played by short-lived local stand-ins: a zone file in a
temporary folder (the ``zonefile`` adapter writes it), a tiny authoritative DNS server that
serves that file on 127.0.0.1 (UDP and TCP, re-reading it whenever it is replaced), and
three SMTP servers with certificates from a private CA: two for the inbound proxy (the
``primary`` set) and one for the direct host (``backup``). The drill itself is the real
one: the same configuration loader, engine, journal (in the temporary folder, never the
user's) and report.

Only for the sandbox: the DNS server knows nothing but one zone file, and the SMTP servers
accept the probe's envelope and nothing else. Needs ``aiosmtpd`` and ``trustme``
(``pip install 'mxflip[sandbox]'``) and the ``mxflip-zonefile`` adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

from mxflip.config import Config, load_config
from mxflip.errors import UsageError

ZONE = "example.test"
DOMAIN = f"drill.{ZONE}"
#: host → role; each host gets its own SMTP server.
HOSTS = {
    f"mx1.proxy.{ZONE}": "proxy",
    f"mx2.proxy.{ZONE}": "proxy",
    f"mail.{ZONE}": "direct",
}

#: TTLs of the lab: short, so a planned drill (which waits out the old TTL after lowering
#: it) finishes in seconds; every cache in the lab is mxflip's own.
SANDBOX_TTL = 4
SANDBOX_FAILOVER_TTL = 2

ZONE_TEXT = f"""\
; The sandbox zone: {DOMAIN} is the drill name; production names would sit beside it.
$ORIGIN {ZONE}.
$TTL {SANDBOX_TTL}
@          IN SOA ns1 hostmaster 2026112300 3600 600 86400 {SANDBOX_FAILOVER_TTL}
@          IN NS  ns1
ns1        IN A   127.0.0.1
; The drill name starts on the inbound proxy (primary).
drill      IN MX  10 mx1.proxy
drill      IN MX  20 mx2.proxy
mx1.proxy  IN A   127.0.0.1
mx2.proxy  IN A   127.0.0.1
; The direct host (backup).
mail       IN A   127.0.0.1
"""


def _config_text(dns_port: int, smtp_ports: dict[str, int]) -> str:
    connect = ", ".join(f'"{host}" = "127.0.0.1:{port}"' for host, port in smtp_ports.items())
    return f"""\
# Written by `mxflip drill --sandbox`; removed when the drill ends.
[providers.sandbox]
type = "zonefile"
file = "{ZONE}.zone"

[defaults]
provider = "sandbox"
zone = "{ZONE}"
ttl = {SANDBOX_TTL}
failover_ttl = {SANDBOX_FAILOVER_TTL}
nameservers = ["127.0.0.1:{dns_port}"]

[domains."{DOMAIN}"]
primary = ["10 mx1.proxy.{ZONE}", "20 mx2.proxy.{ZONE}"]
backup = ["10 mail.{ZONE}"]

[probe]
helo = "probe.{ZONE}"
mail_from = "drill@{ZONE}"
timeout = 10
resolvers = ["127.0.0.1:{dns_port}"]
ca_file = "sandbox-ca.pem"
connect = {{ {connect} }}

[journal]
path = "journal.jsonl"
"""


def _require() -> None:
    missing = [m for m in ("aiosmtpd", "trustme") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"--sandbox needs {' and '.join(missing)}, which are not installed",
            hint="pip install 'mxflip[sandbox]' (or pip install -r requirements-dev.txt)",
        )
    from mxflip.provider import installed_providers

    if "zonefile" not in installed_providers():
        raise UsageError(
            "--sandbox needs the zone-file adapter, which is not installed",
            hint="pip install -e providers/zonefile (or pip install -r requirements-dev.txt)",
        )


# ------------------------------------------------------------------------ DNS


class ZoneResponder:
    """Authoritative answers from one zone file, re-read whenever the file changes."""

    def __init__(self, path: Path, origin: str) -> None:
        self.path = path
        self.origin = dns.name.from_text(origin)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._zone: dns.zone.Zone | None = None

    def zone(self) -> dns.zone.Zone | None:
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError:
                return self._zone
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key != self._seen:
                try:
                    self._zone = dns.zone.from_file(
                        str(self.path), origin=self.origin, relativize=False
                    )
                    self._seen = key
                except (OSError, dns.exception.DNSException):
                    pass  # keep serving the last good zone, as a real server would
            return self._zone

    def answer(self, wire: bytes, limit: int) -> bytes | None:
        """The response to one query (None for a message that is not one)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        zone = self.zone()
        if zone is None or not question.name.is_subdomain(self.origin):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        response.flags |= dns.flags.AA
        node = zone.get_node(question.name)
        soa = zone.find_rrset(self.origin, dns.rdatatype.SOA)
        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(soa)
        else:
            found = node.get_rdataset(dns.rdataclass.IN, question.rdtype)
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            chosen = found or cname
            if chosen is not None:
                response.answer.append(
                    dns.rrset.from_rdata_list(question.name, chosen.ttl, list(chosen))
                )
            else:
                response.authority.append(soa)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()


class _UDPHandler(socketserver.BaseRequestHandler):
    server: _UDPServer

    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.responder.answer(data, 1232)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            for _ in range(100):  # bounded: a few queries per connection at most
                head = _read_exact(conn, 2)
                if head is None:
                    return
                data = _read_exact(conn, struct.unpack("!H", head)[0])
                if data is None:
                    return
                reply = self.server.responder.answer(data, 65535)
                if reply is None:
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)


def _read_exact(conn: socket.socket, size: int) -> bytes | None:
    buf = b""
    while len(buf) < size:
        chunk = conn.recv(size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True

    def __init__(self, port: int, responder: ZoneResponder) -> None:
        super().__init__(("127.0.0.1", port), _UDPHandler)
        self.responder = responder


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, responder: ZoneResponder) -> None:
        super().__init__(("127.0.0.1", port), _TCPHandler)
        self.responder = responder


class LoopbackDNS:
    """UDP and TCP on the same loopback port, each served by a thread."""

    def __init__(self, responder: ZoneResponder) -> None:
        self.responder = responder
        self.port = 0
        self._servers: list[socketserver.BaseServer] = []

    def start(self) -> LoopbackDNS:
        for _ in range(50):  # the UDP port may be taken for TCP; try another
            udp = _UDPServer(0, self.responder)
            port = int(udp.server_address[1])
            try:
                tcp = _TCPServer(port, self.responder)
            except OSError:
                udp.server_close()
                continue
            self.port = port
            self._servers = [udp, tcp]
            for server in self._servers:
                # A short poll interval: shutdown() waits for the next poll.
                threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            return self
        raise OSError("no loopback port free for both UDP and TCP after 50 tries")

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []


# ------------------------------------------------------------------------ SMTP


class _Handler:
    """Accepts the probe's recipients at the sandbox domain; refuses relaying and DATA."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if not address.lower().endswith("@" + DOMAIN):
            return "554 5.7.1 Relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "554 5.6.0 the sandbox takes no mail"


class LoopbackSMTP:
    """aiosmtpd servers with STARTTLS on one event loop in a thread."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.tls = tls
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._servers: list[asyncio.base_events.Server] = []

    def start(self) -> LoopbackSMTP:
        self._thread.start()
        return self

    def serve(self, hostname: str) -> int:
        from aiosmtpd.smtp import SMTP

        def factory() -> asyncio.BaseProtocol:
            return SMTP(_Handler(), hostname=hostname, tls_context=self.tls, loop=self.loop)

        async def start() -> int:
            server = await self.loop.create_server(factory, "127.0.0.1", 0)
            self._servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=30)

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        self.loop.close()


# ------------------------------------------------------------------------ the lab


class Sandbox:
    """The whole lab as a context manager: ``config`` and ``journal_path`` are ready
    inside; everything (servers, folder, journal) is gone after."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self._dns: LoopbackDNS | None = None
        self._smtp: LoopbackSMTP | None = None
        self._config: Config | None = None
        self._log_level: int | None = None

    @property
    def config(self) -> Config:
        assert self._config is not None, "use Sandbox as a context manager"
        return self._config

    @property
    def journal_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "journal.jsonl"

    def __enter__(self) -> Sandbox:
        _require()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        import trustme

        self.folder = Path(tempfile.mkdtemp(prefix="mxflip-sandbox-"))
        zone_file = self.folder / f"{ZONE}.zone"
        zone_file.write_text(ZONE_TEXT)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.folder / "sandbox-ca.pem"))
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*HOSTS).configure_cert(tls)
        # aiosmtpd logs every session; the drill's report is what the person reads.
        mail_log = logging.getLogger("mail.log")
        self._log_level = mail_log.level
        mail_log.setLevel(logging.CRITICAL)
        self._dns = LoopbackDNS(ZoneResponder(zone_file, ZONE + ".")).start()
        self._smtp = LoopbackSMTP(tls).start()
        ports = {host: self._smtp.serve(host) for host in HOSTS}
        config_file = self.folder / "mxflip.toml"
        config_file.write_text(_config_text(self._dns.port, ports))
        self._config = load_config(config_file)

    def close(self) -> None:
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        if self._dns is not None:
            self._dns.stop()
            self._dns = None
        if self._log_level is not None:
            logging.getLogger("mail.log").setLevel(self._log_level)
            self._log_level = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __exit__(self, *exc: object) -> None:
        self.close()
