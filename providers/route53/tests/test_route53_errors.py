"""Retries on throttling and their bound, seen on the wire through a fault proxy; every
failure a person can hit is an mxflip error with a hint; the secret key never shows."""

from __future__ import annotations

import logging
from pathlib import Path
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
)
from mxflip.testing import parse_config
from mxflip_route53 import Route53Provider, Route53Settings
from tests.support.moto_route53 import (
    FAKE_SECRET_KEY,
    FakeClock,
    FaultProxy,
    create_zone,
    fresh_zone_name,
)
from tests.support.ports import free_port

DENIED = (
    "User: arn:aws:iam::123456789012:user/mxflip is not authorized to perform: "
    "route53:ChangeResourceRecordSets on resource: arn:aws:route53:::hostedzone/Z1 "
    "because no identity-based policy allows the route53:ChangeResourceRecordSets action"
)


@pytest.fixture
def zone(admin: Any) -> str:
    name = fresh_zone_name("err")
    create_zone(admin, name)
    return name


def change_of(zone: str, label: str = "t") -> Change:
    name = f"{label}.{zone}"
    return Change(name, None, RRset.of(name, 300, ["10 mx.example.net."]))


# ------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "Throttling"), (400, "PriorRequestNotComplete"), (503, "ServiceUnavailable")],
)
def test_transient_errors_are_retried(
    zone: str, proxy: FaultProxy, make_provider: Any, clock: FakeClock, status: int, code: str
) -> None:
    provider, _ = make_provider(endpoint_url=proxy.url, backoff_max=4)
    provider.read(zone, [zone])  # zone lookup done; now only the write is under test
    proxy.reset()
    proxy.inject("ChangeResourceRecordSets", status, code, "Rate exceeded", times=2)
    change = change_of(zone)
    provider.apply(zone, [change])
    assert proxy.faulted["ChangeResourceRecordSets"] == 2
    assert proxy.seen["ChangeResourceRecordSets"] == 3  # two refusals, one success
    assert len(clock.sleeps) == 2 and all(0 <= s <= 4 for s in clock.sleeps)
    assert provider.read(zone, [change.name]) == {change.name: change.new}


def test_retries_are_bounded_and_do_not_multiply(
    zone: str, proxy: FaultProxy, make_provider: Any, clock: FakeClock
) -> None:
    provider, _ = make_provider(endpoint_url=proxy.url, max_attempts=3)
    provider.read(zone, [zone])
    proxy.reset()
    proxy.inject("ChangeResourceRecordSets", 400, "Throttling", "Rate exceeded", times=1000)
    with pytest.raises(ProviderError) as err:
        provider.apply(zone, [change_of(zone)])
    assert not isinstance(err.value, StaleExpectationError)
    assert "Throttling" in str(err.value) and "after 3 attempts" in str(err.value)
    assert err.value.hint and "max_attempts" in err.value.hint
    # botocore's own retries are off: three attempts are three requests, not 3 x N.
    assert proxy.seen["ChangeResourceRecordSets"] == 3
    assert len(clock.sleeps) == 2


def test_throttled_reads_and_polls_are_retried(
    zone: str, proxy: FaultProxy, make_provider: Any
) -> None:
    provider, _ = make_provider(endpoint_url=proxy.url)
    proxy.inject("ListHostedZonesByName", 400, "Throttling", "Rate exceeded")
    proxy.inject("ListResourceRecordSets", 500, "InternalFailure", "oops")
    proxy.inject("GetChange", 400, "Throttling", "Rate exceeded")
    assert provider.read(zone, [f"a.{zone}"]) == {f"a.{zone}": None}
    provider.wait(provider.apply(zone, [change_of(zone)]), 30)
    assert proxy.faulted == {
        "ListHostedZonesByName": 1,
        "ListResourceRecordSets": 1,
        "GetChange": 1,
    }


# -------------------------------------------------------------- hinted errors


def test_access_denied_names_the_missing_action(
    zone: str, proxy: FaultProxy, make_provider: Any
) -> None:
    provider, _ = make_provider(endpoint_url=proxy.url)
    proxy.inject("ChangeResourceRecordSets", 403, "AccessDenied", DENIED)
    with pytest.raises(ProviderAuthError) as err:
        provider.apply(zone, [change_of(zone)])
    assert "route53:ChangeResourceRecordSets" in str(err.value)
    assert err.value.hint and "allow route53:ChangeResourceRecordSets" in err.value.hint
    assert proxy.seen["ChangeResourceRecordSets"] == 1  # a refusal is not retried


def test_access_denied_without_detail_uses_the_operation(
    zone: str, proxy: FaultProxy, make_provider: Any
) -> None:
    provider, _ = make_provider(endpoint_url=proxy.url)
    proxy.inject("ListHostedZonesByName", 403, "AccessDenied", "Access denied")
    with pytest.raises(ProviderAuthError, match="route53:ListHostedZonesByName"):
        provider.read(zone, [zone])


def test_no_credentials_explains_where_boto3_looks(
    zone: str, make_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider, counter = make_provider()
    with pytest.raises(ProviderAuthError, match="no usable AWS credentials") as err:
        provider.read(zone, [zone])
    assert err.value.hint and "AWS_ACCESS_KEY_ID" in err.value.hint
    assert "~/.aws/credentials" in err.value.hint and "aws sso login" in err.value.hint
    assert counter.total == 0  # nothing was sent unsigned


def test_unknown_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderAuthError, match="profile 'nobody' is not defined") as err:
        Route53Provider.from_settings("aws", Route53Settings(profile="nobody"))
    assert err.value.hint and "~/.aws/config" in err.value.hint


