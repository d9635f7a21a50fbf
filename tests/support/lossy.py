"""A loopback UDP proxy in front of a DNS server that drops a share of the queries.

Which queries it drops is decided per question name, so a test knows the outcome: names
in the "drop once" share lose their first query (the retry gets through), names in the
"drop twice" share lose their first two, and every other query is passed on. That is what
a real server with response-rate limiting does to a burst: some answers never come, and
asking again later works.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections import Counter
from dataclasses import dataclass, field

import dns.message

from tests.support.ports import free_port


def share(name: str) -> int:
    """0: drop the first query, 1: drop the first two, 2 and 3: drop none."""
    return zlib.crc32(name.lower().encode()) % 4


@dataclass
class LossyProxy:
    """Listens on 127.0.0.1:``port`` and forwards to 127.0.0.1:``upstream``."""

    upstream: int
    port: int = 0
    seen: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drops_for(self, name: str) -> int:
        return (1, 2, 0, 0)[share(name)]

    def start(self) -> LossyProxy:
        self.port = free_port()
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        class Listener(asyncio.DatagramProtocol):
            def connection_made(inner, transport: asyncio.BaseTransport) -> None:
                inner.transport = transport  # type: ignore[attr-defined]

            def datagram_received(inner, data: bytes, addr: tuple[str, int]) -> None:
                try:
                    name = dns.message.from_wire(data).question[0].name.to_text()
                except Exception:
                    return
                self.seen[name] += 1
                if self.seen[name] <= self.drops_for(name):
                    self.dropped += 1
                    return
                task = loop.create_task(forward(inner.transport, data, addr))  # type: ignore[attr-defined]
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        class Upstream(asyncio.DatagramProtocol):
            def __init__(inner, reply: asyncio.Future[bytes]) -> None:
                inner.reply = reply

            def datagram_received(inner, data: bytes, addr: tuple[str, int]) -> None:
                if not inner.reply.done():
                    inner.reply.set_result(data)

        async def forward(
            listener: asyncio.DatagramTransport, data: bytes, client: tuple[str, int]
        ) -> None:
            reply: asyncio.Future[bytes] = loop.create_future()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: Upstream(reply), remote_addr=("127.0.0.1", self.upstream)
            )
            try:
                transport.sendto(data)
                listener.sendto(await asyncio.wait_for(reply, 5.0), client)
            except TimeoutError:
                pass
            finally:
                transport.close()

        async def serve() -> None:
            await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", self.port))
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the lossy proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
