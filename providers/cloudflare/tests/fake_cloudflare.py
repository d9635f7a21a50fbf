"""A stateful fake of Cloudflare's zones and DNS-records API, served over HTTP on loopback.

It mirrors the documented v4 shapes the adapter relies on, so the real SDK can be pointed
at it with ``base_url``:

* every answer is the envelope ``{"success", "errors", "messages", "result"}`` (lists add
  ``result_info`` with ``page``, ``per_page``, ``count``, ``total_count``, ``total_pages``);
  errors are ``{"success": false, "errors": [{"code", "message"}], "messages": [],
  "result": null}``;
* ``GET /zones`` (``name``, ``page``, ``per_page``), ``GET /zones/{id}``;
* ``GET/POST /zones/{id}/dns_records`` (``type``, ``name``, ``page``, ``per_page``),
  ``GET/DELETE /zones/{id}/dns_records/{record_id}``;
* ``POST /zones/{id}/dns_records/batch``: deletes, patches, puts, posts in that order, in
  one transaction: the first failing operation fails the whole batch and changes nothing;
* ``GET /user/tokens/verify`` (any token it knows: its ``status``);
* tokens (``Authorization: Bearer``) with permissions ``zone:read``, ``dns:read``,
  ``dns:edit``: an unknown token gets 403/9109, a missing permission 403/10000;
* Cloudflare's record rules: TTL 1 (automatic) or ``min_ttl``-86400, no identical
  duplicates (81058), MX not proxiable (9004), unknown record ids (81044);
* failures on demand (:meth:`FakeCloudflare.fail_next`), such as 429 with ``Retry-After``.

It never logs the token; :attr:`FakeCloudflare.requests` records method, path and query.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.ports import free_port

PREFIX = "/client/v4"
ALL_PERMISSIONS = frozenset({"zone:read", "dns:read", "dns:edit"})


class ApiError(Exception):
    """An error answer: HTTP status plus Cloudflare's code and message."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        chain: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.chain = chain
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.chain:
            error["error_chain"] = self.chain
        return {"success": False, "errors": [error], "messages": [], "result": None}


@dataclass
class Failure:
    """A failure to answer instead of the real one, ``count`` times, once ``after``
    matching requests have been answered normally."""

    error: ApiError
    count: int = 1
    method: str | None = None
    path_contains: str | None = None
    after: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass(frozen=True)
