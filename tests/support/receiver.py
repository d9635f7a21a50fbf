"""A loopback HTTP receiver for Apprise ``json://`` alerts and heartbeats: records every
request; answers 200, 500, or slowly (a bounded hold, released at stop)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any] | None


@dataclass
class Receiver:
    mode: str = "ok"  # ok, error (500), slow (holds until released)
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                receiver.requests.append(Request(method, self.path, body))
                if receiver.mode == "slow":
                    receiver.release.wait(30)
                code = 500 if receiver.mode == "error" else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # shutdown() waits for the loop's next poll: 0.5 s by default, in every teardown.
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, scheme: str = "json", path: str = "alerts") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def alerts(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.method == "POST" and r.body]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
