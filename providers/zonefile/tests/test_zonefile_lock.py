"""Two writers never interleave: the sidecar flock serialises read-modify-write."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mxflip import Change, ProviderError, RRset, Sleep
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings
from mxflip_zonefile._zonefile import load, serial
from mxflip_zonefile.provider import lock_path
from tests.support.bind import zone_text

ZONE = "example.test."
NEW = RRset.of(ZONE, 300, ["10 mx1.example.net."])

HOLD = (
    "import fcntl, sys\n"
    "f = open(sys.argv[1], 'a')\n"
    "fcntl.flock(f, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "sys.stdin.readline()\n"
)


@pytest.fixture
def zone_file(tmp_path: Path) -> Path:
    path = tmp_path / "example.test.zone"
    path.write_text(zone_text(ZONE))
    return path.resolve()


@pytest.fixture
def holder(zone_file: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the zone file's lock until a line arrives on its stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock_path(zone_file))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    release(proc)


def release(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=10)


def provider_for(zone_file: Path, sleep: Sleep | None, **extra: object) -> ZoneFileProvider:
    settings = ZoneFileSettings.model_validate({"file": str(zone_file), **extra})
    return ZoneFileProvider("files", settings, sleep=sleep)


def test_writer_waits_for_the_lock_then_writes(
    zone_file: Path, holder: subprocess.Popen[str]
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        # The first wait proves the writer found the lock taken; then let it go.
        waits.append(seconds)
        assert zone_file.read_text() == zone_text(ZONE)  # nothing written while locked
        release(holder)

    provider_for(zone_file, sleep).apply(ZONE, [Change(ZONE, None, NEW)])
    assert len(waits) == 1
    assert provider_for(zone_file, sleep).read(ZONE, [ZONE]) == {ZONE: NEW}


def test_writer_gives_up_after_bounded_tries(
    zone_file: Path, holder: subprocess.Popen[str]
) -> None:
    waits: list[float] = []
    provider = provider_for(zone_file, waits.append, lock_timeout=5)
    with pytest.raises(ProviderError) as info:
        provider.apply(ZONE, [Change(ZONE, None, NEW)])
    assert "stayed locked by another writer for 5 s; nothing was changed" in str(info.value)
    assert str(lock_path(zone_file)) in str(info.value)
    assert 0 < len(waits) < 10_000
    assert zone_file.read_text() == zone_text(ZONE)


def test_reads_do_not_wait_for_the_lock(zone_file: Path, holder: subprocess.Popen[str]) -> None:
    def sleep(seconds: float) -> None:
        raise AssertionError("a read must not wait")

    assert provider_for(zone_file, sleep).read(ZONE, [ZONE]) == {ZONE: None}


def test_concurrent_writers_lose_no_update(zone_file: Path) -> None:
    """Two threads, each with its own provider, switch their own name back and forth.
    Without the lock one would overwrite the other's file; with it every write lands,
    so the serial moves exactly once per write and both last states are in the file."""
    rounds = 15
    start = serial(load(zone_file, ZONE))
    errors: list[BaseException] = []

    def writer(label: str) -> None:
        # A tiny real pause between lock tries: this test is about real contention.
        provider = provider_for(zone_file, lambda s: time.sleep(0.001))
        name = f"{label}.{ZONE}"
        current: RRset | None = None
        try:
            for i in range(rounds):
                new = RRset.of(name, 300 + i, [f"10 mx{i}.example.net."])
                provider.apply(ZONE, [Change(name, current, new)])
                current = new
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(label,)) for label in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    expected = start + 2 * rounds  # zone_text() has a plain counter serial
    provider = provider_for(zone_file, None)
    last = rounds - 1
    assert provider.read(ZONE, ["a." + ZONE, "b." + ZONE]) == {
        f"{label}.{ZONE}": RRset.of(f"{label}.{ZONE}", 300 + last, [f"10 mx{last}.example.net."])
        for label in ("a", "b")
    }
    assert serial(load(zone_file, ZONE)) == expected
