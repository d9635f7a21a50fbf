"""Listing zones and the harmless access check (mxflip init / doctor) against the fake."""

from __future__ import annotations

import pytest

from mxflip import ProviderAuthError
from providers.cloudflare.tests.conftest import ZONE, MakeProvider
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare


def test_list_zones_pages_through_every_zone(fake: FakeCloudflare, make_provider: MakeProvider):
    for i in range(120):
        fake.add_zone(f"z{i:03d}.test")
    zones = make_provider().list_zones()
    assert len(zones) == 121
    assert "z119.test." in zones and ZONE in zones
    pages = [r.query.get("page") for r in fake.calls("GET", "/zones") if "name" not in r.query]
    assert pages == ["1", "2", "3"]


def test_check_access_with_read_only_token_names_the_permission(
    fake: FakeCloudflare, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
):
    fake.add_token("read-only", frozenset({"zone:read", "dns:read"}))
    monkeypatch.setenv("RO_TOKEN", "read-only")
    checks = {c.what: c for c in make_provider(api_token_env="RO_TOKEN").check_access(ZONE)}
    assert checks["read"].ok is True
    assert checks["change"].ok is False
    assert "Zone:DNS:Edit" in (checks["change"].hint or "")
    assert fake.mx_of(ZONE, ZONE) == set()


def test_check_access_with_a_wrong_token_fails_with_the_fix(
    fake: FakeCloudflare, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BAD_TOKEN", "not-a-token")
    with pytest.raises(ProviderAuthError) as caught:
        make_provider(api_token_env="BAD_TOKEN").check_access(ZONE)
    assert "does not accept the API token" in str(caught.value)
    assert "copied whole" in str(caught.value)


def test_check_access_reports_an_expired_token(
    fake: FakeCloudflare, make_provider: MakeProvider, token: str
):
    fake.token_status[token] = "expired"
    (check,) = make_provider().check_access(ZONE)
    assert (check.what, check.ok) == ("token", False)
    assert "expired" in check.detail
