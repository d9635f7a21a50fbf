"""The provider contract, run against a real BIND9 through RFC 2136."""

from __future__ import annotations

import pytest

from mxflip.testing.contract import ProviderContract, ZoneListingContract
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer


class TestRFC2136Contract(ProviderContract, ZoneListingContract):
    many_names = 60
    lists_zones = False  # RFC 2136 cannot enumerate a server's zones: --zone names them

    @pytest.fixture
    def provider(self, bind: BindServer) -> RFC2136Provider:
        settings = RFC2136Settings(server=bind.address, tsig_key_file=bind.key_file)
        return RFC2136Provider.from_settings("lab", settings)

    @pytest.fixture
    def zone(self) -> str:
        return "contract.test."
