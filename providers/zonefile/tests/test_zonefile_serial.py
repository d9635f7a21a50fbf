"""SOA serial arithmetic (RFC 1982) and the serial a write leaves in the file."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from mxflip import Change, RRset
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings
from mxflip_zonefile._zonefile import load, serial
from mxflip_zonefile.serial import date_serial_day, next_serial, serial_add, serial_gt

DAY = datetime.date(2026, 11, 23)
ZONE = "example.test."


def zone_with_serial(value: int) -> str:
    return (
        f"$ORIGIN {ZONE}\n$TTL 300\n@ IN SOA ns1 hostmaster {value} 3600 600 86400 60\n"
        "@ IN NS ns1\nns1 IN A 127.0.0.1\n"
    )


def write_once(tmp_path: Path, old: int, today: datetime.date = DAY) -> int:
    path = tmp_path / "example.test.zone"
    path.write_text(zone_with_serial(old))
    provider = ZoneFileProvider("f", ZoneFileSettings(file=path), today=lambda: today)
    rrset = RRset.of("example.test.", 300, ["10 mx1.example.net."])
    handle = provider.apply(ZONE, [Change(rrset.name, None, rrset)])
    written = serial(load(path, ZONE))
    assert handle.detail["serial"] == written
    return written


@pytest.mark.parametrize(
    ("a", "b", "greater"),
    [
        (2, 1, True),
        (1, 2, False),
        (5, 5, False),
        (0, 2**32 - 1, True),  # wraps around
        (2**32 - 1, 0, False),
        (2**31 - 1, 0, True),
        (2**31, 0, False),  # exactly half way: undefined, so not greater
        (0, 2**31, False),
    ],
)
def test_serial_gt_follows_rfc1982(a: int, b: int, greater: bool) -> None:
    assert serial_gt(a, b) is greater


def test_serial_add_wraps_and_bounds_the_increment() -> None:
    assert serial_add(2**32 - 1, 1) == 0
    with pytest.raises(ValueError):
        serial_add(1, 2**31)


@pytest.mark.parametrize(
    ("value", "day"),
    [
        (2026112301, datetime.date(2026, 11, 23)),
        (1999123199, datetime.date(1999, 12, 31)),
        (2026022901, None),  # 2026 is not a leap year
        (2026130101, None),  # month 13
        (1234567890, None),  # year 1234
        (42, None),
        (4294967295, None),
    ],
)
def test_date_serial_detection(value: int, day: datetime.date | None) -> None:
    assert date_serial_day(value) == day


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (1, 2),
        (41, 42),
        (2**32 - 1, 1),  # wraps, skipping 0
        (2026112000, 2026112300),  # older day: today's form
        (2026112300, 2026112301),  # today already: count up
        (2026112399, 2026112400),  # the hundredth change of a day rolls over
        (2026120100, 2026120101),  # a serial from the future stays ahead
    ],
)
def test_next_serial(old: int, new: int) -> None:
    assert next_serial(old, DAY) == new
    assert serial_gt(new, old)


def test_write_bumps_a_plain_serial(tmp_path: Path) -> None:
    assert write_once(tmp_path, 7) == 8


def test_write_moves_a_date_serial_to_today(tmp_path: Path) -> None:
    assert write_once(tmp_path, 2024010105) == 2026112300


def test_write_counts_up_a_date_serial_of_today(tmp_path: Path) -> None:
    assert write_once(tmp_path, 2026112307) == 2026112308


def test_noop_apply_leaves_the_serial(tmp_path: Path) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(zone_with_serial(7) + "@ 300 IN MX 10 mx1.example.net.\n")
    before = path.read_bytes()
    provider = ZoneFileProvider("f", ZoneFileSettings(file=path), today=lambda: DAY)
    rrset = RRset.of("example.test.", 300, ["10 mx1.example.net."])
    provider.apply(ZONE, [Change(rrset.name, rrset, rrset)])
    assert path.read_bytes() == before
