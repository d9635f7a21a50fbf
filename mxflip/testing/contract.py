"""The provider contract: one pytest suite every adapter must pass against its backend.

Use it by subclassing in the adapter's tests and providing two fixtures::

    from mxflip.testing.contract import ProviderContract

    class TestMyProviderContract(ProviderContract):
        @pytest.fixture
        def provider(self): ...          # a ready Provider instance

        @pytest.fixture
        def zone(self): ...              # an absolute zone name the provider may write

Each test writes only fresh, uniquely named owner names inside ``zone``, so the suite can
run against a shared backend. ``ttl`` and ``other_ttl`` can be overridden for providers
with TTL rules (Cloudflare's minimum is 60).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from mxflip.errors import NotSupportedError, StaleExpectationError
from mxflip.provider import Change, Provider
from mxflip.records import RRset


class ContractHelpers:
    """What both suites share: TTLs, fresh names, and writes that wait until served."""

    ttl = 300
    other_ttl = 600
    #: Seconds :meth:`Provider.wait` may take in these tests.
    wait_timeout = 30.0

    def fresh(self, zone: str, label: str = "c") -> str:
        return f"{label}-{uuid.uuid4().hex[:12]}.{zone.rstrip('.')}."

    def rrset(self, name: str, *records: str, ttl: int | None = None) -> RRset:
        return RRset.of(name, self.ttl if ttl is None else ttl, records)

    def apply(self, provider: Provider, zone: str, changes: Sequence[Change]) -> None:
        handle = provider.apply(zone, changes)
        provider.wait(handle, self.wait_timeout)

    def create(self, provider: Provider, zone: str, rrset: RRset) -> RRset:
        self.apply(provider, zone, [Change(rrset.name, None, rrset)])
        return rrset


class ProviderContract(ContractHelpers):
    """Mixin of contract tests; the subclass supplies ``provider`` and ``zone`` fixtures."""

    #: How many names one zone batch holds in the "many names" tests.
    many_names = 25

    # -------------------------------------------------------------- reads

    def test_read_absent_name(self, provider: Provider, zone: str) -> None:
        name = self.fresh(zone)
        assert provider.read(zone, [name]) == {name: None}

    def test_read_returns_exactly_the_names_asked(self, provider: Provider, zone: str) -> None:
        present = self.create(provider, zone, self.rrset(self.fresh(zone), "10 mx.example.net."))
        absent = self.fresh(zone)
        assert provider.read(zone, [present.name, absent]) == {present.name: present, absent: None}

    # -------------------------------------------------------------- writes

    def test_create_then_read_back(self, provider: Provider, zone: str) -> None:
        rrset = self.rrset(
            self.fresh(zone), "10 mx1.proxy.example.net.", "20 mx2.proxy.example.net."
        )
        self.create(provider, zone, rrset)
        assert provider.read(zone, [rrset.name]) == {rrset.name: rrset}

    def test_replace_with_expected(self, provider: Provider, zone: str) -> None:
        before = self.create(
            provider, zone, self.rrset(self.fresh(zone), "10 mx1.proxy.example.net.")
        )
        after = self.rrset(before.name, "10 mail.example.org.", "20 mail2.example.org.")
        self.apply(provider, zone, [Change(before.name, before, after)])
        assert provider.read(zone, [before.name]) == {before.name: after}

    def test_ttl_only_change(self, provider: Provider, zone: str) -> None:
        before = self.create(provider, zone, self.rrset(self.fresh(zone), "10 mx1.example.net."))
        after = before.with_ttl(self.other_ttl)
        self.apply(provider, zone, [Change(before.name, before, after)])
        assert provider.read(zone, [before.name]) == {before.name: after}

    def test_delete(self, provider: Provider, zone: str) -> None:
        before = self.create(provider, zone, self.rrset(self.fresh(zone), "10 mx1.example.net."))
        self.apply(provider, zone, [Change(before.name, before, None)])
        assert provider.read(zone, [before.name]) == {before.name: None}

    def test_noop_change_succeeds_and_changes_nothing(self, provider: Provider, zone: str) -> None:
        rrset = self.create(provider, zone, self.rrset(self.fresh(zone), "10 mx1.example.net."))
        self.apply(provider, zone, [Change(rrset.name, rrset, rrset)])
        assert provider.read(zone, [rrset.name]) == {rrset.name: rrset}

    def test_empty_change_list_is_accepted(self, provider: Provider, zone: str) -> None:
        self.apply(provider, zone, [])

    # -------------------------------------------------------------- conditional semantics

    def test_stale_records_refused(self, provider: Provider, zone: str) -> None:
        live = self.create(
            provider, zone, self.rrset(self.fresh(zone), "10 someone-else.example.net.")
        )
        believed = self.rrset(live.name, "10 mx1.proxy.example.net.")
        new = self.rrset(live.name, "10 mail.example.org.")
        with pytest.raises(StaleExpectationError):
            provider.apply(zone, [Change(live.name, believed, new)])
        assert provider.read(zone, [live.name]) == {live.name: live}

    def test_expected_absent_but_present_refused(self, provider: Provider, zone: str) -> None:
        live = self.create(
            provider, zone, self.rrset(self.fresh(zone), "10 someone-else.example.net.")
        )
        new = self.rrset(live.name, "10 mail.example.org.")
        with pytest.raises(StaleExpectationError):
            provider.apply(zone, [Change(live.name, None, new)])
        assert provider.read(zone, [live.name]) == {live.name: live}

    def test_expected_present_but_absent_refused(self, provider: Provider, zone: str) -> None:
        name = self.fresh(zone)
        believed = self.rrset(name, "10 mx1.proxy.example.net.")
        new = self.rrset(name, "10 mail.example.org.")
        with pytest.raises(StaleExpectationError):
            provider.apply(zone, [Change(name, believed, new)])
        assert provider.read(zone, [name]) == {name: None}

    def test_subset_expectation_refused(self, provider: Provider, zone: str) -> None:
        live = self.create(
            provider,
            zone,
            self.rrset(self.fresh(zone), "10 mx1.example.net.", "20 mx2.example.net."),
        )
        believed = self.rrset(live.name, "10 mx1.example.net.")
        with pytest.raises(StaleExpectationError):
            provider.apply(
                zone, [Change(live.name, believed, self.rrset(live.name, "5 a.example.org."))]
            )
        assert provider.read(zone, [live.name]) == {live.name: live}

    def test_same_transition_twice_is_refused_the_second_time(
        self, provider: Provider, zone: str
    ) -> None:
        before = self.create(provider, zone, self.rrset(self.fresh(zone), "10 mx1.example.net."))
        after = self.rrset(before.name, "10 mail.example.org.")
        self.apply(provider, zone, [Change(before.name, before, after)])
        with pytest.raises(StaleExpectationError):
            provider.apply(zone, [Change(before.name, before, after)])
        assert provider.read(zone, [before.name]) == {before.name: after}

    # -------------------------------------------------------------- batches

    def test_many_names_in_one_zone(self, provider: Provider, zone: str) -> None:
        names = [self.fresh(zone, f"m{i}") for i in range(self.many_names)]
        rrsets = [
            self.rrset(n, "10 mx1.proxy.example.net.", "20 mx2.proxy.example.net.") for n in names
        ]
        self.apply(provider, zone, [Change(r.name, None, r) for r in rrsets])
        assert provider.read(zone, names) == {r.name: r for r in rrsets}
        switched = [self.rrset(r.name, "10 mail.example.org.", ttl=self.other_ttl) for r in rrsets]
        self.apply(
            provider, zone, [Change(a.name, b, a) for b, a in zip(rrsets, switched, strict=True)]
        )
        assert provider.read(zone, names) == {r.name: r for r in switched}

    def test_batch_with_one_stale_change_changes_nothing(
        self, provider: Provider, zone: str
    ) -> None:
        good = [
            self.create(provider, zone, self.rrset(self.fresh(zone), "10 mx1.example.net."))
            for _ in range(3)
        ]
        stale = self.create(provider, zone, self.rrset(self.fresh(zone), "10 changed.example.net."))
        new = "10 mail.example.org."
        changes = [Change(r.name, r, self.rrset(r.name, new)) for r in good]
        changes.append(
            Change(
                stale.name,
                self.rrset(stale.name, "10 mx1.example.net."),
                self.rrset(stale.name, new),
            )
        )
        with pytest.raises(StaleExpectationError):
            provider.apply(zone, changes)
        names = [r.name for r in [*good, stale]]
        assert provider.read(zone, names) == {r.name: r for r in [*good, stale]}


class ZoneListingContract(ContractHelpers):
    """The optional capabilities ``list_zones``, ``list_mx`` and ``check_access``, for
    adapters that have them (``mxflip init`` and ``mxflip doctor`` use them).

    Run it beside the main suite, with the same fixtures:
    ``class TestMine(ProviderContract, ZoneListingContract)``. ``list_mx``
    must return every MX RRset of the zone (paging through as many pages as it takes),
    sorted by name, and nothing but MX RRsets.
    """

    #: How many MX RRsets the paging test creates (above the adapter's page size).
    listing_names = 30
    #: False for adapters that cannot enumerate zones (RFC 2136): list_zones() must then
    #: raise NotSupportedError, whose message is one line.
    lists_zones = True

    def test_list_zones_includes_the_zone(self, provider: Provider, zone: str) -> None:
        if not self.lists_zones:
            with pytest.raises(NotSupportedError) as caught:
                provider.list_zones()
            assert "\n" not in str(caught.value)
            return
        zones = provider.list_zones()
        assert zones == sorted(zones)
        assert all(z.endswith(".") for z in zones)
        assert zone in zones

    def test_list_mx_returns_every_mx_rrset(self, provider: Provider, zone: str) -> None:
        rrsets = [
            self.rrset(self.fresh(zone, f"l{i}"), f"{10 + i} mx{i}.example.net.")
            for i in range(self.listing_names)
        ]
        self.apply(provider, zone, [Change(r.name, None, r) for r in rrsets])
        listing = provider.list_mx(zone)
        assert listing.zone == zone
        names = [r.name for r in listing.rrsets]
        assert len(names) == len(set(names)), "one RRset per name"
        assert names == sorted(names), "sorted by name"
        found = {r.name: r for r in listing.rrsets}
        for rrset in rrsets:
            assert found.get(rrset.name) == rrset
        # What list_mx says agrees with read() for every name it lists.
        assert provider.read(zone, names) == found

    def test_list_mx_drops_deleted_names(self, provider: Provider, zone: str) -> None:
        rrset = self.create(provider, zone, self.rrset(self.fresh(zone), "10 mx1.example.net."))
        self.apply(provider, zone, [Change(rrset.name, rrset, None)])
        assert rrset.name not in {r.name for r in provider.list_mx(zone).rrsets}

    def test_check_access_reads_and_changes_nothing(self, provider: Provider, zone: str) -> None:
        rrset = self.create(provider, zone, self.rrset(self.fresh(zone), "10 mx1.example.net."))
        before = provider.list_mx(zone).rrsets
        checks = provider.check_access(zone)
        assert {c.what for c in checks} >= {"read", "change"}
        assert all(c.ok is not False for c in checks), checks
        assert provider.list_mx(zone).rrsets == before
        assert provider.read(zone, [rrset.name]) == {rrset.name: rrset}
