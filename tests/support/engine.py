"""Helpers for engine tests: a fake clock, a provider that fails on demand, failpoints, and
configs for a private BIND9 with two zones."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mxflip.config import Config, parse_config
from mxflip.dnsview import ServerAnswer
from mxflip.errors import ProviderError
from mxflip.journal import Journal
from mxflip.plan import ReadinessVerdict
from mxflip.provider import Change, ChangeHandle, Provider
from mxflip.records import RRset
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer, zone_text

PRIMARY = ["10 mx1.proxy.test.", "20 mx2.proxy.test."]
BACKUP = ["10 mail.direct.test."]
ZONES = ("engine.test.", "other.test.")
_counter = itertools.count()


class FakeClock:
    """Wall time that moves only when slept on (or advanced); records every sleep."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)

    @property
    def slept(self) -> float:
        return sum(self.sleeps)


class Crash(BaseException):
    """A simulated kill: nothing catches it, so nothing is journalled after it."""


@dataclass
class Failpoints:
    """Raises ``error`` the first time boundary ``at`` is reached; records every boundary."""

    at: str | None = None
    error: BaseException | None = None
    seen: list[str] = field(default_factory=list)

    def __call__(self, name: str) -> None:
        self.seen.append(name)
        if name == self.at and self.error is not None:
            error, self.error = self.error, None
            raise error


class FlakyProvider(Provider):
    """Wraps a real provider; the ``fail_on``-th call of a kind in ``kinds`` fails. With
    ``land=True`` a failing apply reaches the server first (a lost response)."""

    def __init__(
        self,
        inner: Provider,
        *,
        fail_on: int = 0,
        kinds: Iterable[str] = ("apply",),
        land: bool = False,
    ) -> None:
        super().__init__(inner.name)
        self.inner = inner
        self.fail_on = fail_on
        self.kinds = set(kinds)
        self.land = land
        self.calls = 0
        self.failed = False

    def _tick(self, kind: str) -> bool:
        if kind not in self.kinds:
            return False
        self.calls += 1
        return self.calls == self.fail_on

    def read(self, zone: str, names: Sequence[str]) -> dict[str, RRset | None]:
        if self._tick("read"):
            self.failed = True
            raise ProviderError("injected read failure")
        return self.inner.read(zone, names)

    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        if self._tick("apply"):
            self.failed = True
            if self.land:
                self.inner.apply(zone, changes)
            raise ProviderError("injected apply failure")
        return self.inner.apply(zone, changes)

    def wait(self, handle: ChangeHandle, timeout: float) -> None:
        if self._tick("wait"):
            self.failed = True
            raise ProviderError("injected wait failure")
        self.inner.wait(handle, timeout)

    def nameservers(self, zone: str) -> list[str]:
        return self.inner.nameservers(zone)


def fresh_label(prefix: str = "d") -> str:
    return f"{prefix}{next(_counter)}x{id(object()) % 100000}"


class LabServer(Protocol):
    """What the engine tests need of a DNS server fixture (BIND, Knot DNS, PowerDNS)."""

    @property
    def address(self) -> str: ...

    @property
    def key_file(self) -> Path: ...


def engine_config(
    bind: LabServer,
    tmp_path: Path,
    domains: Sequence[str],
    *,
    ttl: int = 3600,
    failover_ttl: int = 60,
    extra: dict[str, Any] | None = None,
) -> Config:
    raw: dict[str, Any] = {
        "providers": {
            "lab": {
                "type": "rfc2136",
                "server": bind.address,
                "tsig_key_file": str(bind.key_file),
                "timeout": 2,
            },
        },
        "defaults": {
            "provider": "lab",
            "primary": PRIMARY,
            "backup": BACKUP,
            "ttl": ttl,
            "failover_ttl": failover_ttl,
            "nameservers": [bind.address],
        },
        "domains": {d.rstrip("."): {"zone": d.rstrip(".").split(".", 1)[1]} for d in domains},
        "journal": {"path": str(tmp_path / "journal.jsonl")},
    }
    for key, value in (extra or {}).items():
        raw[key] = value
    return parse_config(raw, path=tmp_path / "mxflip.toml")


async def ready(domains: Any, targets: Any) -> dict[str, ReadinessVerdict]:
    return {name: ReadinessVerdict("ready") for name in targets}


async def not_ready(domains: Any, targets: Any) -> dict[str, ReadinessVerdict]:
    return {name: ReadinessVerdict("not-ready", ("connection refused",)) for name in targets}


def journal_of(config: Config) -> Journal:
    assert config.journal.path is not None
    return Journal(config.journal.path)


# ------------------------------------------------------------------ BIND and seeding


def start_engine_bind(folder: Path) -> BindServer:
    """A private BIND9 for engine tests: zones engine.test and other.test (MX targets live
    outside them, so BIND's integrity checks need no address records)."""
    records = {"engine.test.": "alias IN CNAME mx1.proxy.test."}
    return BindServer(folder, {z: zone_text(z, records.get(z, "")) for z in ZONES}).start()


def lab_provider(bind: LabServer) -> RFC2136Provider:
    return RFC2136Provider.from_settings(
        "lab", RFC2136Settings(server=bind.address, tsig_key_file=bind.key_file, timeout=2)
    )


def _absolute(names: Sequence[str]) -> list[str]:
    return [n if n.endswith(".") else n + "." for n in names]


def _by_zone(names: Sequence[str]) -> dict[str, list[str]]:
    """Absolute names grouped by their zone (the parent name), in the given order."""
    zones: dict[str, list[str]] = {}
    for name in _absolute(names):
        zones.setdefault(name.split(".", 1)[1], []).append(name)
    return zones


def seed(
    bind: LabServer, names: Sequence[str], records: Sequence[str] = PRIMARY, ttl: int = 3600
) -> dict[str, RRset]:
    """Give fresh names their starting MX set (one read and one UPDATE per zone)."""
    provider = lab_provider(bind)
    zones = _by_zone(names)
    out = {name: RRset.of(name, ttl, records) for name in _absolute(names)}
    for zone, zone_names in zones.items():
        before = provider.read(zone, zone_names)
        provider.apply(zone, [Change(n, before[n], out[n]) for n in zone_names])
    return out


def live(bind: LabServer, names: Sequence[str]) -> dict[str, RRset | None]:
    """What the server holds for ``names`` (one read per zone), in the given order."""
    provider = lab_provider(bind)
    got: dict[str, RRset | None] = {}
    for zone, zone_names in _by_zone(names).items():
        got.update(provider.read(zone, zone_names))
    return {name: got[name] for name in _absolute(names)}


def domain_names(count: int, zones: Sequence[str] = ZONES) -> list[str]:
    """Fresh domain names spread over ``zones`` (absolute)."""
    return [f"{fresh_label()}.{zones[i % len(zones)]}" for i in range(count)]


class FailingQuery:
    """A verification DNS query whose every answer is an error (nameservers unreachable)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(
        self, batch: Sequence[tuple[Sequence[Any], str]], recursive: bool, timeout: float
    ) -> list[list[ServerAnswer]]:
        self.calls += 1
        return [[ServerAnswer("127.0.0.1:1", error="injected: no answer")] for _ in batch]
