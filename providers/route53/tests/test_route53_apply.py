"""Applying and waiting: one conditional batch per zone, splits only at Route53's limits,
stale views refused, INSYNC polled with bounded backoff on an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from mxflip import Change, ProviderError, RRset, StaleExpectationError, apply_changes
from mxflip_route53 import _batch
from tests.support.moto_route53 import FakeClock, create_zone, fresh_zone_name


def batches_of(provider: Any) -> list[list[dict[str, Any]]]:
    """Record the Changes list of every ChangeResourceRecordSets request."""
    sent: list[list[dict[str, Any]]] = []
    provider._client.events.register(
        "before-parameter-build.route53.ChangeResourceRecordSets",
        lambda params, **_: sent.append(params["ChangeBatch"]["Changes"]),
    )
    return sent


def weight(changes: list[dict[str, Any]]) -> tuple[int, int]:
    values = [r["Value"] for c in changes for r in c["ResourceRecordSet"]["ResourceRecords"]]
    return len(values), sum(len(v) for v in values)


def test_a_thousand_domains_in_one_zone(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name("big")
    create_zone(admin, zone)
    provider, counter = make_provider()
    sent = batches_of(provider)
    names = [f"d{i:04}.{zone}" for i in range(1000)]
    before = [RRset.of(n, 3600, ["10 mx1.proxy.example.net."]) for n in names]

    handle = provider.apply(zone, [Change(r.name, None, r) for r in before])
    provider.wait(handle, 60)
    # 1,000 CREATEs of one record each: exactly at the limit, one atomic batch.
    assert counter.calls["ChangeResourceRecordSets"] == 1
    assert len(sent[0]) == 1000

    assert provider.read(zone, names) == {r.name: r for r in before}
    reads = counter.calls["ListResourceRecordSets"]
    assert reads == 4  # 1,002 record sets, pages of 300: one walk

    after = [RRset.of(n, 60, ["10 mail.example.org."]) for n in names]
    sent.clear()
    handle = provider.apply(
        zone, [Change(b.name, b, a) for b, a in zip(before, after, strict=True)]
    )
    provider.wait(handle, 60)
    # DELETE + CREATE per name is 2,000 records: the fewest batches the limit allows.
    assert counter.calls["ChangeResourceRecordSets"] == 3
    assert len(sent) == 2
    assert all(weight(b)[0] <= _batch.MAX_RECORDS for b in sent)
    for batch in sent:  # a name's DELETE and CREATE always travel together
        deleted = {c["ResourceRecordSet"]["Name"] for c in batch if c["Action"] == "DELETE"}
        created = {c["ResourceRecordSet"]["Name"] for c in batch if c["Action"] == "CREATE"}
        assert deleted == created
    assert len(handle.detail["change_ids"]) == 2
    assert provider.read(zone, names) == {r.name: r for r in after}


def test_value_characters_force_a_split(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name("long")
    create_zone(admin, zone)
    provider, counter = make_provider()
    sent = batches_of(provider)
    label = "h" * 60
    hosts = [f"{label}{i}.{label}.{label}.example.net." for i in range(4)]  # ~200 chars each
    rrsets = [
        RRset.of(f"n{i:02}.{zone}", 300, [f"{10 + k} {h}" for k, h in enumerate(hosts)])
        for i in range(50)
    ]
    provider.wait(provider.apply(zone, [Change(r.name, None, r) for r in rrsets]), 60)
    assert counter.calls["ChangeResourceRecordSets"] == 2
    assert all(weight(b)[1] <= _batch.MAX_VALUE_CHARS for b in sent)
    assert provider.read(zone, [r.name for r in rrsets]) == {r.name: r for r in rrsets}


def test_split_counts_upsert_double() -> None:
    item = _batch.Item("UPSERT", "a.test.", 60, ("10 a.test.",) * 300)
    assert item.weight == (600, 6000)
    groups = [(item,), (item,)]
    assert len(_batch.split(groups)) == 2
    create = _batch.Item("CREATE", "a.test.", 60, ("10 a.test.",) * 300)
    assert len(_batch.split([(create,), (create,), (create,)])) == 1


def test_a_change_too_big_for_any_batch_is_refused() -> None:
    item = _batch.Item("CREATE", "a.test.", 60, ("10 a.test.",) * 1001)
    with pytest.raises(ProviderError, match="alone exceeds"):
        _batch.split([(item,)])


def test_stale_view_fails_the_whole_batch(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, _ = make_provider()
    names = [f"s{i}.{zone}" for i in range(5)]
    before = [RRset.of(n, 300, ["10 mx1.example.net."]) for n in names]
    provider.wait(provider.apply(zone, [Change(r.name, None, r) for r in before]), 60)
    # Someone else edits one name after mxflip read the zone.
    edited = RRset.of(names[3], 300, ["10 someone-else.example.net."])
    provider.wait(provider.apply(zone, [Change(names[3], before[3], edited)]), 60)

    new = [RRset.of(n, 60, ["5 mail.example.org."]) for n in names]
    with pytest.raises(StaleExpectationError) as err:
        provider.apply(zone, [Change(b.name, b, a) for b, a in zip(before, new, strict=True)])
    assert "the records changed since the plan was made" in str(err.value)
    assert "nothing in it was changed" in str(err.value)
    assert provider.read(zone, names) == {r.name: r for r in [*before[:3], edited, *before[4:]]}


def test_expected_none_creates_only_and_new_none_deletes_only(
    admin: Any, make_provider: Any
) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, _ = make_provider()
    sent = batches_of(provider)
    rrset = RRset.of(f"x.{zone}", 300, ["10 a.example.net."])
    provider.apply(zone, [Change(rrset.name, None, rrset)])
    provider.apply(zone, [Change(rrset.name, rrset, None)])
    assert [[c["Action"] for c in b] for b in sent] == [["CREATE"], ["DELETE"]]
    assert provider.read(zone, [rrset.name]) == {rrset.name: None}


def test_stale_in_a_later_batch_says_what_was_applied(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name("partial")
    create_zone(admin, zone)
    provider, _ = make_provider()
    names = [f"q{i:03}.{zone}" for i in range(600)]
    before = [RRset.of(n, 300, ["10 mx1.example.net."]) for n in names]
    provider.wait(provider.apply(zone, [Change(r.name, None, r) for r in before]), 60)
    last = names[-1]
    provider.apply(zone, [Change(last, before[-1], RRset.of(last, 300, ["1 other.example.net."]))])
    new = [RRset.of(n, 60, ["5 mail.example.org."]) for n in names]
    with pytest.raises(StaleExpectationError, match=r"batch 2 of 2 .*batches 1 to 1 had been"):
        provider.apply(zone, [Change(b.name, b, a) for b, a in zip(before, new, strict=True)])


def test_retried_write_that_landed_counts_as_done(admin: Any, make_provider: Any) -> None:
    """The core's apply_changes reads back after a refusal; a landed change is done."""
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, _ = make_provider()
    rrset = RRset.of(f"r.{zone}", 300, ["10 a.example.net."])
    provider.apply(zone, [Change(rrset.name, None, rrset)])
    handle = apply_changes(provider, zone, [Change(rrset.name, None, rrset)])
    assert handle.changes == ()


