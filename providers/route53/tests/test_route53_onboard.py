"""Listing hosted zones and the harmless access check (mxflip init / doctor) on moto."""

from __future__ import annotations

from typing import Any

from mxflip import RRset
from tests.support.moto_route53 import FaultProxy, create_zone, fresh_zone_name, put_mx


def test_list_zones_pages_through_the_account(admin: Any, make_provider: Any) -> None:
    made = {fresh_zone_name("list") for _ in range(105)}
    for name in made:
        create_zone(admin, name)
    provider, _ = make_provider()
    assert made <= set(provider.list_zones())


def test_list_zones_follows_next_dns_name(make_provider: Any, monkeypatch: Any) -> None:
    """moto answers ListHostedZonesByName in one page; Route53 pages by 100."""
    provider, _ = make_provider()
    pages = {
        None: {
            "HostedZones": [{"Id": "/hostedzone/Z1", "Name": "a.test."}],
            "IsTruncated": True,
            "NextDNSName": "b.test.",
            "NextHostedZoneId": "Z2",
        },
        "b.test.": {"HostedZones": [{"Id": "/hostedzone/Z2", "Name": "b.test."}]},
    }
    asked: list[dict[str, Any]] = []

    def call(operation: str, **params: Any) -> dict[str, Any]:
        assert operation == "ListHostedZonesByName"
        asked.append(params)
        return pages[params.get("DNSName")]

    monkeypatch.setattr(provider._client, "call", call)
    assert provider.list_zones() == ["a.test.", "b.test."]
    assert asked[1] == {"DNSName": "b.test.", "HostedZoneId": "Z2", "MaxItems": "100"}


def test_denied_change_is_reported_with_the_iam_action(
    admin: Any, make_provider: Any, proxy: FaultProxy
) -> None:
    zone = fresh_zone_name("denied")
    create_zone(admin, zone)
    provider, _ = make_provider(endpoint_url=proxy.url)
    proxy.inject(
        "ChangeResourceRecordSets",
        403,
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
        "route53:ChangeResourceRecordSets on resource",
    )
    checks = {c.what: c for c in provider.check_access(zone)}
    assert checks["read"].ok is True
    assert checks["change"].ok is False
    assert "route53:ChangeResourceRecordSets" in checks["change"].detail
    assert "IAM policy" in (checks["change"].hint or "")


def test_list_mx_leaves_out_weighted_sets(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name("weighted")
    zone_id = create_zone(admin, zone)
    put_mx(admin, zone_id, f"w.{zone}", 300, "10 a.example.net.", SetIdentifier="a", Weight=1)
    put_mx(admin, zone_id, zone, 900, "10 mx.example.net.")
    provider, _ = make_provider()
    assert provider.list_mx(zone).rrsets == (RRset.of(zone, 900, ["10 mx.example.net."]),)
