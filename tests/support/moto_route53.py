"""Route53 emulated by moto in server mode on loopback, for tests and benchmarks.

Three parts:

* :class:`MotoServer` runs moto's WSGI app on 127.0.0.1 (port 0), in this process, so
  boto3 talks real HTTP to it through ``endpoint_url``.
* :func:`strict_route53` makes moto enforce Route53's documented change-batch rules,
  which moto 5 does not: a DELETE must name the live set exactly (TTL and values), a
  CREATE fails when the set exists, the batch is validated as a whole before anything
  is applied, and the 32,000 value-character limit holds. Without this, a conditional
  write could not be told from a blind one against the emulator.
* :class:`FaultProxy`, a small HTTP proxy on loopback in front of moto, answers chosen
  requests with an error (Throttling, PriorRequestNotComplete, 5xx, AccessDenied) and
  counts what passes, so retries and their bounds are observed on the wire.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import os
import re
import socket
import threading
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, NoReturn

from tests.support.httpserver import LoopbackHTTPServer
from tests.support.required import server_unavailable

FAKE_ACCESS_KEY = "AKIAMXFLIPTESTKEY000"
FAKE_SECRET_KEY = "mxflipTESTsecret/Do+Not+Print+0123456789ab"


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (the server must be there), skip on a developer machine."""
    server_unavailable("moto server", reason, "pip install 'moto[server]'")


def fake_aws_environment(home: str) -> dict[str, str]:
    """Environment for boto3 that finds only fake keys and never leaves loopback: no
    shared config files, no profile, no instance-metadata lookups."""
    return {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.path.join(home, "aws-config-absent"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "aws-credentials-absent"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


#: Variables that could make boto3 look elsewhere for credentials or endpoints.
AWS_VARIABLES_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ROUTE_53",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "https_proxy",
    "http_proxy",
)


# --------------------------------------------------------------------------- server


class MotoServer(LoopbackHTTPServer):
    """moto's whole AWS emulator on ``127.0.0.1:<free port>`` in a daemon thread.

    Not ``moto.server.ThreadedMotoServer``: its ``start()`` waits without a bound when
    the port cannot be bound; binding here happens in the caller's thread and fails fast.
    """

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        class Dispatcher(DomainDispatcherApplication):
            # moto picks the backend for every request by listing and stat-ing its own
            # package folder (~2 ms of CPU, a third of an S3 request's handling). The
            # answer depends on the host name alone, and the package does not change.
            hosts: ClassVar[dict[str | None, Any]] = {}

            def get_backend_for_host(self, host: str | None) -> Any:
                if host not in self.hosts:  # called under the dispatcher's lock
                    self.hosts[host] = super().get_backend_for_host(host)
                return self.hosts[host]

        app = Dispatcher(create_backend_app)
        _remember_parsed_timestamps()
        self._connections = _Connections()
        server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_keep_alive_handler()
        )
        server.connections = self._connections  # type: ignore[attr-defined]
        super().__init__(server=server)

    def stop(self) -> None:
        super().stop()
        # A stopped server is gone for its clients too: their pooled keep-alive
        # connections are cut, as werkzeug's one-request connections never outlived it.
        self._connections.close_all()


def _remember_parsed_timestamps() -> None:
    """moto's serializer turns each timestamp it sends (every key's LastModified in a
    listing) into text by parsing it again with dateutil: a third of a ListObjectsV2's
    CPU. The parse of a text is a pure function of it, so those answers are remembered
    (a datetime is not: equal instants in other time zones would share an answer)."""
    import moto.core.serialize as serialize

    parse = getattr(serialize, "parse_to_aware_datetime")  # noqa: B009  (not exported)
    if hasattr(parse, "cache_info"):  # already done in this process
        return
    remembered = functools.lru_cache(maxsize=4096)(parse)

    def parse_to_aware_datetime(value: Any) -> Any:
        return remembered(value) if isinstance(value, str) else parse(value)

    parse_to_aware_datetime.cache_info = remembered.cache_info  # type: ignore[attr-defined]
    setattr(serialize, "parse_to_aware_datetime", parse_to_aware_datetime)  # noqa: B010