class Request:
    """One request the fake received (never its credentials)."""

    method: str
    path: str
    query: Mapping[str, str]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class FakeCloudflare:
    """The API's state; :meth:`serve` runs it on a loopback port."""

    #: Lowest accepted TTL other than 1 (30 for an Enterprise zone).
    min_ttl: int = 60
    #: Operations allowed in one batch (Free plan: 200).
    batch_limit: int = 200
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    #: ``GET /user/tokens/verify`` status per token (default ``active``).
    token_status: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    base_url: str = ""

    # ------------------------------------------------------------------ test set-up

    def add_token(self, token: str, permissions: frozenset[str] = ALL_PERMISSIONS) -> None:
        self.tokens[token] = frozenset(permissions)

    def add_zone(self, name: str, name_servers: tuple[str, ...] | None = None) -> str:
        """Create an active zone; returns its id."""
        zone_id = _new_id()
        bare = name.rstrip(".").lower()
        self.zones[zone_id] = {
            "id": zone_id,
            "name": bare,
            "status": "active",
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": list(
                name_servers or ("ada.ns.cloudflare.com", "bob.ns.cloudflare.com")
            ),
            "original_name_servers": None,
            "original_registrar": None,
            "original_dnshost": None,
            "vanity_name_servers": [],
            "account": {"id": "0" * 32, "name": "test account"},
            "owner": {"id": None, "type": "user", "email": None},
            "permissions": [],
            "plan": {"id": "0" * 32, "name": "Free Website", "legacy_id": "free"},
            "meta": {"page_rule_quota": 3, "phishing_detected": False},
            "created_on": _now(),
            "modified_on": _now(),
            "activated_on": _now(),
        }
        self.records[zone_id] = {}
        return zone_id

    def zone_id(self, name: str) -> str:
        bare = name.rstrip(".").lower()
        return next(z for z, zone in self.zones.items() if zone["name"] == bare)

    def put_record(
        self, zone: str, name: str, content: str, priority: int, ttl: int, **extra: Any
    ) -> str:
        """Store an MX record directly, as another writer would; returns its id."""
        with self.lock:
            zone_id = self.zone_id(zone)
            record = self._new_record(
                zone_id,
                {
                    "type": "MX",
                    "name": name.rstrip("."),
                    "content": content.rstrip("."),
                    "priority": priority,
                    "ttl": ttl,
                    **extra,
                },
                validate=False,
            )
            self.records[zone_id][record["id"]] = record
            return str(record["id"])

    def mx_of(self, zone: str, name: str) -> set[tuple[int, str, int]]:
        """(priority, content, ttl) of the MX records at ``name``."""
        bare = name.rstrip(".").lower()
        return {
            (r["priority"], r["content"], r["ttl"])
            for r in self.records[self.zone_id(zone)].values()
            if r["type"] == "MX" and r["name"] == bare
        }

    def fail_next(
        self,
        status: int,
        code: int,
        message: str,
        *,
        count: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        headers: Mapping[str, str] | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``count`` matching requests with this error instead, once
        ``after`` of them went through."""
        with self.lock:
            self.failures.append(
                Failure(
                    ApiError(status, code, message, headers=headers),
                    count,
                    method,
                    path_contains,
                    after,
                )
            )

    def rate_limit_next(self, retry_after: int | str, count: int = 1) -> None:
        """Answer the next ``count`` requests with 429 and ``Retry-After``."""
        self.fail_next(
            429,
            971,
            "Please wait and consider throttling your request speed",
            count=count,
            headers={"Retry-After": str(retry_after)},
        )

    def calls(self, method: str, path_contains: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    # ------------------------------------------------------------------ serving

    @contextmanager
    def serve(self) -> Iterator[FakeCloudflare]:
        """Serve on 127.0.0.1 (a port from ``free_port()``); sets :attr:`base_url`."""
        server = None
        for _ in range(5):  # the free port can be taken before we bind it
            try:
                server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler_for(self))
                break
            except OSError:
                continue
        if server is None:
            raise RuntimeError("could not bind the fake Cloudflare API to a loopback port")
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    # ------------------------------------------------------------------ the API

    def handle(
        self, method: str, path: str, query: Mapping[str, str], token: str | None, body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Route one request; returns (status, JSON body, extra headers)."""
        with self.lock:
            self.requests.append(Request(method, path, dict(query)))
            try:
                for failure in self.failures:
                    if failure.count > 0 and failure.matches(method, path):
                        if failure.after > 0:
                            failure.after -= 1
                            continue
                        failure.count -= 1
                        raise failure.error
                if not path.startswith(PREFIX + "/"):
                    raise ApiError(404, 7000, "No route for that URI")
                parts = path[len(PREFIX) + 1 :].strip("/").split("/")
                return 200, self._route(method, parts, query, token, body), {}
            except ApiError as err:
                return err.status, err.body(), err.headers

    def _authorize(self, token: str | None, permission: str) -> None:
        if token is None:
            raise ApiError(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
        if token not in self.tokens:
            raise ApiError(403, 9109, "Invalid access token")
        granted = self.tokens[token]
        if permission == "dns:read" and granted & {"dns:read", "dns:edit"}:
            return
        if permission not in granted:
            raise ApiError(403, 10000, "Authentication error")

    def _route(
        self,
        method: str,
        parts: list[str],
        query: Mapping[str, str],
        token: str | None,
        body: Any,
    ) -> dict[str, Any]:
        if parts == ["user", "tokens", "verify"] and method == "GET":
            # Needs no permission, like the real endpoint; an unknown token gets 401/1000.
            if token is None or token not in self.tokens:
                raise ApiError(401, 1000, "Invalid API Token")
            status = self.token_status.get(token, "active")
            return _ok({"id": "fake-token-id", "status": status})
        if parts[0] != "zones":
            raise ApiError(404, 7000, "No route for that URI")
        if len(parts) == 1 and method == "GET":
            self._authorize(token, "zone:read")
            zones = [z for z in self.zones.values() if query.get("name") in (None, z["name"])]
            return _page(zones, query, default_per_page=20)
        zone_id = parts[1]
        if zone_id not in self.zones:
            self._authorize(token, "zone:read" if len(parts) == 2 else "dns:read")
            raise ApiError(
                400,
                7003,
                f"Could not route to /zones/{zone_id}, perhaps your object identifier is invalid?",
            )
        if len(parts) == 2 and method == "GET":
            self._authorize(token, "zone:read")
            return _ok(self.zones[zone_id])
        if len(parts) < 3 or parts[2] != "dns_records":
            raise ApiError(404, 7000, "No route for that URI")
        store = self.records[zone_id]
        if len(parts) == 3 and method == "GET":
            self._authorize(token, "dns:read")
            found = [
                r
                for r in sorted(store.values(), key=lambda r: (r["name"], r["created_on"]))
                if query.get("type") in (None, r["type"]) and query.get("name") in (None, r["name"])
            ]
            return _page(found, query, default_per_page=100)
        if len(parts) == 3 and method == "POST":
            self._authorize(token, "dns:edit")
            record = self._new_record(zone_id, body)
            self._check_duplicate(store, record)
            store[record["id"]] = record
            return _ok(record)
        if len(parts) == 4 and parts[3] == "batch" and method == "POST":
            self._authorize(token, "dns:edit")
            return _ok(self._batch(zone_id, body))
        if len(parts) == 4:
            record_id = parts[3]
            if method == "GET":
                self._authorize(token, "dns:read")
                return _ok(self._existing(store, record_id))
            if method == "DELETE":
                self._authorize(token, "dns:edit")
                self._existing(store, record_id)
                del store[record_id]
                return _ok({"id": record_id})
        raise ApiError(405, 10405, f"Method {method} not allowed for this route")

    # ------------------------------------------------------------------ records

    def _existing(self, store: dict[str, dict[str, Any]], record_id: str) -> dict[str, Any]:
        if record_id not in store:
            raise ApiError(404, 81044, "Record does not exist.")
        return store[record_id]

    def _new_record(self, zone_id: str, body: Any, *, validate: bool = True) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, 9207, "Request body is invalid.")
        zone_name = self.zones[zone_id]["name"]
        name = str(body.get("name", "")).rstrip(".").lower()
        if name == "@":
            name = zone_name
        elif name and name != zone_name and not name.endswith("." + zone_name):
            name = f"{name}.{zone_name}"  # relative names are completed, as the API does
        record = {
            "id": _new_id(),
            "name": name,
            "type": body.get("type"),
            "content": str(body.get("content", "")).rstrip(".").lower(),
            "priority": body.get("priority"),
            "proxiable": False,
            "proxied": bool(body.get("proxied", False)),
            "ttl": body.get("ttl", 1),
            "settings": {},
            "meta": {},
            "comment": body.get("comment"),
            "tags": list(body.get("tags") or []),
            "created_on": _now(),
            "modified_on": _now(),
        }
        if validate:
            self._validate(record)
        return record

    def _validate(self, record: dict[str, Any]) -> None:
        def invalid(code: int, message: str) -> ApiError:
            return ApiError(
                400, 1004, "DNS Validation Error", chain=[{"code": code, "message": message}]
            )

        if record["type"] != "MX":
            raise invalid(9000, "this fake stores MX records only")
        if not record["name"]:
            raise invalid(9005, "Content for record name is invalid.")
        if not record["content"]:
            raise invalid(9007, "Content for MX record is invalid.")
        priority = record["priority"]
        if not isinstance(priority, int) or not 0 <= priority <= 65535:
            raise invalid(9101, "priority must be set for MX records (0-65535)")
        ttl = record["ttl"]
        if not isinstance(ttl, int) or (ttl != 1 and not self.min_ttl <= ttl <= 86400):
            raise invalid(
                9021,
                f"Invalid TTL. Must be between {self.min_ttl} and 86400 seconds, or 1 for "
                "automatic.",
            )
        if record["proxied"]:
            raise ApiError(400, 9004, "This record type cannot be proxied.")

    def _check_duplicate(self, store: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
        for other in store.values():
            if all(other[k] == record[k] for k in ("type", "name", "content", "priority")):
                raise ApiError(400, 81058, "An identical record already exists.")

    def _batch(self, zone_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, 9207, "Request body is invalid.")
        deletes = body.get("deletes") or []
        patches = body.get("patches") or []
        puts = body.get("puts") or []
        posts = body.get("posts") or []
        if len(deletes) + len(patches) + len(puts) + len(posts) > self.batch_limit:
            # The documented limit (200 Free, 3,500 paid); its error code is not documented,
            # so this one is the fake's own.
            raise ApiError(400, 1004, f"batch holds more than {self.batch_limit} record operations")
        # One transaction: work on a copy, commit only when every operation succeeded.
        store = copy.deepcopy(self.records[zone_id])
        result: dict[str, list[dict[str, Any]]] = {
            "deletes": [],
            "patches": [],
            "puts": [],
            "posts": [],
        }
        for item in deletes:
            record_id = str(item.get("id", ""))
            result["deletes"].append(self._existing(store, record_id))
            del store[record_id]
        for item in patches:
            record = self._existing(store, str(item.get("id", "")))
            updated = {**record, **{k: v for k, v in item.items() if k != "id"}}
            updated["modified_on"] = _now()
            self._validate(updated)
            store[record["id"]] = updated
            result["patches"].append(updated)
        for item in puts:
            record = self._existing(store, str(item.get("id", "")))
            replaced = self._new_record(zone_id, item)
            replaced["id"] = record["id"]
            replaced["created_on"] = record["created_on"]
            store[record["id"]] = replaced
            result["puts"].append(replaced)
        for item in posts:
            record = self._new_record(zone_id, item)
            self._check_duplicate(store, record)
            store[record["id"]] = record
            result["posts"].append(record)
        self.records[zone_id] = store
        return result


def _ok(result: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result}


def _page(
    items: list[dict[str, Any]], query: Mapping[str, str], *, default_per_page: int
) -> dict[str, Any]:
    try:
        page = max(1, int(float(query.get("page", 1))))
        per_page = max(1, int(float(query.get("per_page", default_per_page))))
    except ValueError:
        raise ApiError(400, 1004, "page and per_page must be numbers") from None
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    total_pages = max(1, -(-len(items) // per_page))
    return {
        **_ok(chunk),
        "result_info": {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": total_pages,
        },
    }


def _handler_for(fake: FakeCloudflare) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle plus delayed ACKs
        # add ~40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            auth = self.headers.get("Authorization", "")
            token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
            headers: dict[str, str] = {}
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, payload = 400, ApiError(400, 9207, "Invalid JSON").body()
            else:
                status, payload, headers = fake.handle(self.command, url.path, query, token, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows failures, and the request line is in fake.requests

    return Handler


# ------------------------------------------------------------------ fixtures
# Shared by the adapter's own tests (its conftest) and the core's onboarding tests.

ZONE = "example.test."


@pytest.fixture
def token() -> str:
    """A distinctive secret, so tests can assert it never leaks into output."""
    return f"cf-secret-{uuid.uuid4().hex}"


@pytest.fixture
def fake(token: str) -> Iterator[FakeCloudflare]:
    """A fresh fake API with zone example.test and a token allowed everything."""
    api = FakeCloudflare()
    api.add_token(token)
    api.add_zone(ZONE)
    with api.serve():
        yield api
