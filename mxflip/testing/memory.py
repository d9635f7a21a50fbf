"""``MemoryProvider``: an adapter whose zones live in this process, for tests of the core.

Plans, the engine and the CLI flows need a provider that reads and conditionally writes MX
RRsets, and nameservers that serve what it holds. This one keeps zones in a named
:class:`MemoryStore` (shared by every provider built with the same ``store`` setting, so
that state survives from one CLI run to the next in the same process) and, when asked
for nameservers, serves the store over DNS on 127.0.0.1 with the sandbox's tiny
authoritative server. It passes the provider contract suite like every real adapter.

It is not an installed adapter: :func:`register_memory_provider` makes the ``memory`` type
visible to ``mxflip`` for one test (a throw-away distribution on ``sys.path``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone

from mxflip.errors import ProviderError, StaleExpectationError
from mxflip.provider import Change, ChangeHandle, Provider, ProviderSettings
from mxflip.records import RRset, normalize_name
from mxflip.sandbox import LoopbackDNS, ZoneResponder


class MemorySettings(ProviderSettings):
    """``[providers.NAME] type = "memory"``: which store the provider reads and writes."""

    store: str = "default"


class MemoryStore:
    """Zones of MX RRsets by owner name; every write is atomic under one lock."""

    _stores: ClassVar[dict[str, MemoryStore]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.zones: dict[str, dict[str, RRset]] = {}
        #: Every accepted ``apply`` as (zone, changes), for tests that count writes.
        self.applied: list[tuple[str, tuple[Change, ...]]] = []
        self.version = 0
        self._dns: LoopbackDNS | None = None

    @classmethod
    def named(cls, name: str = "default") -> MemoryStore:
        with cls._registry_lock:
            if name not in cls._stores:
                cls._stores[name] = cls(name)
            return cls._stores[name]

    @classmethod
    def drop(cls, name: str) -> None:
        """Forget a store and stop its DNS server."""
        with cls._registry_lock:
            store = cls._stores.pop(name, None)
        if store is not None:
            store.stop()

    def add_zone(self, zone: str, records: Sequence[RRset] = ()) -> None:
        with self.lock:
            held = self.zones.setdefault(normalize_name(zone), {})
            for rrset in records:
                held[rrset.name] = rrset
            self.version += 1

    def get(self, name: str) -> RRset | None:
        name = normalize_name(name)
        with self.lock:
            for held in self.zones.values():
                if name in held:
                    return held[name]
        return None

    # ------------------------------------------------------------------ DNS

    def address(self) -> str:
        """``127.0.0.1:PORT`` of a DNS server answering from this store (started once)."""
        with self.lock:
            if self._dns is None:
                self._dns = LoopbackDNS(_StoreResponder(self)).start()
            return f"127.0.0.1:{self._dns.port}"

    def stop(self) -> None:
        with self.lock:
            server, self._dns = self._dns, None
        if server is not None:
            server.stop()

    def dns_zone(self) -> dns.zone.Zone:
        """The store as one zone at the root, so one server answers for every zone."""
        zone = dns.zone.Zone(dns.name.root, relativize=False)
        soa = dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.SOA, "ns.memory. hostmaster.memory. 1 60 60 60 60"
        )
        zone.find_rdataset(dns.name.root, dns.rdatatype.SOA, create=True).add(soa, 60)
        with self.lock:
            rrsets = [r for held in self.zones.values() for r in held.values()]
        for rrset in rrsets:
            rdataset = zone.find_rdataset(rrset.name, dns.rdatatype.MX, create=True)
            for mx in rrset.records:
                rdataset.add(
                    dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.MX, str(mx)), rrset.ttl
                )
        return zone


class _StoreResponder(ZoneResponder):
    """The sandbox's authoritative responder, answering from a store instead of a file."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(Path("/nonexistent"), ".")
        self.store = store
        self._cached: tuple[int, dns.zone.Zone] | None = None

    def zone(self) -> dns.zone.Zone:
        version = self.store.version
        if self._cached is None or self._cached[0] != version:
            self._cached = (version, self.store.dns_zone())
        return self._cached[1]


class MemoryProvider(Provider):
    """Reads and conditionally replaces MX RRsets held in a :class:`MemoryStore`."""

    Settings = MemorySettings

    def __init__(self, name: str, store: MemoryStore | None = None) -> None:
        super().__init__(name)
        self.store = store or MemoryStore.named()

    @classmethod
    def from_settings(cls, name: str, settings: ProviderSettings) -> MemoryProvider:
        assert isinstance(settings, MemorySettings)
        return cls(name, MemoryStore.named(settings.store))

    def _zone(self, zone: str) -> dict[str, RRset]:
        held = self.store.zones.get(normalize_name(zone))
        if held is None:
            raise ProviderError(f"zone {zone.rstrip('.')} is not in memory store {self.store.name}")
        return held

    @staticmethod
    def _inside(zone: str, name: str) -> None:
        zone = normalize_name(zone)
        if name != zone and not name.endswith("." + zone):
            raise ProviderError(f"{name} is not inside zone {zone}")

    def read(self, zone: str, names: Sequence[str]) -> dict[str, RRset | None]:
        with self.store.lock:
            held = self._zone(zone)
            out: dict[str, RRset | None] = {}
            for name in names:
                self._inside(zone, name)
                out[name] = held.get(name)
            return out

    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        with self.store.lock:
            held = self._zone(zone)
            for change in changes:
                self._inside(zone, change.name)
                if held.get(change.name) != change.expected:
                    raise StaleExpectationError(
                        f"{change.name}: the live MX set is not the one the plan expected"
                    )
            for change in changes:
                if change.new is None:
                    held.pop(change.name, None)
                else:
                    held[change.name] = change.new
            self.store.applied.append((zone, tuple(changes)))
            self.store.version += 1
        return ChangeHandle(provider=self.name, zone=zone, changes=tuple(changes))

    def nameservers(self, zone: str) -> list[str]:
        self._zone(zone)
        return [self.store.address()]


def register_memory_provider(folder: Path) -> Path:
    """Write a throw-away distribution registering ``memory`` in the ``mxflip.providers``
    entry points; put the returned folder on ``sys.path`` (``monkeypatch.syspath_prepend``)
    to make the type visible to the config loader and ``mxflip providers``."""
    info = folder / "mxflip_testing_memory-0.0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mxflip-testing-memory\nVersion: 0.0.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[mxflip.providers]\nmemory = mxflip.testing.memory:MemoryProvider\n"
    )
    return folder