class _Connections:
    """The server's open client connections (so that ``stop`` can cut them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)

    def discard(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.discard(conn)

    def close_all(self) -> None:
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _read_chunked(rfile: Any) -> bytes:
    """A ``Transfer-Encoding: chunked`` request body (trailers skipped)."""
    parts: list[bytes] = []
    while True:
        size = int(rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline(3)  # the CRLF closing the chunk


def _keep_alive_handler() -> type[Any]:
    """werkzeug's request handler serving persistent HTTP/1.1 connections.

    werkzeug's own ``run_wsgi`` sends ``Connection: close`` on every response (it cannot
    tell where an unread request body ends), so every botocore request paid a new TCP
    connection, a new server thread and a name lookup (~1 ms of CPU on each side, a third
    of a request). AWS keeps connections open. Here the whole request body is read
    first (``Content-Length`` or chunked), so the next request line is always where the
    reader stands, and each response goes out in one write with its ``Content-Length``.
    The WSGI environ is werkzeug's own (``make_environ``): moto sees the same request.
    """
    from werkzeug.serving import WSGIRequestHandler

    class KeepAlive(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.server.connections.add(self.connection)  # type: ignore[attr-defined]

        def finish(self) -> None:
            self.server.connections.discard(self.connection)  # type: ignore[attr-defined]
            super().finish()

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            if chunked:
                body = _read_chunked(self.rfile)
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
            environ = self.make_environ()
            environ["wsgi.input"] = io.BytesIO(body)
            if chunked:
                environ.pop("HTTP_TRANSFER_ENCODING", None)
                environ.pop("wsgi.input_terminated", None)
                environ["CONTENT_LENGTH"] = str(len(body))
            reply: list[Any] = []

            def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
                reply[:] = [status, headers]
                return chunks.append

            chunks: list[bytes] = []
            try:
                result = self.server.app(environ, start_response)
                try:
                    chunks.extend(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
            except Exception:  # as werkzeug: a 500 for the client, the traceback logged
                self.server.log("error", "Error on request:\n%s", traceback.format_exc())
                reply[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
                chunks = [b"Internal Server Error"]
                self.close_connection = True
            status, headers = reply
            code_text, _, message = status.partition(" ")
            code = int(code_text)
            payload = b"".join(chunks)
            self.send_response(code, message)
            bodiless = self.command == "HEAD" or code < 200 or code in (204, 304)
            for key, value in headers:
                lowered = key.lower()
                if lowered in ("connection", "transfer-encoding"):
                    continue
                if lowered == "content-length" and not bodiless:
                    continue
                self.send_header(key, value)
            if not bodiless:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers_and(b"" if bodiless else payload)

        def end_headers_and(self, payload: bytes) -> None:
            # Headers and body in one write: no Nagle or delayed-ACK wait between them.
            self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
            self.flush_headers()

    return KeepAlive


def start_moto() -> MotoServer:
    """A running moto server, or a test failure (CI) / skip (elsewhere)."""
    try:
        return MotoServer().start()
    except ImportError as exc:
        unavailable(f"cannot import moto's server: {exc}")
    except OSError as exc:
        unavailable(f"cannot listen on loopback: {exc}")
    raise AssertionError("unreachable")


# ------------------------------------------------------------ Route53 semantics


def _norm(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _strict_change(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.route53.exceptions import DnsNameInvalidForZone, Route53ClientError

    class InvalidChangeBatch(Route53ClientError):
        def __init__(self, message: str) -> None:
            super().__init__("InvalidChangeBatch", message)

    def change_resource_record_sets(self: Any, zoneid: str, change_list: list[Any]) -> None:
        zone = self.get_hosted_zone(zoneid)
        state: dict[tuple[str, str], tuple[int, list[str]]] = {
            (_norm(r.name), str(r.type)): (int(r.ttl or 0), [str(v) for v in r.records])
            for r in zone.rrsets
            if r.set_identifier is None
        }
        errors: list[str] = []
        chars = 0
        for change in change_list:
            rrset = change["ResourceRecordSet"]
            key = (_norm(rrset["Name"]), str(rrset["Type"]))
            if not key[0].rstrip(".").endswith(zone.name.rstrip(".")):
                raise DnsNameInvalidForZone(name=rrset["Name"], zone_name=zone.name)
            values = [str(r["Value"]) for r in rrset.get("ResourceRecords") or []]
            chars += sum(len(v) for v in values) * (2 if change["Action"] == "UPSERT" else 1)
            ttl = int(rrset.get("TTL") or 0)
            label = f"[name='{key[0]}', type='{key[1]}']"
            if change["Action"] == "CREATE":
                if key in state:
                    errors.append(
                        f"Tried to create resource record set {label} but it already exists"
                    )
                state[key] = (ttl, values)
            elif change["Action"] == "DELETE":
                live = state.pop(key, None)
                if live is None:
                    errors.append(
                        f"Tried to delete resource record set {label} but it was not found"
                    )
                elif live[0] != ttl or sorted(live[1]) != sorted(values):
                    errors.append(
                        f"Tried to delete resource record set {label} but the values provided "
                        "do not match the current values"
                    )
            else:
                state[key] = (ttl, values)
        if chars > 32000:
            raise InvalidChangeBatch("Number of characters in Value elements exceeds 32000")
        if errors:
            raise InvalidChangeBatch("[" + ", ".join(errors) + "]")
        # Valid as a whole: let moto apply it, with DELETEs matched by name and type only.
        for change in change_list:
            if change["Action"] == "DELETE":
                rrset = change["ResourceRecordSet"]
                zone.delete_rrset({"Name": _norm(rrset["Name"]), "Type": rrset["Type"]})
            else:
                rrset = dict(change["ResourceRecordSet"])
                rrset["Name"] = _norm(rrset["Name"])
                rrset["ResourceRecords"] = [r["Value"] for r in rrset.get("ResourceRecords") or []]
                zone.upsert_rrset(rrset)

    change_resource_record_sets.__wrapped__ = original  # type: ignore[attr-defined]
    return change_resource_record_sets


@contextmanager
def strict_route53() -> Iterator[None]:
    """Make moto's Route53 enforce the real change-batch rules while inside."""
    from moto.route53.models import Route53Backend

    original = Route53Backend.change_resource_record_sets
    Route53Backend.change_resource_record_sets = _strict_change(original)  # type: ignore[method-assign]
    try:
        yield
    finally:
        Route53Backend.change_resource_record_sets = original  # type: ignore[method-assign]