def test_unreachable_endpoint(make_provider: Any, clock: FakeClock) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    provider, _ = make_provider(endpoint_url=url, max_attempts=2)
    with pytest.raises(ProviderError, match=f"cannot reach {url}") as err:
        provider.read("example.test.", ["example.test."])
    assert err.value.hint and "endpoint_url" in err.value.hint
    assert len(clock.sleeps) == 1


def test_rejected_credentials(zone: str, proxy: FaultProxy, make_provider: Any) -> None:
    provider, _ = make_provider(endpoint_url=proxy.url)
    proxy.inject(
        "ListHostedZonesByName",
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
    with pytest.raises(ProviderAuthError, match="AWS rejected the credentials"):
        provider.read(zone, [zone])


def test_other_invalid_batches_are_not_called_stale(
    zone: str, proxy: FaultProxy, make_provider: Any
) -> None:
    provider, _ = make_provider(endpoint_url=proxy.url)
    proxy.inject(
        "ChangeResourceRecordSets",
        400,
        "InvalidChangeBatch",
        "[RRSet of type MX with DNS name t.example. is not permitted because a conflicting "
        "RRSet of type CNAME with the same DNS name already exists]",
    )
    with pytest.raises(ProviderError, match="conflicting RRSet") as err:
        provider.apply(zone, [change_of(zone)])
    assert not isinstance(err.value, StaleExpectationError)


# ----------------------------------------------------------------- settings


def test_credentials_in_the_config_file_are_refused(tmp_path: Path) -> None:
    raw = {
        "providers": {
            "aws": {
                "type": "route53",
                "aws_access_key_id": "AKIAEXAMPLE",
                "aws_secret_access_key": FAKE_SECRET_KEY,
            }
        },
        "domains": {},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(raw, path=tmp_path / "mxflip.toml")
    assert "do not belong" in str(err.value)
    assert FAKE_SECRET_KEY not in str(err.value) and FAKE_SECRET_KEY not in repr(err.value)
    with pytest.raises(ValueError) as direct:
        Route53Settings.model_validate(raw["providers"]["aws"])
    assert FAKE_SECRET_KEY not in str(direct.value)


def test_settings_validation() -> None:
    assert Route53Settings(hosted_zone_id="/hostedzone/z123").hosted_zone_id == "Z123"
    table = Route53Settings(hosted_zone_id={"Example.COM": "Z9"})
    assert table.pinned_zone_id("example.com.") == ("Z9", True)
    assert table.pinned_zone_id("other.com.") == (None, False)
    with pytest.raises(ValueError):
        Route53Settings(endpoint_url="127.0.0.1:4566")
    with pytest.raises(ValueError):
        Route53Settings(poll_initial=30, poll_max=10)


# ------------------------------------------------------------------ secrets


def test_the_secret_key_never_appears(
    zone: str,
    proxy: FaultProxy,
    make_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider, _ = make_provider(endpoint_url=proxy.url, max_attempts=2)
    errors: list[MxflipError] = []

    def collect(fault: tuple[str, int, str, str] | None, action: Any) -> None:
        proxy.reset()
        if fault is not None:
            proxy.inject(*fault, times=5)
        try:
            action()
        except MxflipError as exc:
            errors.append(exc)
        else:
            raise AssertionError(f"expected an error from {fault}")

    change = change_of(zone)
    collect(
        ("ChangeResourceRecordSets", 403, "AccessDenied", DENIED),
        lambda: provider.apply(zone, [change]),
    )
    collect(
        ("ChangeResourceRecordSets", 400, "Throttling", "Rate exceeded"),
        lambda: provider.apply(zone, [change]),
    )
    proxy.reset()
    provider.apply(zone, [change])
    collect(None, lambda: provider.apply(zone, [change]))  # stale: the name now exists
    collect(None, lambda: provider.hosted_zone(fresh_zone_name("nozone")))
    unreachable, _ = make_provider(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    collect(None, lambda: unreachable.read(zone, [zone]))
    # botocore's own debug log (mxflip --debug) shows requests, never the secret.
    logged = caplog.text
    caplog.clear()
    # Even if AWS were to echo the secret back, it is scrubbed before mxflip quotes it.
    collect(
        (
            "ListResourceRecordSets",
            403,
            "SignatureDoesNotMatch",
            f"bad signature {FAKE_SECRET_KEY}",
        ),
        lambda: provider.read(zone, [zone]),
    )
    collect(
        ("ListResourceRecordSets", 400, "InvalidInput", f"echo {FAKE_SECRET_KEY}"),
        lambda: provider.read(zone, [zone]),
    )
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    collect(None, lambda: make_provider()[0].read(zone, [zone]))

    assert {type(e).__name__ for e in errors} >= {
        "ProviderAuthError",
        "ProviderError",
        "StaleExpectationError",
    }
    texts = [repr(provider), repr(Route53Settings(endpoint_url=proxy.url)), logged]
    for exc in errors:
        texts += [str(exc), repr(exc), str(exc.hint), repr(exc.args)]
        assert exc.__cause__ is None
        assert exc.__context__ is None or exc.__suppress_context__
    assert "[redacted]" in "".join(texts)
    for text in texts:
        assert FAKE_SECRET_KEY not in text
