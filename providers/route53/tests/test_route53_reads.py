"""Reads and hosted-zone lookup: one walk per zone, ambiguous names refused."""

from __future__ import annotations

from typing import Any

import pytest

from mxflip import Change, ProviderError, RRset
from mxflip_route53._client import HostedZone, _complete_groups
from mxflip_route53.provider import _common_ancestor
from tests.support.moto_route53 import create_zone, fresh_zone_name


def mx(admin: Any, zone_id: str, name: str, *values: str, ttl: int = 300, **extra: Any) -> None:
    rrset = {
        "Name": name,
        "Type": "MX",
        "TTL": ttl,
        "ResourceRecords": [{"Value": v} for v in values],
        **extra,
    }
    admin.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": rrset}]},
    )


def test_one_walk_reads_every_domain_of_a_zone(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    zone_id = create_zone(admin, zone)
    names = [f"d{i:03}.{zone}" for i in range(100)]
    for name in names[:90]:  # ten of them have no MX at all
        mx(admin, zone_id, name, "10 mx1.example.net.", "20 mx2.example.net.")
    provider, counter = make_provider()
    seen: list[dict[str, Any]] = []
    provider._client.events.register(
        "before-parameter-build.route53.ListResourceRecordSets",
        lambda params, **_: seen.append(dict(params)),
    )

    result = provider.read(zone, names)

    assert counter.calls["ListResourceRecordSets"] == 1
    assert counter.calls["ListHostedZonesByName"] == 1
    assert seen[0]["StartRecordName"] == zone and seen[0]["StartRecordType"] == "MX"
    expected = RRset.of(names[0], 300, ["10 mx1.example.net.", "20 mx2.example.net."])
    assert result[names[0]] == expected
    assert [n for n, r in result.items() if r is None] == names[90:]


def test_walk_pages_through_a_large_zone(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    zone_id = create_zone(admin, zone)
    names = [f"p{i:03}.{zone}" for i in range(700)]
    admin.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": n,
                        "Type": "MX",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "5 mx.example.net."}],
                    },
                }
                for n in names
            ]
        },
    )
    provider, counter = make_provider()
    result = provider.read(zone, names)
    assert all(result[n] == RRset.of(n, 60, ["5 mx.example.net."]) for n in names)
    # 702 record sets (with SOA and NS) in pages of 300: one walk of three pages.
    assert counter.calls["ListResourceRecordSets"] == 3


def test_walk_stops_once_every_name_is_settled(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    zone_id = create_zone(admin, zone)
    names = [f"s{i:03}.{zone}" for i in range(400)]
    admin.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": n,
                        "Type": "MX",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "5 mx.example.net."}],
                    },
                }
                for n in names
            ]
        },
    )
    provider, counter = make_provider()
    # The zone apex sorts first and has NS/SOA after MX: one page settles it.
    assert provider.read(zone, [zone]) == {zone: None}
    assert counter.calls["ListResourceRecordSets"] == 1
    # One deep name starts the walk at itself.
    assert provider.read(zone, [names[350]])[names[350]] is not None
    assert counter.calls["ListResourceRecordSets"] == 2


