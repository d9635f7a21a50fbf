"""The provider contract, run through RFC 2136 against real BIND9, Knot DNS and PowerDNS
(gsqlite3): the servers people run, not only the one the adapter was written against.

The listing suite (``mxflip init``, ``mxflip doctor``) runs against BIND, whose test server
allows the key to transfer zones; Knot's and PowerDNS's do not, which
``test_rfc2136_onboard.py`` checks is said in one line."""

from __future__ import annotations

import pytest

from mxflip.testing.contract import ProviderContract, ZoneListingContract
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.dnsserver import LabDNSServer

pytestmark = pytest.mark.real_server


def _provider(request: pytest.FixtureRequest, server_fixture: str) -> RFC2136Provider:
    server: LabDNSServer = request.getfixturevalue(server_fixture)
    settings = RFC2136Settings(server=server.address, tsig_key_file=server.key_file)
    return RFC2136Provider.from_settings(server_fixture, settings)


class TestRFC2136Contract(ProviderContract):
    many_names = 60

    @pytest.fixture(params=["bind", "knot", "pdns"])
    def provider(self, request: pytest.FixtureRequest) -> RFC2136Provider:
        return _provider(request, request.param)

    @pytest.fixture
    def zone(self) -> str:
        return "contract.test."


class TestRFC2136ZoneListing(ZoneListingContract):
    lists_zones = False  # RFC 2136 cannot enumerate a server's zones: --zone names them

    @pytest.fixture
    def provider(self, request: pytest.FixtureRequest) -> RFC2136Provider:
        return _provider(request, "bind")

    @pytest.fixture
    def zone(self) -> str:
        return "contract.test."
