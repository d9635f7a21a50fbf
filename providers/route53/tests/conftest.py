"""Fixtures for the Route53 adapter's tests: moto in server mode on loopback, a fault
proxy in front of it, fake credentials, and providers whose waits never sleep."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from mxflip_route53 import Route53Provider, Route53Settings
from tests.support.moto_route53 import (
    AWS_VARIABLES_TO_CLEAR,
    CallCounter,
    FakeClock,
    FaultProxy,
    MotoServer,
    fake_aws_environment,
    start_moto,
    strict_route53,
)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto()
    with strict_route53():
        yield server
    server.stop()


@pytest.fixture(scope="session")
def fault_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_server.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(fault_proxy: FaultProxy) -> Iterator[FaultProxy]:
    fault_proxy.reset()
    yield fault_proxy
    fault_proxy.reset()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> dict[str, str]:
    """Fake keys in the environment; nothing else boto3 could find or call."""
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    env = fake_aws_environment(str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def admin(moto_server: MotoServer, aws_env: dict[str, str]) -> Any:
    """A plain boto3 client straight to moto, to set up zones and records behind mxflip."""
    return boto3.session.Session(region_name="us-east-1").client(
        "route53", endpoint_url=moto_server.url
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


ProviderFactory = Callable[..., tuple[Route53Provider, CallCounter]]


@pytest.fixture
def make_provider(moto_server: MotoServer, clock: FakeClock) -> ProviderFactory:
    """Build a provider against moto (or ``endpoint_url``), counting its HTTP requests."""

    def make(**settings: Any) -> tuple[Route53Provider, CallCounter]:
        settings.setdefault("endpoint_url", moto_server.url)
        provider = Route53Provider.from_settings("aws", Route53Settings(**settings), clock=clock)
        counter = CallCounter()
        provider._client.events.register("before-send.route53", counter)
        return provider, counter

    return make
