"""Cloudflare-specific behaviour: throttling, pagination, staleness, TTL rules, tokens."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import pytest

from mxflip import (
    Change,
    ConfigError,
    MxflipError,
    ProviderAuthError,
    ProviderError,
    RRset,
    StaleExpectationError,
    apply_changes,
)
from mxflip.testing import parse_config
from mxflip_cloudflare import CloudflareProvider, CloudflareSettings
from providers.cloudflare.tests.conftest import ZONE, MakeProvider
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare
from tests.support.ports import free_port

NAME = "mail.example.test."


def mx(*records: str, ttl: int = 300, name: str = NAME) -> RRset:
    return RRset.of(name, ttl, records)


# ---------------------------------------------------------------- throttling and retries


def test_429_is_retried_after_retry_after(
    fake: FakeCloudflare, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    fake.put_record(ZONE, NAME, "mx1.example.net", 10, 300)
    provider = make_provider()
    fake.rate_limit_next(retry_after=2, count=2)
    assert provider.read(ZONE, [NAME]) == {NAME: mx("10 mx1.example.net.")}
    assert sleeps == [2.0, 2.0]  # what the server asked, not a guess


def test_429_retries_are_bounded_and_the_sdk_does_not_retry_on_its_own(
    fake: FakeCloudflare, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    provider = make_provider(attempts=3)
    fake.rate_limit_next(retry_after=1, count=100)
    with pytest.raises(ProviderError, match="rate-limiting") as caught:
        provider.read(ZONE, [NAME])
    assert caught.value.hint is not None and "try again in 1 s" in caught.value.hint
    assert len(fake.requests) == 3  # 3 attempts in all: the SDK's own retries are off
    assert sleeps == [1.0, 1.0]


def test_retry_after_longer_than_max_wait_is_reported_not_waited(
    fake: FakeCloudflare, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    provider = make_provider(max_wait=10)
    fake.rate_limit_next(retry_after=600)
    with pytest.raises(ProviderError) as caught:
        provider.read(ZONE, [NAME])
    assert caught.value.hint is not None and "600 s" in caught.value.hint
    assert sleeps == []


def test_server_errors_are_retried_with_backoff(
    fake: FakeCloudflare, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    provider = make_provider()
    fake.fail_next(503, 10001, "service unavailable", count=2)
    assert provider.read(ZONE, [NAME]) == {NAME: None}
    assert len(sleeps) == 2 and all(0 <= s <= 30 for s in sleeps)


# ---------------------------------------------------------------- pagination


@pytest.mark.parametrize("count", [23, 20])  # a short last page, and only full pages
def test_read_pages_through_one_listing_per_zone(
    fake: FakeCloudflare, make_provider: MakeProvider, count: int
) -> None:
    names = [f"d{i:02d}.example.test." for i in range(count)]
    for name in names:
        fake.put_record(ZONE, name, f"mx.{name}", 10, 300)
    provider = make_provider(per_page=5)
    got = provider.read(ZONE, names)
    assert got == {n: mx(f"10 mx.{n}", name=n) for n in names}
    listings = fake.calls("GET", "/dns_records")
    assert [r.query["page"] for r in listings] == [str(p) for p in range(1, -(-count // 5) + 1)]
    assert all(r.query["type"] == "MX" and r.query["per_page"] == "5" for r in listings)
    assert len(fake.calls("GET", "/zones")) == 1 + len(listings)  # one zone lookup


def test_a_listing_record_mxflip_cannot_read_is_one_clear_error(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    # The listing is read as plain JSON (not the SDK's models): bad fields are still caught.
    fake.put_record(ZONE, NAME, "not a host name", 10, 300)
    with pytest.raises(ProviderError, match="holds an MX record mxflip cannot read"):
        make_provider().read(ZONE, [NAME])
    record = next(iter(fake.records[fake.zone_id(ZONE)].values()))
    record["priority"] = "ten"
    record["content"] = "mx1.example.net"
    with pytest.raises(ProviderError, match="holds an MX record mxflip cannot read"):
        make_provider().read(ZONE, [NAME])


def test_ttl_1_automatic_reads_as_300_and_is_kept(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    kept = fake.put_record(ZONE, NAME, "mx1.example.net", 10, 1)
    provider = make_provider()
    before = provider.read(ZONE, [NAME])[NAME]
    assert before == mx("10 mx1.example.net.", ttl=300)
    after = mx("10 mx1.example.net.", "20 mx2.example.net.", ttl=300)
    provider.apply(ZONE, [Change(NAME, before, after)])
    assert fake.mx_of(ZONE, NAME) == {(10, "mx1.example.net", 1), (20, "mx2.example.net", 300)}
    assert kept in fake.records[fake.zone_id(ZONE)]


def test_unchanged_records_are_left_alone_and_new_ones_are_not_proxied(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    before = mx("10 mx1.example.net.", "20 mx2.example.net.")
    provider.apply(ZONE, [Change(NAME, None, before)])
    ids = set(fake.records[fake.zone_id(ZONE)])
    after = mx("10 mx1.example.net.", "30 mx3.example.net.")
    provider.apply(ZONE, [Change(NAME, before, after)])
    (batch,) = fake.calls("POST", "/batch")[-1:]
    assert batch.path.endswith("/dns_records/batch")
    now = fake.records[fake.zone_id(ZONE)]
    assert len(ids & set(now)) == 1  # mx1 kept its id
    assert all(r["proxied"] is False for r in now.values())
    assert provider.read(ZONE, [NAME]) == {NAME: after}


def test_large_change_is_split_into_batches_keeping_each_name_whole(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    provider = make_provider(batch_size=4)
    names = [f"n{i}.example.test." for i in range(5)]
    rrsets = [mx("10 a.example.net.", "20 b.example.net.", name=n) for n in names]
    handle = provider.apply(ZONE, [Change(r.name, None, r) for r in rrsets])
    assert handle.detail["batches"] == 3  # 2 names (4 operations) per batch
    assert provider.read(ZONE, names) == {r.name: r for r in rrsets}


def test_failure_after_the_first_batch_says_what_was_applied(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    provider = make_provider(batch_size=2, attempts=1)
    names = [f"n{i}.example.test." for i in range(3)]
    rrsets = [mx("10 a.example.net.", "20 b.example.net.", name=n) for n in names]
    fake.fail_next(500, 10001, "internal error", path_contains="/batch", after=1)
    with pytest.raises(
        ProviderError, match=r"batch 1 of 3 for zone example\.test had been applied"
    ):
        provider.apply(ZONE, [Change(r.name, None, r) for r in rrsets])
    assert provider.read(ZONE, names) == {names[0]: rrsets[0], names[1]: None, names[2]: None}


# ---------------------------------------------------------------- conditional writes


def test_changed_records_are_refused_before_any_write(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    fake.put_record(ZONE, NAME, "mx1.example.net", 10, 300)
    provider = make_provider()
    planned = provider.read(ZONE, [NAME])[NAME]
    fake.put_record(ZONE, NAME, "intruder.example.net", 5, 300)  # another writer
    with pytest.raises(StaleExpectationError, match="records changed since the plan"):
        provider.apply(ZONE, [Change(NAME, planned, mx("10 backup.example.org."))])
    assert fake.calls("POST", "/batch") == []
    assert fake.mx_of(ZONE, NAME) == {
        (10, "mx1.example.net", 300),
        (5, "intruder.example.net", 300),
    }


def test_ttl_difference_is_stale(fake: FakeCloudflare, make_provider: MakeProvider) -> None:
    fake.put_record(ZONE, NAME, "mx1.example.net", 10, 3600)
    provider = make_provider()
    with pytest.raises(StaleExpectationError):
        provider.apply(
            ZONE, [Change(NAME, mx("10 mx1.example.net.", ttl=300), mx("10 b.example.org."))]
        )


def test_record_deleted_between_check_and_batch_is_stale(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    fake.put_record(ZONE, NAME, "mx1.example.net", 10, 300)
    provider = make_provider()
    before = provider.read(ZONE, [NAME])[NAME]
    # The API answers the batch as it does when a record to delete is gone.
    fake.fail_next(404, 81044, "Record does not exist.", path_contains="/batch")
    with pytest.raises(StaleExpectationError, match="changed since the plan"):
        provider.apply(ZONE, [Change(NAME, before, mx("10 b.example.org."))])
    assert fake.mx_of(ZONE, NAME) == {(10, "mx1.example.net", 300)}


def test_retried_batch_that_had_landed_counts_as_done(
    fake: FakeCloudflare, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    fake.put_record(ZONE, NAME, "mx1.example.net", 10, 300)
    provider = make_provider()
    before = provider.read(ZONE, [NAME])[NAME]
    after = mx("10 b.example.org.")
    provider.apply(ZONE, [Change(NAME, before, after)])
    # A resumed operation re-sends the same change: refused as stale, recognised as done.
    handle = apply_changes(provider, ZONE, [Change(NAME, before, after)])
    assert handle.changes == ()
    assert provider.read(ZONE, [NAME]) == {NAME: after}


# ---------------------------------------------------------------- TTL rules


def test_ttl_below_minimum_is_refused_before_calling_the_api(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    with pytest.raises(ConfigError, match="TTL 30") as caught:
        provider.apply(ZONE, [Change(NAME, None, mx("10 a.example.org.", ttl=30))])
    assert caught.value.hint is not None and "min_ttl = 30" in caught.value.hint
    assert fake.requests == []


def test_ttl_above_cloudflare_maximum_is_refused(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    with pytest.raises(ConfigError, match="86400"):
        make_provider().apply(ZONE, [Change(NAME, None, mx("10 a.example.org.", ttl=90000))])
    assert fake.requests == []


def test_enterprise_minimum_is_a_setting(fake: FakeCloudflare, make_provider: MakeProvider) -> None:
    fake.min_ttl = 30
    provider = make_provider(min_ttl=30)
    rrset = mx("10 a.example.org.", ttl=30)
    provider.apply(ZONE, [Change(NAME, None, rrset)])
    assert provider.read(ZONE, [NAME]) == {NAME: rrset}


def test_api_side_ttl_refusal_is_a_clear_error(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    # A zone that is not Enterprise although min_ttl says 30: Cloudflare's own refusal.
    provider = make_provider(min_ttl=30)
    with pytest.raises(ProviderError, match="9021") as caught:
        provider.apply(ZONE, [Change(NAME, None, mx("10 a.example.org.", ttl=30))])
    assert not isinstance(caught.value, StaleExpectationError)


# ---------------------------------------------------------------- tokens and zones


def test_token_without_dns_edit_is_an_auth_error_with_a_hint(
    fake: FakeCloudflare, token: str, make_provider: MakeProvider
) -> None:
    fake.add_token(token, frozenset({"zone:read", "dns:read"}))
    provider = make_provider()
    assert provider.read(ZONE, [NAME]) == {NAME: None}
    with pytest.raises(ProviderAuthError, match="10000") as caught:
        provider.apply(ZONE, [Change(NAME, None, mx("10 a.example.org."))])
    assert caught.value.hint is not None and "Zone:DNS:Edit" in caught.value.hint


def test_token_without_zone_read_is_an_auth_error(
    fake: FakeCloudflare, token: str, make_provider: MakeProvider
) -> None:
    fake.add_token(token, frozenset({"dns:edit"}))
    with pytest.raises(ProviderAuthError) as caught:
        make_provider().read(ZONE, [NAME])
    assert caught.value.hint is not None and "Zone:Zone:Read" in caught.value.hint


def test_zone_id_setting_lets_a_dns_only_token_work(
    fake: FakeCloudflare, token: str, make_provider: MakeProvider
) -> None:
    fake.add_token(token, frozenset({"dns:edit"}))
    provider = make_provider(zone_id=fake.zone_id(ZONE))
    rrset = mx("10 a.example.org.")
    provider.apply(ZONE, [Change(NAME, None, rrset)])
    assert provider.read(ZONE, [NAME]) == {NAME: rrset}
    assert not any(r.query.get("name") for r in fake.calls("GET", "/zones"))  # no lookup


def test_zone_id_of_another_zone_is_refused_before_writing(
    fake: FakeCloudflare, make_provider: MakeProvider
) -> None:
    other = fake.add_zone("other.test")
    provider = make_provider(zone_id=other)
    with pytest.raises(ProviderError, match=r"is zone other\.test, not example\.test"):
        provider.apply(ZONE, [Change(NAME, None, mx("10 a.example.org."))])
    assert fake.calls("POST", "/batch") == []


def test_unknown_token_is_an_auth_error(fake: FakeCloudflare, make_provider: MakeProvider) -> None:
    fake.tokens.clear()
    with pytest.raises(ProviderAuthError, match="9109"):
        make_provider().read(ZONE, [NAME])


def test_unknown_zone_name(make_provider: MakeProvider) -> None:
    with pytest.raises(ProviderError, match=r"no zone other\.test") as caught:
        make_provider().read("other.test.", ["mail.other.test."])
    assert caught.value.hint is not None and "zone_id" in caught.value.hint


def test_unknown_zone_id(make_provider: MakeProvider) -> None:
    with pytest.raises(ProviderError, match="zone id") as caught:
        make_provider(zone_id="f" * 32).read(ZONE, [NAME])
    assert caught.value.hint is not None and "zone_id" in caught.value.hint


def test_nameservers_come_from_the_zone(fake: FakeCloudflare, make_provider: MakeProvider) -> None:
    assert make_provider().nameservers(ZONE) == ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]
    by_id = make_provider(zone_id=fake.zone_id(ZONE))
    assert by_id.nameservers(ZONE) == ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]
    with pytest.raises(ProviderError, match=r"not other\.test"):
        by_id.nameservers("other.test.")


def test_missing_token_env_var(fake: FakeCloudflare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    settings = CloudflareSettings(base_url=fake.base_url)
    with pytest.raises(ProviderAuthError, match="CLOUDFLARE_API_TOKEN") as caught:
        CloudflareProvider.from_settings("cf", settings)
    assert caught.value.hint is not None and "api_token_env" in caught.value.hint
    assert fake.requests == []


def test_token_from_a_named_env_var(
    fake: FakeCloudflare, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.setenv("MXFLIP_CF_TOKEN", token)
    # The SDK would prefer a global API key from the environment; mxflip uses the token.
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "not-this-key")
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "someone@example.org")
    settings = CloudflareSettings(base_url=fake.base_url, api_token_env="MXFLIP_CF_TOKEN")
    provider = CloudflareProvider.from_settings("cf", settings)
    try:
        assert provider.read(ZONE, [NAME]) == {NAME: None}
    finally:
        provider.close()


def test_config_file_uses_the_registered_adapter(fake: FakeCloudflare) -> None:
    raw: dict[str, Any] = {
        "providers": {
            "cf": {"type": "cloudflare", "base_url": fake.base_url, "api_token_env": "CF_TOK"}
        },
        "domains": {
            "example.test": {"provider": "cf", "primary": ["10 a.test"], "backup": ["10 b.test"]}
        },
    }
    config = parse_config(raw)
    settings = config.providers["cf"].settings
    assert isinstance(settings, CloudflareSettings) and settings.api_token_env == "CF_TOK"
    raw["providers"]["cf"]["api_token"] = "pasted-secret"
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(raw)
    raw["providers"]["cf"] = {"type": "cloudflare", "api_token_env": "not a name"}
    with pytest.raises(ConfigError, match="environment variable name"):
        parse_config(raw)


# ---------------------------------------------------------------- the token stays secret


def _all_text(exc: BaseException) -> str:
    return "".join(
        [str(exc), repr(exc), str(getattr(exc, "hint", "")), *traceback.format_exception(exc)]
    )


def test_token_never_appears_in_errors_reprs_or_logs(
    fake: FakeCloudflare,
    token: str,
    make_provider: MakeProvider,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK and httpx log requests at DEBUG
    provider = make_provider(attempts=2)
    errors: list[MxflipError] = []

    def collect(fn: object) -> None:
        with pytest.raises(MxflipError) as caught:
            fn()  # type: ignore[operator]
        errors.append(caught.value)

    fake.fail_next(403, 10000, "Authentication error")
    collect(lambda: provider.read(ZONE, [NAME]))
    fake.rate_limit_next(retry_after=1, count=2)
    collect(lambda: provider.read(ZONE, [NAME]))
    fake.fail_next(500, 10001, "internal error", count=4)  # 2 calls x 2 attempts
    collect(lambda: provider.read(ZONE, [NAME]))
    collect(lambda: provider.apply(ZONE, [Change(NAME, mx("10 x.example.org."), None)]))
    fake.fail_next(400, 6003, "Invalid request headers")
    collect(lambda: provider.apply(ZONE, [Change(NAME, None, mx("10 x.example.org."))]))
    gone = make_provider(base_url=f"http://127.0.0.1:{free_port()}/client/v4", attempts=1)
    collect(lambda: gone.read(ZONE, [NAME]))
    assert len(errors) == 6
    for error in errors:
        assert token not in _all_text(error)
    handle = provider.apply(ZONE, [Change(NAME, None, mx("10 ok.example.org."))])
    settings = CloudflareSettings(base_url=fake.base_url)
    for text in (repr(provider), repr(provider._client), repr(handle), repr(settings)):
        assert token not in text
    assert "dns_records" in caplog.text  # the requests were logged…
    assert token not in caplog.text  # …without the token