def test_noop_changes_send_nothing(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, counter = make_provider()
    rrset = RRset.of(f"n.{zone}", 300, ["10 a.example.net."])
    handle = provider.apply(zone, [Change(rrset.name, rrset, rrset)])
    provider.wait(handle, 60)
    assert counter.total == 0


# ---------------------------------------------------------------------- wait


def pending_for(provider: Any, times: int) -> list[str]:
    """Make the next ``times`` GetChange answers say PENDING; return the ids polled."""
    polled: list[str] = []

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        polled.append(parsed["ChangeInfo"]["Id"])
        if len(polled) <= times:
            parsed["ChangeInfo"]["Status"] = "PENDING"

    provider._client.events.register("after-call.route53.GetChange", rewrite)
    return polled


def test_wait_backs_off_exponentially_until_insync(
    admin: Any, make_provider: Any, clock: FakeClock
) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, counter = make_provider(poll_initial=1, poll_max=4)
    rrset = RRset.of(f"w.{zone}", 300, ["10 a.example.net."])
    handle = provider.apply(zone, [Change(rrset.name, None, rrset)])
    pending_for(provider, 4)
    provider.wait(handle, 60)
    assert counter.calls["GetChange"] == 5
    assert clock.sleeps == [1, 2, 4, 4]


def test_wait_is_bounded(admin: Any, make_provider: Any, clock: FakeClock) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, counter = make_provider(poll_initial=2, poll_max=8, wait_timeout=30)
    rrset = RRset.of(f"w.{zone}", 300, ["10 a.example.net."])
    handle = provider.apply(zone, [Change(rrset.name, None, rrset)])
    pending_for(provider, 10_000)
    with pytest.raises(ProviderError, match="still PENDING after 30 s") as err:
        provider.wait(handle, 120)  # the wait_timeout setting is the tighter bound
    assert err.value.hint and "wait_timeout" in err.value.hint
    assert sum(clock.sleeps) == pytest.approx(30)
    assert max(clock.sleeps) <= 8
    assert counter.calls["GetChange"] == len(clock.sleeps) + 1


def test_wait_respects_the_callers_timeout(
    admin: Any, make_provider: Any, clock: FakeClock
) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, _ = make_provider()
    rrset = RRset.of(f"w.{zone}", 300, ["10 a.example.net."])
    handle = provider.apply(zone, [Change(rrset.name, None, rrset)])
    pending_for(provider, 10_000)
    with pytest.raises(ProviderError, match="after 5 s"):
        provider.wait(handle, 5)
    assert sum(clock.sleeps) == pytest.approx(5)


def test_wait_survives_a_clock_that_stands_still(admin: Any, make_provider: Any) -> None:
    zone = fresh_zone_name()
    create_zone(admin, zone)
    provider, _ = make_provider(poll_initial=1, wait_timeout=10)
    provider._clock = FakeClock(stands_still=True)
    rrset = RRset.of(f"w.{zone}", 300, ["10 a.example.net."])
    handle = provider.apply(zone, [Change(rrset.name, None, rrset)])
    polled = pending_for(provider, 10_000)
    with pytest.raises(ProviderError, match="still PENDING"):
        provider.wait(handle, 10)
    assert len(polled) <= 20
