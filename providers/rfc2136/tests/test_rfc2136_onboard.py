"""Zone transfer listing and the harmless access check (mxflip init / doctor) on BIND9."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.message
import dns.query
import pytest

from mxflip import NotSupportedError, SystemClock
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer, zone_text
from tests.support.dnsserver import LabDNSServer

pytestmark = pytest.mark.real_server

ZONE = "locked.test."


def _soa_serial(server: LabDNSServer, zone: str) -> int:
    answer = dns.query.udp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=server.port)
    return int(answer.answer[0][0].serial)


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    """BIND that refuses zone transfers and updates."""
    server = BindServer(
        tmp_path_factory.mktemp("bind-locked"),
        {ZONE: zone_text(ZONE, "@ IN MX 10 mx.example.net.")},
        allow_update=False,
        extra_options="  allow-transfer { none; };",
    ).start()
    yield server
    server.stop()


class _SkewedClock(SystemClock):
    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


def _provider(server: BindServer) -> RFC2136Provider:
    settings = RFC2136Settings(server=server.address, tsig_key_file=server.key_file)
    return RFC2136Provider.from_settings("lab", settings)


def test_refused_transfer_says_how_to_allow_it(locked: BindServer) -> None:
    with pytest.raises(NotSupportedError) as caught:
        _provider(locked).list_mx(ZONE)
    assert "refuses zone transfers of locked.test." in str(caught.value)
    assert "allow-transfer" in str(caught.value)


def test_refused_update_is_a_failed_change_check(locked: BindServer) -> None:
    checks = {c.what: c for c in _provider(locked).check_access(ZONE)}
    assert checks["read"].ok is True
    assert checks["clock"].ok is True
    assert checks["change"].ok is False
    assert "refused the UPDATE" in checks["change"].detail


def test_change_check_changes_nothing(bind: BindServer) -> None:
    before = _soa_serial(bind, "contract.test.")
    checks = {c.what: c for c in _provider(bind).check_access("contract.test.")}
    assert checks["change"].ok is True
    assert _soa_serial(bind, "contract.test.") == before


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (90, None), (-900, False)])
def test_clock_skew_is_measured_against_the_servers_signature(
    bind: BindServer, offset: float, ok: bool | None
) -> None:
    # The provider measures the skew against its clock: this one runs `offset` s ahead.
    provider = RFC2136Provider("lab", _provider(bind)._client, clock=_SkewedClock(offset))
    check = next(c for c in provider.check_access("contract.test.") if c.what == "clock")
    assert check.ok is ok
    if ok is not True:
        assert "NTP" in (check.hint or "")


class _SkewedTime:
    """Stands in for the ``time`` module dnspython signs messages with."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset


def test_server_refusing_the_signing_time_is_a_clock_failure(
    bind: BindServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dns.message

    # Messages are signed 20 minutes in the past: BIND answers BADTIME.
    monkeypatch.setattr(dns.message, "time", _SkewedTime(-1200))
    (check,) = _provider(bind).check_access("contract.test.")
    assert (check.what, check.ok) == ("clock", False)
    assert "rejected the TSIG time" in check.detail
    assert "NTP" in (check.hint or "")


@pytest.mark.parametrize("server_fixture", ["knot", "pdns"])
def test_knot_and_powerdns_refuse_the_transfer_and_pass_the_access_check(
    request: pytest.FixtureRequest, server_fixture: str
) -> None:
    server: LabDNSServer = request.getfixturevalue(server_fixture)
    provider = RFC2136Provider.from_settings(
        server_fixture, RFC2136Settings(server=server.address, tsig_key_file=server.key_file)
    )
    with pytest.raises(NotSupportedError) as caught:
        provider.list_mx("contract.test.")
    assert f"{server.address} refuses zone transfers of contract.test." in str(caught.value)
    assert "\n" not in str(caught.value)
    before = _soa_serial(server, "contract.test.")
    checks = {c.what: c for c in provider.check_access("contract.test.")}
    assert {w: c.ok for w, c in checks.items()} == {"read": True, "clock": True, "change": True}
    assert _soa_serial(server, "contract.test.") == before
