"""The provider contract, run through RFC 2136 against real BIND9, Knot DNS and PowerDNS
(gsqlite3): the servers people run, not only the one the adapter was written against."""

from __future__ import annotations

import pytest

from mxflip.testing.contract import ProviderContract
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.dnsserver import LabDNSServer

pytestmark = pytest.mark.real_server


class TestRFC2136Contract(ProviderContract):
    many_names = 60

    @pytest.fixture(params=["bind", "knot", "pdns"])
    def provider(self, request: pytest.FixtureRequest) -> RFC2136Provider:
        server: LabDNSServer = request.getfixturevalue(request.param)
        settings = RFC2136Settings(server=server.address, tsig_key_file=server.key_file)
        return RFC2136Provider.from_settings(request.param, settings)

    @pytest.fixture
    def zone(self) -> str:
        return "contract.test."
