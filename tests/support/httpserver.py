"""An HTTP server of the tests' own on ``127.0.0.1:<port 0>``, served by a daemon thread:
the base of moto's server, of the fault proxy in front of it and of the S3 double."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Self


class LoopbackHTTPServer:
    """Serves ``handler`` (one thread per connection) until :meth:`stop`; or ``server``,
    one already bound to loopback (werkzeug's, for moto)."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler] | None = None,
        *,
        server: HTTPServer | None = None,
    ) -> None:
        if server is None:
            assert handler is not None, "a handler or a server"
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
        self._server = server
        self.port = int(self._server.server_address[1])
        # stop() waits for the serving loop's next poll (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
