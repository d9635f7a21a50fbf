"""A file written by the adapter is a zone a real BIND9 loads and serves."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import pytest

from mxflip import Change, RRset
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings
from tests.support.bind import BindServer, zone_text

pytestmark = pytest.mark.real_server

ZONE = "served.test."
BEFORE = RRset.of(ZONE, 3600, ["10 mx1.served.test.", "20 mx2.example.net."])
AFTER = RRset.of(ZONE, 60, ["10 backup.example.org.", "20 mx3.served.test."])
SUB = RRset.of("lists.served.test.", 300, ["5 mx1.served.test."])


@pytest.fixture
def written(tmp_path: Path) -> str:
    path = tmp_path / "files" / "served.test.zone"
    path.parent.mkdir()
    path.write_text(
        zone_text(ZONE, "@ 3600 IN MX 10 mx1\n@ 3600 IN MX 20 mx2.example.net.\nmx1 IN A 127.0.0.9")
    )
    provider = ZoneFileProvider(
        "files", ZoneFileSettings(file=path), today=lambda: datetime.date(2026, 11, 23)
    )
    provider.apply(ZONE, [Change(ZONE, BEFORE, AFTER), Change(SUB.name, None, SUB)])
    return path.read_text()


@pytest.fixture
def server(tmp_path: Path, written: str) -> Iterator[BindServer]:
    bind = BindServer(tmp_path / "bind", {ZONE: written}, allow_update=False).start()
    yield bind
    bind.stop()


def ask(server: BindServer, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, "127.0.0.1", port=server.port, timeout=5)


def test_bind_serves_the_written_zone(server: BindServer) -> None:
    mx = ask(server, ZONE, "MX").find_rrset(
        dns.message.ANSWER, dns.name.from_text(ZONE), dns.rdataclass.IN, dns.rdatatype.MX
    )
    assert mx.ttl == 60
    assert {r.to_text() for r in mx} == {"10 backup.example.org.", "20 mx3.served.test."}
    sub = ask(server, SUB.name, "MX").answer
    assert [r.to_text() for rrset in sub for r in rrset] == ["5 mx1.served.test."]
    soa = ask(server, ZONE, "SOA").answer[0][0]
    assert soa.serial == 2  # zone_text() starts at 1: a counter, bumped once for the batch
