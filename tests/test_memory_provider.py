"""MemoryProvider passes the provider contract, and serves what it holds over DNS."""

from __future__ import annotations

from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import pytest

from mxflip.errors import ProviderError
from mxflip.hostport import parse_hostport
from mxflip.provider import Change, load_provider_class
from mxflip.records import RRset
from mxflip.testing.contract import ProviderContract
from mxflip.testing.memory import MemoryProvider, MemoryStore
from tests.support.memory import ZONE


class TestMemoryProviderContract(ProviderContract):
    @pytest.fixture
    def zone(self) -> str:
        return ZONE

    @pytest.fixture
    def provider(self, memory_store: MemoryStore) -> Iterator[MemoryProvider]:
        provider = MemoryProvider("mem", memory_store)
        yield provider
        provider.close()


def test_registered_type_loads(memory_store: MemoryStore) -> None:
    assert load_provider_class("memory") is MemoryProvider


def test_unknown_zone_and_foreign_names_are_refused(memory_store: MemoryStore) -> None:
    provider = MemoryProvider("mem", memory_store)
    with pytest.raises(ProviderError, match="not in memory store"):
        provider.read("elsewhere.test.", ["a.elsewhere.test."])
    with pytest.raises(ProviderError, match="not inside zone"):
        provider.read(ZONE, ["a.elsewhere.test."])


def test_nameservers_serve_the_store_on_loopback(memory_store: MemoryStore) -> None:
    provider = MemoryProvider("mem", memory_store)
    name = f"served.{ZONE}"
    rrset = RRset.of(name, 300, ["10 mx1.example.net.", "20 mx2.example.net."])
    (server,) = provider.nameservers(ZONE)
    address = parse_hostport(server, 53)
    assert address.host == "127.0.0.1"

    def ask(qname: str) -> dns.message.Message:
        query = dns.message.make_query(qname, "MX")
        return dns.query.udp(query, address.host, port=address.port, timeout=2)

    assert ask(name).rcode() == dns.rcode.NXDOMAIN
    provider.apply(ZONE, [Change(name, None, rrset)])
    answer = ask(name)
    assert answer.rcode() == dns.rcode.NOERROR
    (served,) = answer.answer
    assert served.ttl == 300
    assert sorted(r.to_text() for r in served) == ["10 mx1.example.net.", "20 mx2.example.net."]
