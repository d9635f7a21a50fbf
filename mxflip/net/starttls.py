"""TLS inside an established SMTP connection (STARTTLS), through the ``ssl`` module's
memory BIOs on top of the connection's plain asyncio stream.

``StreamWriter.start_tls`` puts asyncio's ``SSLProtocol`` between the socket and the
stream, and every ``SSLProtocol`` allocates and zeroes a 256 KiB read buffer: ~0.15 ms of
CPU per connection (page faults), about a tenth of a whole STARTTLS session's CPU in
``bench/bench_check.py``, beside its flow-control state machine. An SMTP session exchanges
a few hundred bytes, so :class:`TLSStream` does the same job with an ``ssl.SSLObject``
fed from the plain stream, and offers what the SMTP client uses of a reader and a writer
(``readline``, ``write``, ``drain``, ``close``, ``wait_closed``, ``get_extra_info``,
``transport``). The certificate checks are OpenSSL's, exactly as before: the same
context, the same ``do_handshake``, the same exceptions.

The handshake's expensive step (the call that reads the server's flight: certificate
chain and signature checks, key agreement, about 0.45 ms of CPU for an ECDSA chain) runs
in a small pool of threads beside the event loop on a machine with two CPUs or more:
``SSLObject.do_handshake`` releases the GIL while OpenSSL works, so with hundreds of
sessions in flight the loop goes on with the others' dialogues meanwhile
(``bench/bench_check.py --cli``). The loop stays the only one of the command; the
threads only ever run that one call, on a TLS object nothing else touches until it
returns.

Two things keep per-session work out of the busy stretch after the greetings, where the
CPU of a large check is the limit: the client's first flight (the ClientHello, its key
share included) can be built ahead with :func:`prepare_tls` while the server's greeting is
awaited, and the client's last flight (TLS 1.3's Finished) leaves with the first command
sent inside TLS instead of in a write of its own, as a browser's Finished goes with its
first request.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import queue
import ssl
import threading
from dataclasses import dataclass
from typing import Any

#: Ciphertext read from the socket at once.
_CHUNK = 65536
#: Plaintext taken from TLS at once: one TLS record at most (``SSLObject.read`` allocates
#: what it is asked for, then shrinks it).
_RECORD = 16384
#: Handshake rounds (each waits for the peer) before giving up; TLS needs two or three.
_MAX_ROUNDS = 64
#: Handshake threads at most.
_MAX_THREADS = 2


def handshake_thread_count() -> int:
    """How many threads may compute handshakes beside the event loop: none on one CPU (a
    thread would only add its hand-over to the loop's CPU), else as many as the CPUs this
    process may run on, at most ``_MAX_THREADS``. Two on two CPUs, not one: the loop's
    thread waits on its servers for part of a large check, and a second handshake thread
    then runs on its CPU (``bench/bench_check.py --cli`` on an idle two-CPU machine: all
    domains in 1.21–1.28 s with two threads, 1.27–1.30 s with one, 1.31–1.50 s with none)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else min(_MAX_THREADS, cpus)


class HandshakeThreads:
    """A few daemon threads that run ``SSLObject.do_handshake`` calls handed over by an
    event loop, and settle each call's future on that loop.

    Lighter than ``loop.run_in_executor`` (a ``concurrent.futures`` future, its condition
    and a chained asyncio future per call: in ``bench/bench_check.py`` the executor's
    hand-over cost more CPU than it moved for the smaller handshakes). A call whose future
    was cancelled before a thread took it (a step timeout, Ctrl-C) is skipped; one
    cancelled while it runs ends in its thread and its outcome is dropped. The threads are
    daemons (an idle one must not hold the process at exit) and, so that no handshake is
    inside OpenSSL while the interpreter and then OpenSSL shut down, :meth:`close` (run
    at exit) lets the running calls finish and stops the threads taking new ones."""

    def __init__(self, threads: int) -> None:
        self._queue: queue.SimpleQueue[tuple[asyncio.Future[None], ssl.SSLObject] | None] = (
            queue.SimpleQueue()
        )
        self._busy = 0
        self._closing = False
        self._idle = threading.Condition()
        self.threads = [
            threading.Thread(target=self._work, name=f"mxflip-tls-{number}", daemon=True)
            for number in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def do_handshake(self, obj: ssl.SSLObject) -> asyncio.Future[None]:
        """``obj.do_handshake()`` in a thread; the future ends as the call does (with its
        exception, ``SSLWantReadError`` included). Call from the loop's thread."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put((future, obj))
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, obj = item
            with self._idle:
                if self._closing:
                    return
                if future.cancelled():
                    continue
                self._busy += 1
            error: BaseException | None = None
            try:
                obj.do_handshake()
            except BaseException as exc:  # whatever it is, the awaiting task raises it
                error = exc
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()
            # RuntimeError: the loop is closed, nobody waits for this handshake any more
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_settle, future, error)
            del item, future, obj, error  # hold no session's TLS object while idle

    def close(self, timeout: float = 5.0) -> None:
        """Let the running calls end (within ``timeout``), then stop the threads."""
        with self._idle:
            self._closing = True
            self._idle.wait_for(lambda: self._busy == 0, timeout)
        for _ in self.threads:
            self._queue.put(None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return  # cancelled meanwhile
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


_threads: HandshakeThreads | None = None
_threads_lock = threading.Lock()


def _handshake_threads() -> HandshakeThreads | None:
    """The process's handshake threads (started on first use, shared by every event loop
    the process runs, stopped at exit), or None without a CPU to spare."""
    global _threads
    if _threads is None:
        count = handshake_thread_count()
        if count == 0:
            return None
        with _threads_lock:
            if _threads is None:
                _threads = HandshakeThreads(count)
                atexit.register(_threads.close)
    return _threads


def _forget_threads() -> None:
    """In a forked child: the parent's threads do not exist there; start new ones."""
    global _threads
    _threads = None


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_threads)


