"""Discovery, configuration and the test emulator's own guarantees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mxflip.testing import load_provider_class, parse_config
from mxflip_route53 import Route53Provider, Route53Settings
from tests.support import moto_route53
from tests.support.moto_route53 import create_zone, fresh_zone_name


def test_registered_as_route53() -> None:
    assert load_provider_class("route53") is Route53Provider


def test_configured_from_toml_table(tmp_path: Path) -> None:
    raw = {
        "providers": {
            "aws": {
                "type": "route53",
                "profile": "dns-admin",
                "hosted_zone_id": {"example.com": "/hostedzone/Z0123456789ABC"},
                "wait_timeout": 120,
            }
        },
        "domains": {
            "example.com": {
                "provider": "aws",
                "primary": ["10 mx1.example.com"],
                "backup": ["10 mx.backup.example.net"],
            }
        },
    }
    config = parse_config(raw, path=tmp_path / "mxflip.toml")
    settings = config.providers["aws"].settings
    assert isinstance(settings, Route53Settings)
    assert settings.profile == "dns-admin"
    assert settings.pinned_zone_id("example.com.") == ("Z0123456789ABC", True)


def test_nameservers_are_the_zones_delegation(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    zone_id = create_zone(admin, zone)
    expected = admin.get_hosted_zone(Id=zone_id)["DelegationSet"]["NameServers"]
    provider, _ = make_provider()
    assert provider.nameservers(zone) == sorted(ns.rstrip(".") for ns in expected)


def test_moto_fixture_fails_under_ci_when_it_cannot_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> None:
        raise OSError("address already in use")

    monkeypatch.setattr(moto_route53.MotoServer, "__init__", lambda self: broken())
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI=true"):
        moto_route53.start_moto()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        moto_route53.start_moto()
