"""The provider contract, run through RFC 2136 against real BIND9, Knot DNS and PowerDNS."""

from __future__ import annotations

import pytest

from mxflip.testing.contract import ProviderContract
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer
from tests.support.knot import KnotServer
from tests.support.pdns import PowerDNSServer


class TestRFC2136Contract(ProviderContract):
    many_names = 60

    @pytest.fixture
    def provider(self, bind: BindServer) -> RFC2136Provider:
        settings = RFC2136Settings(server=bind.address, tsig_key_file=bind.key_file)
        return RFC2136Provider.from_settings("lab", settings)

    @pytest.fixture
    def zone(self) -> str:
        return "contract.test."


class TestRFC2136ContractKnot(ProviderContract):
    many_names = 60

    @pytest.fixture
    def provider(self, knot: KnotServer) -> RFC2136Provider:
        settings = RFC2136Settings(server=knot.address, tsig_key_file=knot.key_file)
        return RFC2136Provider.from_settings("knot", settings)

    @pytest.fixture
    def zone(self) -> str:
        return "contract.test."


class TestRFC2136ContractPowerDNS(ProviderContract):
    many_names = 60

    @pytest.fixture
    def provider(self, pdns: PowerDNSServer) -> RFC2136Provider:
        settings = RFC2136Settings(server=pdns.address, tsig_key_file=pdns.key_file)
        return RFC2136Provider.from_settings("pdns", settings)

    @pytest.fixture
    def zone(self) -> str:
        return "contract.test."
