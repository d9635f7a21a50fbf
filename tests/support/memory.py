"""Fixtures for pure core tests: MemoryProvider registered as type ``memory``, a fresh
store per test, and a configuration that uses it (no DNS server but the store's own)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mxflip.records import RRset
from mxflip.testing.memory import MemoryStore, register_memory_provider
from tests.support.engine import BACKUP, PRIMARY

ZONE = "memory.test."


def fresh_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryStore]:
    """A fresh store with zone memory.test, its ``memory`` type visible to the loader
    (the ``memory_store`` fixture of conftest.py)."""
    monkeypatch.syspath_prepend(str(register_memory_provider(tmp_path / "entry-points")))
    name = f"t-{uuid.uuid4().hex[:8]}"
    store = MemoryStore.named(name)
    store.add_zone(ZONE)
    yield store
    MemoryStore.drop(name)


def seed(store: MemoryStore, names: Sequence[str], records: Sequence[str] = PRIMARY) -> None:
    store.add_zone(ZONE, [RRset.of(n, 3600, records) for n in names])


def write_config(
    tmp_path: Path,
    store: MemoryStore,
    names: Sequence[str],
    extra: str = "",
    nameservers: Sequence[str] = (),
) -> Path:
    """An mxflip.toml for ``names`` (absolute, in memory.test) on the store; verification
    asks ``nameservers``, or else the store's loopback DNS server (the provider's)."""
    servers = f"nameservers = {json.dumps(list(nameservers))}" if nameservers else ""
    text = f"""
[providers.mem]
type = "memory"
store = "{store.name}"

[defaults]
provider = "mem"
zone = "{ZONE.rstrip(".")}"
primary = {json.dumps(PRIMARY)}
backup = {json.dumps(BACKUP)}
ttl = 3600
failover_ttl = 60
{servers}

[journal]
path = "state/journal.jsonl"
{extra}
"""
    for n in names:
        text += f'\n[domains."{n.rstrip(".")}"]\n'
    path = tmp_path / "mxflip.toml"
    path.write_text(text)
    return path
