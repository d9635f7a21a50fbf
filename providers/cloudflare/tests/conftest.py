"""Fixtures for the Cloudflare adapter's tests: a fake Cloudflare API on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from mxflip_cloudflare import CloudflareProvider, CloudflareSettings
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare

ZONE = "example.test."


@pytest.fixture
def token() -> str:
    """A distinctive secret, so tests can assert it never leaks into output."""
    return f"cf-secret-{uuid.uuid4().hex}"


@pytest.fixture
def fake(token: str) -> Iterator[FakeCloudflare]:
    """A fresh fake API with zone example.test and a token allowed everything."""
    api = FakeCloudflare()
    api.add_token(token)
    api.add_zone(ZONE)
    with api.serve():
        yield api


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
