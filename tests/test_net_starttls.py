"""STARTTLS through mxflip.net.starttls reads lines exactly as asyncio's StreamReader
does (up to the first over-long line, which ends an SMTP conversation), and the end of
the stream the same whether or not the peer says close_notify."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxflip.net import starttls
from mxflip.net.starttls import HandshakeThreads, handshake_thread_count, start_tls

LIMIT = 64


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.lab.test").configure_cert(server)
    folder: Path = tmp_path_factory.mktemp("starttls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    return server, client


async def _lines(readline: object) -> list[bytes | str]:
    """readline() until the end of the stream or the first over-long line."""
    out: list[bytes | str] = []
    for _ in range(1000):
        try:
            line = await readline()  # type: ignore[operator]
        except ValueError:
            out.append("too long")
            return out
        out.append(line)
        if not line.endswith(b"\n"):
            return out
    raise AssertionError("the stream never ended")


def _over_tls(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], chunks: list[bytes], notify: bool
) -> list[bytes | str]:
    server_context, client_context = contexts

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await writer.start_tls(server_context)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        if notify:
            writer.close()  # TLS close_notify, then the socket
        else:
            writer.transport.abort()  # the socket only

    async def run() -> list[bytes | str]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            stream = await start_tls(reader, writer, client_context, "mx.lab.test", LIMIT)
            assert stream.get_extra_info("ssl_object").version() is not None
            try:
                return await _lines(stream.readline)
            finally:
                stream.close()
                await stream.wait_closed()
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(asyncio.wait_for(run(), 20))


def _plain(data: bytes) -> list[bytes | str]:
    async def run() -> list[bytes | str]:
        reader = asyncio.StreamReader(limit=LIMIT)
        reader.feed_data(data)
        reader.feed_eof()
        return await _lines(reader.readline)

    return asyncio.run(run())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.binary(max_size=90).map(lambda b: b.replace(b"\n", b"")), max_size=6),
    st.lists(st.booleans(), max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_lines_over_tls_are_the_lines_a_stream_reader_reads(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    texts: list[bytes],
    ends: list[bool],
    last_line_ends: bool,
    notify: bool,
) -> None:
    lines = [
        t + b"\r\n" if i < len(texts) - 1 or last_line_ends else t for i, t in enumerate(texts)
    ]
    data = b"".join(lines)
    # the server writes in pieces of its own (TLS records), not line by line
    cut = [i for i, flag in zip(range(1, len(data)), ends * 50, strict=False) if flag][:5]
    chunks = [data[a:b] for a, b in zip([0, *cut], [*cut, len(data)], strict=True) if data[a:b]]
    expected = _plain(data)
    got = _over_tls(contexts, chunks, notify)
    # after an over-long line an SMTP conversation is over: compare up to it
    assert got == expected


@pytest.mark.parametrize("offload", [True, False], ids=["handshake-thread", "loop-thread"])
def test_a_certificate_for_another_name_fails_the_handshake(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], offload: bool
) -> None:
    server_context, client_context = contexts

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.start_tls(server_context)
        writer.close()

    async def run() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            with pytest.raises(ssl.SSLCertVerificationError):
                await start_tls(
                    reader, writer, client_context, "other.lab.test", LIMIT, offload=offload
                )
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(run(), 20))


@pytest.mark.parametrize("offload", [True, False], ids=["handshake-thread", "loop-thread"])
def test_plaintext_sent_after_the_starttls_reply_is_never_read_as_tls(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], offload: bool
) -> None:
    """Bytes a server (or someone on the path) sends in the clear right after its
    STARTTLS reply are the start of TLS to the client, never lines read as if they came
    through TLS (the STARTTLS injection problem): the handshake fails instead."""
    server_context, client_context = contexts

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 go ahead\r\n250 INJECTED\r\n")
        await writer.drain()
        with contextlib.suppress(ssl.SSLError, OSError):
            await writer.start_tls(server_context)
        writer.transport.abort()

    async def run() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                assert await reader.readline() == b"220 go ahead\r\n"
                with pytest.raises(ssl.SSLError):
                    await start_tls(
                        reader, writer, client_context, "mx.lab.test", LIMIT, offload=offload
                    )
            finally:
                writer.transport.abort()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_handshake_threads_only_with_a_second_cpu() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert handshake_thread_count() == (0 if cpus < 2 else 2)


def test_handshakes_cancelled_anywhere_leave_nothing_behind(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """Handshakes cut off by timeouts at every stage (waiting for the server, or while
    a handshake thread checks its flight) end in TimeoutError and nothing else: no error
    reaches the loop's exception handler, the threads go on serving, and a handshake
    afterwards works and reads its lines."""
    server_context, client_context = contexts
    errors: list[dict[str, object]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            await writer.start_tls(server_context)
            writer.write(b"250 ok\r\n")
            await writer.drain()
            await reader.read()
        writer.transport.abort()

    async def one(port: int, timeout: float) -> bytes | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            async with asyncio.timeout(timeout):
                stream = await start_tls(reader, writer, client_context, "mx.lab.test", LIMIT)
        except TimeoutError:
            writer.transport.abort()
            return None
        try:
            return await stream.readline()
        finally:
            stream.transport.abort()

    async def run() -> tuple[list[bytes | None], bytes | None]:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            # timeouts from well before the server's flight to after a whole handshake
            cut = await asyncio.gather(*(one(port, 0.0002 * i) for i in range(60)))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            stream = await start_tls(reader, writer, client_context, "mx.lab.test", LIMIT)
            line = await stream.readline()
            stream.close()
            await stream.wait_closed()
            return cut, line
        finally:
            server.close()
            await server.wait_closed()

    cut, line = asyncio.run(asyncio.wait_for(run(), 30))
    assert line == b"250 ok\r\n"
    assert None in cut  # some were cut off
    assert set(cut) <= {None, b"250 ok\r\n"}  # the others finished and read their line
    assert errors == []
    if handshake_thread_count():
        assert any(t.name.startswith("mxflip-tls") for t in threading.enumerate())


def test_handshake_threads_run_the_call_and_stop_when_closed(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """A call handed over ends as it would inline (here: TLS wants the peer's answer);
    one whose future was cancelled first is never run; close() stops the threads."""
    _, client_context = contexts
    threads = HandshakeThreads(2)
    ran: list[str] = []

    class Recorded:
        def __init__(self, name: str) -> None:
            self.name = name
            self.obj = client_context.wrap_bio(
                ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="mx.lab.test"
            )

        def do_handshake(self) -> None:
            ran.append(self.name)
            self.obj.do_handshake()

    async def run() -> None:
        skipped = threads.do_handshake(Recorded("skipped"))  # type: ignore[arg-type]
        skipped.cancel()
        with pytest.raises(ssl.SSLWantReadError):
            await threads.do_handshake(Recorded("run"))  # type: ignore[arg-type]

    asyncio.run(asyncio.wait_for(run(), 20))
    threads.close()
    for thread in threads.threads:
        thread.join(5)
        assert not thread.is_alive()
    assert ran == ["run"]


def test_a_forked_child_starts_handshake_threads_of_its_own(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """A process forked after handshakes ran has none of its parent's threads: its own
    handshakes get new ones instead of waiting forever on a queue nobody reads."""
    _, client_context = contexts
    if not handshake_thread_count():
        pytest.skip("one CPU: no handshake threads")

    async def wants_read() -> str:
        threads = starttls._handshake_threads()
        assert threads is not None
        obj = client_context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="x.test")
        try:
            async with asyncio.timeout(10):
                await threads.do_handshake(obj)
        except ssl.SSLWantReadError:
            return "ran"
        return "finished?"

    assert asyncio.run(wants_read()) == "ran"  # the parent's threads exist
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its handshake ran in a thread
        code = 1
        try:
            code = 0 if asyncio.run(wants_read()) == "ran" else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _serve_one_line(server_context: ssl.SSLContext) -> Any:
    """A TLS server that answers the first line it reads with ``250 got LINE``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            await writer.start_tls(server_context)
            line = await reader.readline()
            writer.write(b"250 got " + line)
            await writer.drain()
            await reader.read()
        writer.transport.abort()

    return serve


@contextlib.asynccontextmanager
async def _serving(serve: Any) -> AsyncIterator[int]:
    """``serve`` on a loopback port (yielded) for the duration of the block."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _uses_prepared(
    port: int, context: ssl.SSLContext, prepared: starttls.PreparedTLS | None
) -> bool:
    """A handshake with mx.lab.test given ``prepared``: did it use that session?"""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    stream = await start_tls(reader, writer, context, "mx.lab.test", LIMIT, prepared=prepared)
    used = prepared is not None and stream.get_extra_info("ssl_object") is prepared.obj
    stream.close()
    await stream.wait_closed()
    return used


@pytest.mark.parametrize("offload", [True, False], ids=["handshake-thread", "loop-thread"])
def test_a_prepared_session_is_the_one_the_handshake_uses(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], offload: bool
) -> None:
    """The session prepare_tls built (its ClientHello made before the connection needs
    it) is the one start_tls completes, and it carries lines both ways. TLS 1.3's last
    client flight leaves with the first line written: two writes in all before the
    reply (the ClientHello; Finished and the line), not three."""
    server_context, client_context = contexts

    async def run() -> tuple[bytes, int]:
        async with _serving(_serve_one_line(server_context)) as port:
            prepared = starttls.prepare_tls(client_context, "mx.lab.test", offload=offload)
            assert prepared is not None
            assert (prepared.flight is None) == (not offload or not handshake_thread_count())
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writes: list[bytes] = []
            plain_write = writer.write

            def counted(data: bytes) -> None:
                writes.append(data)
                plain_write(data)

            writer.write = counted  # type: ignore[method-assign]
            stream = await start_tls(
                reader, writer, client_context, "mx.lab.test", LIMIT, prepared=prepared
            )
            assert stream.get_extra_info("ssl_object") is prepared.obj
            assert stream.get_extra_info("ssl_object").version() == "TLSv1.3"
            stream.write(b"EHLO x\r\n")
            await stream.drain()
            line = await stream.readline()
            written = len(writes)
            stream.transport.abort()
            return line, written

    line, writes_before_reply = asyncio.run(asyncio.wait_for(run(), 20))
    assert line == b"250 got EHLO x\r\n"
    assert writes_before_reply == 2


def test_a_prepared_session_for_another_name_or_context_is_dropped(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """start_tls uses a prepared session only for the context and name it was made for:
    another name gets a session of its own (its certificate is checked for that name),
    and so does another context."""
    server_context, client_context = contexts
    opportunistic = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    async def run() -> list[bool]:
        async with _serving(_serve_one_line(server_context)) as port:
            return [
                await _uses_prepared(port, client_context, starttls.prepare_tls(context, name))
                for context, name in [
                    (client_context, "mx.lab.test"),
                    (client_context, "other.lab.test"),
                    (opportunistic, "mx.lab.test"),
                ]
            ]

    assert asyncio.run(asyncio.wait_for(run(), 20)) == [True, False, False]


def test_a_name_tls_refuses_is_not_prepared(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """What wrap_bio refuses is left to start_tls, which reports it where it always did."""
    _, client_context = contexts
    assert starttls.prepare_tls(client_context, "") is None
    assert starttls.prepare_tls(client_context, ".leading.dot") is None


def test_prepared_handshakes_cancelled_anywhere_leave_nothing_behind(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """As test_handshakes_cancelled_anywhere_leave_nothing_behind, with sessions
    prepared just before connecting (some timeouts come while the ClientHello is still
    being built in a thread) and sessions dropped unused."""
    server_context, client_context = contexts
    errors: list[dict[str, object]] = []

    async def one(port: int, timeout: float, drop: bool) -> bytes | None:
        prepared = starttls.prepare_tls(client_context, "mx.lab.test")
        assert prepared is not None
        if drop:
            prepared.drop()
            return None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            async with asyncio.timeout(timeout):
                stream = await start_tls(
                    reader, writer, client_context, "mx.lab.test", LIMIT, prepared=prepared
                )
        except TimeoutError:
            writer.transport.abort()
            return None
        try:
            stream.write(b"x\r\n")
            return await stream.readline()
        finally:
            stream.transport.abort()

    async def run() -> list[bytes | None]:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        async with _serving(_serve_one_line(server_context)) as port:
            return await asyncio.gather(
                *(one(port, 0.0002 * i, i % 7 == 3) for i in range(60)),
                one(port, 10, False),
            )

    lines = asyncio.run(asyncio.wait_for(run(), 30))
    assert lines[-1] == b"250 got x\r\n"  # the last one had all the time it needed
    assert None in lines[:-1]  # some were cut off
    assert set(lines) <= {None, b"250 got x\r\n"}
    assert errors == []