# ------------------------------------------------------------------ fault proxy

_OPERATIONS = (
    ("GET", re.compile(r"^/2013-04-01/hostedzonesbyname"), "ListHostedZonesByName"),
    ("GET", re.compile(r"^/2013-04-01/hostedzone/[^/]+/rrset"), "ListResourceRecordSets"),
    ("POST", re.compile(r"^/2013-04-01/hostedzone/[^/]+/rrset"), "ChangeResourceRecordSets"),
    ("GET", re.compile(r"^/2013-04-01/change/"), "GetChange"),
    ("GET", re.compile(r"^/2013-04-01/hostedzone/[^/?]+$"), "GetHostedZone"),
    ("POST", re.compile(r"^/2013-04-01/hostedzone/?$"), "CreateHostedZone"),
)


def operation_of(method: str, path: str) -> str:
    for verb, pattern, name in _OPERATIONS:
        if verb == method and pattern.search(path):
            return name
    return f"{method} {path.split('?')[0]}"


@dataclass
class Fault:
    operation: str
    status: int
    code: str
    message: str
    times: int


class FaultProxy(LoopbackHTTPServer):
    """An HTTP proxy on loopback in front of ``upstream`` that injects errors.

    ``inject("ChangeResourceRecordSets", 400, "Throttling", "Rate exceeded", times=2)``
    answers the next two such requests with that error instead of forwarding them.
    ``seen`` counts every request by operation, forwarded or not.
    """

    #: How a request is named in ``inject`` and ``seen`` (a subclass names other APIs).
    classify = staticmethod(operation_of)

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.seen: Counter[str] = Counter()
        self.faulted: Counter[str] = Counter()
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # As in MotoServer: headers and body are two writes on a keep-alive connection.
            disable_nagle_algorithm = True
            # Persistent connections, as AWS S3 and Route 53 keep them: werkzeug answers
            # HTTP/1.0 with `Connection: close` by default, so every botocore request paid
            # a new TCP connection and a new server thread (benchmarks and tests alike).
            protocol_version = "HTTP/1.1"

            #: One connection to moto per client connection, kept open like the client's.
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def finish(self) -> None:
                if self.upstream is not None:
                    self.upstream.close()
                super().finish()

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_GET
            do_DELETE = do_GET
            do_PUT = do_GET

        super().__init__(Handler)

    def inject(self, operation: str, status: int, code: str, message: str, times: int = 1) -> None:
        with self._lock:
            self._faults.append(Fault(operation, status, code, message, times))

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.seen.clear()
            self.faulted.clear()

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            self.seen[operation] += 1
            for fault in self._faults:
                if fault.operation == operation and fault.times > 0:
                    fault.times -= 1
                    self.faulted[operation] += 1
                    return fault
        return None

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        operation = self.classify(request.command, request.path)
        fault = self._take_fault(operation)
        if fault is not None:
            payload = (
                '<?xml version="1.0"?>\n'
                '<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
                f"<Error><Type>Sender</Type><Code>{fault.code}</Code>"
                f"<Message>{fault.message}</Message></Error>"
                "<RequestId>00000000-mxfl-ipte-st00-000000000000</RequestId></ErrorResponse>"
            ).encode()
            self._reply(request, fault.status, {"Content-Type": "text/xml"}, payload)
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() != "connection"}
        upstream = getattr(request, "upstream", None)
        if upstream is None:
            upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
            request.upstream = upstream  # type: ignore[attr-defined]
        try:
            upstream.request(request.command, request.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        except BaseException:
            upstream.close()  # the next request starts a new connection
            raise
        out = {
            k: v
            for k, v in response.getheaders()
            if k.lower() not in ("connection", "transfer-encoding", "content-length")
        }
        self._reply(request, response.status, out, data)

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


# ------------------------------------------------------------------ helpers


class FakeClock:
    """An ``mxflip.Clock`` that moves only when something sleeps on it."""

    def __init__(self, *, stands_still: bool = False) -> None:
        self.time = 1000.0
        self.stands_still = stands_still
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self.stands_still:
            self.time += seconds


class CallCounter:
    """Counts HTTP requests the provider's botocore client sends, by operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, event_name: str, **kwargs: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def create_zone(admin: Any, name: str, private: bool = False) -> str:
    """Create a hosted zone; return its bare id."""
    params: dict[str, Any] = {"Name": name, "CallerReference": uuid.uuid4().hex}
    if private:
        params["HostedZoneConfig"] = {"PrivateZone": True}
        params["VPC"] = {"VPCRegion": "us-east-1", "VPCId": "vpc-0123456789abcdef0"}
    answer = admin.create_hosted_zone(**params)
    return str(answer["HostedZone"]["Id"]).rsplit("/", 1)[-1]


def put_mx(admin: Any, zone_id: str, name: str, ttl: int, *values: str, **extra: Any) -> None:
    """Create one MX record set behind mxflip's back (``extra``: SetIdentifier, Weight…)."""
    admin.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": "MX",
                        "TTL": ttl,
                        "ResourceRecords": [{"Value": v} for v in values],
                        **extra,
                    },
                }
            ]
        },
    )


def fresh_zone_name(label: str = "z") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}.test."
