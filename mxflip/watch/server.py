"""``--listen``: ``/metrics``, ``/healthz`` and the status page, read-only, in a
background thread (bound to 127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST

from mxflip.errors import UsageError

if TYPE_CHECKING:
    from mxflip.watch.metrics import WatchMetrics
    from mxflip.watch.rounds import Watcher


def healthy(watcher: Watcher, metrics: WatchMetrics) -> bool:
    """The last round finished within 2 × interval."""
    report = metrics.last_report
    if report is None:
        return False
    return watcher.clock.now() - report.finished <= 2 * watcher.settings.interval


def serve(host: str, port: int, metrics: WatchMetrics, watcher: Watcher) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.exposition())
            elif path == "/healthz":
                ok = healthy(watcher, metrics)
                self._send(200 if ok else 503, "text/plain", b"ok\n" if ok else b"stale\n")
            elif path == "/":
                self._send(200, "text/html; charset=utf-8", page(watcher, metrics).encode())
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # scrapes every few seconds would drown the watcher's own log

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="mxflip-http", daemon=True).start()
    return server


def page(watcher: Watcher, metrics: WatchMetrics) -> str:
    from mxflip.errors import MxflipError
    from mxflip.watch.page import render_page

    try:
        ops = watcher.journal.read().operations
    except MxflipError:
        ops = []
    return render_page(
        metrics.last_report, metrics.last_state, ops, watcher.clock.now(), watcher.settings.interval
    )
