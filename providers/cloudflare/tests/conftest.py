"""Fixtures for the Cloudflare adapter's tests: a fake Cloudflare API on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mxflip_cloudflare import CloudflareProvider, CloudflareSettings
from providers.cloudflare.tests.fake_cloudflare import ZONE, FakeCloudflare, fake, token

__all__ = ["ZONE", "fake", "token"]  # fixtures shared with the core's onboarding tests


@pytest.fixture
def sleeps() -> list[float]:
    """Retry waits the provider asked for (nothing really sleeps)."""
    return []


MakeProvider = Callable[..., CloudflareProvider]


@pytest.fixture
def make_provider(
    fake: FakeCloudflare, token: str, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> Iterator[MakeProvider]:
    """Build a provider against the fake; keyword arguments are settings."""
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    built: list[CloudflareProvider] = []

    def make(**settings: object) -> CloudflareProvider:
        values: dict[str, object] = {"base_url": fake.base_url, **settings}
        provider = CloudflareProvider.from_settings(
            "cf", CloudflareSettings.model_validate(values), sleep=sleeps.append
        )
        built.append(provider)
        return provider

    yield make
    for provider in built:
        provider.close()
