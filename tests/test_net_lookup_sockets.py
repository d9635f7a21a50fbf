"""Readiness lookups resist spoofed answers: every query leaves from a socket of its own
(a fresh source port) with an unpredictable ID, and only the resolver's own answer to that
question is taken."""

from __future__ import annotations

import asyncio
import logging
import socket
import types

import dns.message
import dns.rrset
import pytest

from mxflip.hostport import HostPort
from mxflip.net.lookup import Lookup


class Resolver(asyncio.DatagramProtocol):
    """A loopback resolver that answers every A question with 192.0.2.1 and records where
    each query came from; ``spoof`` first sends a forged answer from another socket."""

    def __init__(self, spoof: bool = False) -> None:
        self.seen: list[tuple[int, int]] = []  # (source port, query ID)
        self.spoof = spoof
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        query = dns.message.from_wire(data)
        self.seen.append((addr[1], query.id))
        question = query.question[0]
        if question.rdtype != 1:  # only A; AAAA and others get no data
            assert self.transport is not None
            self.transport.sendto(dns.message.make_response(query).to_wire(), addr)
            return
        if self.spoof:
            forged = dns.message.make_response(query)
            forged.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "203.0.113.66"))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.sendto(forged.to_wire(), addr)  # right ID, wrong source port
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "192.0.2.1"))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


async def serve(spoof: bool = False) -> tuple[Resolver, asyncio.DatagramTransport, HostPort]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: Resolver(spoof), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    return protocol, transport, HostPort("127.0.0.1", port)


def test_every_query_has_its_own_source_port_and_a_random_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mxflip.net import dnswire

    # Every socket the lookups make, counted where they make it (not the event loop's).
    made: list[socket.socket] = []

    class Counted(socket.socket):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    shim = types.SimpleNamespace(**vars(socket))
    shim.socket = Counted
    monkeypatch.setattr(dnswire, "socket", shim)

    async def scenario() -> list[tuple[int, int]]:
        resolver, transport, where = await serve()
        try:
            lookup = Lookup([where], timeout=5)
            found = await asyncio.gather(*(lookup.addresses(f"mx{i}.lab.test.") for i in range(40)))
            assert all(f.addresses == ("192.0.2.1",) for f in found)
        finally:
            transport.close()
        return resolver.seen

    seen = asyncio.run(scenario())
    assert len(seen) == 80  # A and AAAA of 40 hosts
    # One fresh socket per query, each closed after its answer: no socket is shared.
    assert len(made) == 80 and all(s.fileno() == -1 for s in made)
    ports = [port for port, _ in seen]
    ids = [qid for _, qid in seen]
    # The kernel may hand a later query the port of a socket already closed (random
    # ports, so rarely): nearly all differ, where a shared socket would give one port.
    assert len(set(ports)) > 70
    assert len(set(ids)) > 70  # 16 random bits each: a few collisions at most, no sequence
    assert sorted(ids) != ids


def test_an_answer_from_another_port_is_ignored() -> None:
    async def scenario() -> tuple[str, ...]:
        _, transport, where = await serve(spoof=True)
        try:
            return (await Lookup([where], timeout=5).addresses("mx.lab.test.")).addresses
        finally:
            transport.close()

    assert asyncio.run(scenario()) == ("192.0.2.1",)


def test_status_questions_end_at_an_unreadable_answer() -> None:
    """Strict questions (status, verification) report a garbled answer with our ID at
    once, as dnspython did; readiness treats it like silence. A refused port is silence
    for both (as it was through dnspython)."""
    from mxflip.net.dns import DNSClient
    from mxflip.net.dnswire import Question
    from tests.support.ports import free_port

    class Garbler(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
            # our ID, a reply header, then a question name cut short
            self.transport.sendto(data[:2] + b"\x84\x00" + b"\x00\x01" + bytes(6) + b"\x03ab", addr)

    async def run() -> tuple[object, ...]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Garbler, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        question = Question.make("example.test.", "MX", recursive=False)
        client = DNSClient(0.7)
        try:
            return await asyncio.gather(
                client.ask_wire(question, "127.0.0.1", free_port(), strict=True),
                client.ask_wire(question, "127.0.0.1", port, strict=True),
                client.ask_wire(question, "127.0.0.1", port),
            )
        finally:
            transport.close()

    refused, garbled, lenient = asyncio.run(run())
    assert refused.unreachable and refused.tries == 3  # type: ignore[attr-defined]
    assert refused.error.startswith("no answer")  # type: ignore[attr-defined]
    assert garbled.error.startswith("bad answer") and not garbled.unreachable  # type: ignore[attr-defined]
    assert lenient.unreachable and lenient.tries == 3  # type: ignore[attr-defined]


def test_a_wire_lookup_is_one_dns_query_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    """``-vv`` shows the readiness lookups (the wire format) as it shows dnspython's."""

    async def scenario() -> HostPort:
        _, transport, where = await serve()
        try:
            await Lookup([where], timeout=5).addresses("mx.lab.test.")
        finally:
            transport.close()
        return where

    with caplog.at_level(logging.DEBUG, logger="mxflip.net.dns"):
        where = asyncio.run(scenario())
    lines = {r.__dict__["rdtype"]: r.__dict__ for r in caplog.records if r.msg == "dns query"}
    assert set(lines) == {"A", "AAAA"}
    assert lines["A"]["server"] == f"127.0.0.1#{where.port}"
    assert lines["A"]["qname"] == "mx.lab.test." and lines["A"]["rcode"] == "NOERROR"


def test_a_closed_loop_leaves_no_socket_watcher_or_descriptor_behind() -> None:
    """The UDP queries of a loop share one watcher (an epoll set on Linux); it goes with
    its loop, in-flight timers included, so loop after loop leaks nothing."""
    import gc
    import os

    from mxflip.net import dnswire

    async def scenario() -> None:
        _, transport, where = await serve()
        try:
            lookup = Lookup([where], timeout=5)
            await asyncio.gather(*(lookup.addresses(f"mx{i}.lab.test.") for i in range(5)))
        finally:
            transport.close()

    asyncio.run(scenario())  # the first run may open what stays (the loop's own)
    gc.collect()
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(20):
        asyncio.run(scenario())
    gc.collect()
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    assert after <= before
    assert len(dnswire._WATCHERS) == 0