class TLSStream:
    """One TLS connection over a plain stream pair: reader and writer in one."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        obj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        limit: int,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._obj = obj
        self._incoming = incoming
        self._outgoing = outgoing
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False
        #: The socket's transport (``abort()`` drops the connection at once).
        self.transport = writer.transport

    # -- handshake -------------------------------------------------------------------

    async def _handshake(self, threads: HandshakeThreads | None, *, started: bool) -> None:
        if started:  # the first flight is built (prepare_tls): send it, read the answer
            await self._send_pending()
            await self._receive()
        for _ in range(_MAX_ROUNDS):
            try:
                if threads is not None and self._incoming.pending:
                    # The peer's flight to check: in a thread (see the module's doc). If
                    # this task is cancelled meanwhile, the call still ends in its thread
                    # and its outcome is dropped; the TLS object and its buffers are never
                    # touched again (the stream is not handed out).
                    await threads.do_handshake(self._obj)
                else:
                    self._obj.do_handshake()
            except ssl.SSLWantReadError:
                await self._send_pending()
                await self._receive()
                continue
            # Done on our side. What TLS still has to say (TLS 1.3: the client's Finished)
            # goes with the first write or read, whichever comes first (both flush it):
            # one segment and one wake-up less for both ends.
            return
        raise ssl.SSLError("the TLS handshake did not finish")

    async def _send_pending(self) -> None:
        if self._outgoing.pending:
            self._writer.write(self._outgoing.read())
            await self._writer.drain()

    async def _receive(self) -> None:
        """Ciphertext from the socket into TLS; the peer's end of the stream ends TLS's
        input too (TLS then tells a clean close from a cut one)."""
        data = await self._reader.read(_CHUNK)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    # -- reading ---------------------------------------------------------------------

    async def readline(self) -> bytes:
        """A line up to and including ``\\n``; at the end of the stream, what is left
        (without ``\\n``, maybe empty). Raises ValueError for a line over the limit, as
        ``StreamReader.readline`` does."""
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end >= 0:
                if end > self._limit:  # as StreamReader: the separator may sit at the limit
                    del self._buffer[: end + 1]
                    raise ValueError("a line longer than the limit")
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            searched = len(self._buffer)
            if searched > self._limit:
                self._buffer.clear()
                raise ValueError("a line longer than the limit")
            if self._eof:
                rest = bytes(self._buffer)
                self._buffer.clear()
                return rest
            await self._read_more()

    async def _read_more(self) -> None:
        """Some plaintext into the buffer, or the end of the stream."""
        incoming, obj = self._incoming, self._obj
        while True:
            if not incoming.pending and not incoming.eof and not obj.pending():
                # Nothing TLS could read yet (it reads records from this BIO as they are
                # asked for, never ahead): what read() would say with SSLWantReadError,
                # without the exception (a few µs, several times a session).
                await self._send_pending()
                await self._receive()
                continue
            try:
                data = obj.read(_RECORD)
            except ssl.SSLWantReadError:
                await self._send_pending()  # TLS may have something to say first
                await self._receive()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # the peer closed, with or without TLS's close_notify: the end of the
                # stream, as asyncio's own TLS transport reports both
                self._eof = True
                return
            if not data:
                self._eof = True
                return
            self._buffer += data
            return

    # -- writing ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self._obj.write(data)
        self._writer.write(self._outgoing.read())

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        """Say close_notify (without waiting for the peer's) and close the socket."""
        # SSLWantReadError: the peer's close_notify is not waited for
        with contextlib.suppress(ssl.SSLError):
            self._obj.unwrap()
        if self._outgoing.pending and not self._writer.is_closing():
            self._writer.write(self._outgoing.read())
        self._writer.close()

    async def wait_closed(self) -> None:
        await self._writer.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._obj
        if name == "sslcontext":
            return self._obj.context
        if name == "peercert":
            return self._obj.getpeercert()
        if name == "cipher":
            return self._obj.cipher()
        return self._writer.get_extra_info(name, default)


@dataclass(slots=True)
class PreparedTLS:
    """A client TLS session whose first flight (the ClientHello) is built, or being built
    in a handshake thread, and not yet sent: see :func:`prepare_tls`. Used once, by
    :func:`start_tls`; :meth:`drop` when it will not be."""

    context: ssl.SSLContext
    server_hostname: str
    obj: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO
    #: The call building the first flight in a handshake thread (None: built inline).
    #: Until it is done, nothing here is touched from the loop's thread.
    flight: asyncio.Future[None] | None

    async def ready(self) -> bool:
        """Whether the first flight is built and waits in ``outgoing`` (False: it could
        not be, and :func:`start_tls` sets up a session of its own instead, which fails
        the same way where the handshake is reported)."""
        flight = self.flight
        if flight is None:
            return True
        if flight.cancelled():
            return False
        try:
            await flight
        except ssl.SSLWantReadError:  # what a built ClientHello ends with
            return True
        except ssl.SSLError:
            return False
        return False  # a handshake never ends before the peer answered

    def drop(self) -> None:
        """Not used after all: a call still waiting for a thread is skipped."""
        if self.flight is not None:
            self.flight.cancel()


def _session(
    context: ssl.SSLContext, server_hostname: str
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A new client TLS object over two memory buffers (peer to us, us to peer)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    return context.wrap_bio(incoming, outgoing, server_hostname=server_hostname), incoming, outgoing


def prepare_tls(
    context: ssl.SSLContext, server_hostname: str, *, offload: bool = True
) -> PreparedTLS | None:
    """A TLS client session for ``server_hostname`` (the SNI name, and the name its
    certificate must carry) with its ClientHello built, key shares included: most of the
    client's CPU before the server's answer, done while nothing else waits for it (an
    SMTP client: while the server's greeting is awaited). Nothing is sent. With
    ``offload`` the ClientHello is built in a handshake thread when there is one (the
    loop meanwhile goes on with other connections). None when the session cannot be set
    up this way (:func:`start_tls` then sets one up itself and says why, at the STARTTLS
    step)."""
    try:
        obj, incoming, outgoing = _session(context, server_hostname)
    except (ssl.SSLError, ValueError):  # a name TLS refuses
        return None
    threads = _handshake_threads() if offload else None
    if threads is not None:
        flight = threads.do_handshake(obj)
        return PreparedTLS(context, server_hostname, obj, incoming, outgoing, flight)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:  # the ClientHello is in ``outgoing``, for the peer
        return PreparedTLS(context, server_hostname, obj, incoming, outgoing, None)
    except ssl.SSLError:  # a context that cannot start a handshake
        return None
    return None  # a handshake never ends before the peer answered


async def start_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    server_hostname: str,
    limit: int,
    *,
    offload: bool = True,
    prepared: PreparedTLS | None = None,
) -> TLSStream:
    """TLS over the connection ``reader``/``writer`` hold, handshake done (the peer
    verified as ``context`` asks). Raises what ``ssl`` raises (``SSLCertVerificationError``
    for a certificate that does not verify), or OSError when the connection fails.
    ``offload``: the handshake's checks may run in a handshake thread (when the machine
    has a CPU to spare); False keeps every call on the event loop's thread. ``prepared``:
    the session :func:`prepare_tls` set up for this context and name, used instead of a
    new one (one set up for another context or name is not used)."""
    if (
        prepared is not None
        and prepared.context is context
        and prepared.server_hostname == server_hostname
        and await prepared.ready()
    ):
        obj, incoming, outgoing = prepared.obj, prepared.incoming, prepared.outgoing
        started = True
    else:
        if prepared is not None:
            prepared.drop()
        obj, incoming, outgoing = _session(context, server_hostname)
        started = False
    stream = TLSStream(reader, writer, obj, incoming, outgoing, limit)
    await stream._handshake(_handshake_threads() if offload else None, started=started)
    return stream
