"""The provider contract, run against Route53 emulated by moto over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from mxflip.testing.contract import ProviderContract, ZoneListingContract
from mxflip_route53 import Route53Provider
from tests.support.moto_route53 import create_zone, fresh_zone_name


class TestRoute53Contract(ProviderContract, ZoneListingContract):
    many_names = 60
    listing_names = 310  # more than one ListResourceRecordSets page (300)

    @pytest.fixture
    def zone(self, admin: Any) -> str:
        name = fresh_zone_name("contract")
        create_zone(admin, name)
        return name

    @pytest.fixture
    def provider(self, make_provider: Any) -> Route53Provider:
        provider, _ = make_provider()
        return provider
