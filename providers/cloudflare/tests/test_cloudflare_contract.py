"""The provider contract, run with the real SDK against the fake Cloudflare API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mxflip.testing.contract import ProviderContract, ZoneListingContract
from mxflip_cloudflare import CloudflareProvider, CloudflareSettings
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare

TOKEN = "cf-contract-token"


@pytest.fixture(scope="module")
def contract_api() -> Iterator[FakeCloudflare]:
    api = FakeCloudflare()
    api.add_token(TOKEN)
    api.add_zone("contract.test")
    for i in range(60):  # more zones than one page of the zone listing (50)
        api.add_zone(f"other-{i:02d}.test")
    with api.serve():
        yield api


class TestCloudflareContract(ProviderContract, ZoneListingContract):
    ttl = 300
    other_ttl = 60  # Cloudflare's minimum outside Enterprise

    # A small page size makes every read page through the zone, and the second run
    # splits each zone change into several batches.
    @pytest.fixture(params=[200, 5], ids=["one-batch", "split-batches"])
    def provider(
        self,
        request: pytest.FixtureRequest,
        contract_api: FakeCloudflare,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[CloudflareProvider]:
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
        settings = CloudflareSettings(
            base_url=contract_api.base_url, batch_size=request.param, per_page=7
        )
        provider = CloudflareProvider.from_settings("cf", settings, sleep=lambda _: None)
        yield provider
        provider.close()

    @pytest.fixture
    def zone(self) -> str:
        return "contract.test."