def test_zone_lookup_is_remembered(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, counter = make_provider()
    provider.read(zone, [f"a.{zone}"])
    provider.read(zone, [f"b.{zone}"])
    provider.apply(zone, [Change(f"a.{zone}", None, RRset.of(f"a.{zone}", 60, ["1 a.test."]))])
    assert counter.calls["ListHostedZonesByName"] == 1


def test_unknown_zone_is_a_clear_error(make_provider: Any) -> None:
    provider, _ = make_provider()
    zone = fresh_zone_name("absent")
    with pytest.raises(ProviderError, match="no Route53 hosted zone named absent-") as err:
        provider.read(zone, [zone])
    assert err.value.hint and "profile" in err.value.hint


def test_same_name_public_and_private_is_refused(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name("split")
    public = create_zone(admin, zone)
    private = create_zone(admin, zone, private=True)
    provider, _ = make_provider()
    with pytest.raises(ProviderError, match="2 Route53 hosted zones are named") as err:
        provider.read(zone, [zone])
    assert public in str(err.value) and private in str(err.value)
    assert "private" in str(err.value) and "public" in str(err.value)
    assert err.value.hint and "hosted_zone_id" in err.value.hint
    with pytest.raises(ProviderError):
        provider.apply(zone, [Change(zone, None, RRset.of(zone, 60, ["1 a.test."]))])


@pytest.mark.parametrize("form", ["single", "table"])
def test_hosted_zone_id_says_which(admin: Any, make_provider: Any, form: str) -> None:
    zone = fresh_zone_name("split")
    create_zone(admin, zone)
    private = create_zone(admin, zone, private=True)
    mx(admin, private, zone, "10 internal.example.net.")
    pin = f"/hostedzone/{private}" if form == "single" else {zone.rstrip("."): private}
    provider, _ = make_provider(hosted_zone_id=pin)
    assert provider.read(zone, [zone]) == {zone: RRset.of(zone, 300, ["10 internal.example.net."])}
    assert provider.hosted_zone(zone).id == private


def test_table_entry_naming_another_zone_is_refused(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, _ = make_provider(hosted_zone_id={zone: "Z0000000000000000WRONG"})
    with pytest.raises(ProviderError, match="is not a zone of that name"):
        provider.read(zone, [zone])


def test_routing_policy_records_are_refused(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    zone_id = create_zone(admin, zone)
    name = f"w.{zone}"
    mx(admin, zone_id, name, "10 a.example.net.", SetIdentifier="one", Weight=10)
    provider, _ = make_provider()
    with pytest.raises(ProviderError, match="routing policy") as err:
        provider.read(zone, [name])
    assert err.value.hint and "simple" in err.value.hint


def test_delete_repeats_route53s_own_spelling(admin: Any, make_provider: Any) -> None:
    """A set written by another tool without trailing dots and in capitals still matches."""
    zone = fresh_zone_name()
    zone_id = create_zone(admin, zone)
    name = f"legacy.{zone}"
    mx(admin, zone_id, name, "20 MX2.Example.NET", "10 mx1.example.net")
    provider, _ = make_provider()
    live = provider.read(zone, [name])[name]
    assert live == RRset.of(name, 300, ["10 mx1.example.net.", "20 mx2.example.net."])
    new = RRset.of(name, 300, ["10 mail.example.org."])
    provider.apply(zone, [Change(name, live, new)])
    assert provider.read(zone, [name]) == {name: new}


def test_names_outside_the_zone_are_refused(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, _ = make_provider()
    with pytest.raises(ProviderError, match="is not inside zone"):
        provider.read(zone, ["elsewhere.example."])


def test_common_ancestor() -> None:
    assert _common_ancestor(["a.b.example.com."]) == "a.b.example.com."
    assert _common_ancestor(["a.b.example.com.", "c.b.example.com."]) == "b.example.com."
    assert _common_ancestor(["b.example.com.", "x.b.example.com."]) == "b.example.com."
    assert _common_ancestor(["example.com.", "x.example.com."]) == "example.com."


def test_listing_page_groups_only_whole_names() -> None:
    zones = [
        HostedZone("Z1", "a.test.", False),
        HostedZone("Z2", "b.test.", False),
        HostedZone("Z3", "b.test.", True),
        HostedZone("Z4", "c.test.", False),
    ]
    assert set(_complete_groups(zones, truncated=True)) == {"a.test.", "b.test."}
    assert len(_complete_groups(zones, truncated=False)["b.test."]) == 2
    assert set(_complete_groups(zones, truncated=False)) == {"a.test.", "b.test.", "c.test."}


def test_zone_beyond_the_first_listing_page_is_asked_for_by_name(
    admin: Any, make_provider: Any
) -> None:
    zone = fresh_zone_name("far")
    zone_id = create_zone(admin, zone)
    provider, counter = make_provider()

    def first_page_without_it(parsed: dict[str, Any], **_: Any) -> None:
        if "DNSName" not in parsed:  # the unfiltered first page of a large account
            parsed["HostedZones"] = [z for z in parsed["HostedZones"] if z["Name"] != zone][:3]
            parsed["IsTruncated"] = True

    provider._client.events.register(
        "after-call.route53.ListHostedZonesByName", first_page_without_it
    )
    assert provider.hosted_zone(zone).id == zone_id
    assert counter.calls["ListHostedZonesByName"] == 2
    provider.hosted_zone(zone)
    assert counter.calls["ListHostedZonesByName"] == 2
