"""What a write does to the zone file: atomic replace, other records kept, stale refusal."""

from __future__ import annotations

import datetime
import os
import re
import stat
from pathlib import Path

import pytest

from mxflip import Change, ProviderError, RRset, StaleExpectationError, apply_changes
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings
from mxflip_zonefile._zonefile import load, serial

ZONE = "example.test."
APEX = "example.test."
ORIGINAL = """; example.test, kept in git
$ORIGIN example.test.
$TTL 300
@       IN SOA ns1 hostmaster (
                2026010101 ; serial
                3600 600 86400 60 )
        IN NS  ns1
        IN NS  ns2.example.net.
@   600 IN MX  10 mx1          ; our own
@   600 IN MX  20 mx2.example.net.
@       IN TXT "v=spf1 mx -all"
ns1     IN A   127.0.0.1
www     IN CNAME @
sub     IN MX  5 mail.sub
mail.sub IN A  127.0.0.2
"""
LIVE = RRset.of(APEX, 600, ["10 mx1.example.test.", "20 mx2.example.net."])
BACKUP = RRset.of(APEX, 60, ["10 backup.example.org."])


@pytest.fixture
def path(tmp_path: Path) -> Path:
    zone_file = tmp_path / "example.test.zone"
    zone_file.write_text(ORIGINAL)
    return zone_file


def provider_for(path: Path, **settings: object) -> ZoneFileProvider:
    return ZoneFileProvider(
        "files",
        ZoneFileSettings.model_validate({"file": str(path), **settings}),
        today=lambda: datetime.date(2026, 11, 23),
    )


def rrsets(path: Path) -> dict[tuple[str, str], tuple[int, set[str]]]:
    """Every RRset of the file as (owner, type) → (ttl, rdata texts)."""
    zone = load(path, ZONE)
    return {
        (name.to_text(), rds.rdtype.name): (rds.ttl, {r.to_text() for r in rds})
        for name, node in zone.nodes.items()
        for rds in node.rdatasets
    }


def test_read_derelativizes_names(path: Path) -> None:
    provider = provider_for(path)
    sub = "sub.example.test."
    assert provider.read(ZONE, [APEX, sub, "www.example.test."]) == {
        APEX: LIVE,
        sub: RRset.of(sub, 300, ["5 mail.sub.example.test."]),
        "www.example.test.": None,
    }


def test_switch_changes_only_mx_and_serial(path: Path) -> None:
    before = rrsets(path)
    provider_for(path).apply(ZONE, [Change(APEX, LIVE, BACKUP)])
    after = rrsets(path)
    assert after.pop(("@", "MX")) == (60, {"10 backup.example.org."})
    assert after.pop(("@", "SOA"))[1] == {"ns1 hostmaster 2026112300 3600 600 86400 60"}
    del before[("@", "MX")], before[("@", "SOA")]
    assert after == before


def test_switch_edits_the_file_in_place(path: Path) -> None:
    """Comments and layout stay; only the MX lines and the serial change."""
    handle = provider_for(path).apply(ZONE, [Change(APEX, LIVE, BACKUP)])
    assert handle.detail["rewritten"] is False
    assert path.read_text() == ORIGINAL.replace(
        "2026010101 ; serial", "2026112300 ; serial"
    ).replace(
        "@   600 IN MX  10 mx1          ; our own\n@   600 IN MX  20 mx2.example.net.\n",
        "@ 60 IN MX 10 backup.example.org.\n",
    )


def test_delete_removes_only_the_mx_rrset(path: Path) -> None:
    provider = provider_for(path)
    provider.apply(
        ZONE,
        [
            Change(
                "sub.example.test.",
                provider.read(ZONE, ["sub.example.test."])["sub.example.test."],
                None,
            )
        ],
    )
    assert ("sub", "MX") not in rrsets(path)
    assert ("mail.sub", "A") in rrsets(path)


def test_atomic_replace_keeps_mode_and_leaves_no_temporary_files(path: Path) -> None:
    os.chmod(path, 0o640)
    inode = path.stat().st_ino
    provider_for(path).apply(ZONE, [Change(APEX, LIVE, BACKUP)])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # a new file was renamed into place
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".example.test.zone.mxflip-lock",
        "example.test.zone",
    ]


def test_failed_write_leaves_file_and_folder_as_they_were(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ProviderError, match="No space left on device; nothing was changed"):
        provider_for(path).apply(ZONE, [Change(APEX, LIVE, BACKUP)])
    assert path.read_text() == ORIGINAL
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".example.test.zone.mxflip-lock",
        "example.test.zone",
    ]


def test_symlinked_zone_file_is_written_where_it_lives(path: Path) -> None:
    link = path.parent / "link.zone"
    link.symlink_to(path.name)
    provider_for(link).apply(ZONE, [Change(APEX, LIVE, BACKUP)])
    assert link.is_symlink()
    assert provider_for(path).read(ZONE, [APEX]) == {APEX: BACKUP}


@pytest.mark.parametrize(
    "believed",
    [
        LIVE.with_ttl(300),  # same records, other TTL
        RRset.of(APEX, 600, ["10 mx1.example.test."]),  # a subset
        None,  # believed absent
    ],
)
def test_stale_expectation_refused_and_file_untouched(path: Path, believed: RRset | None) -> None:
    before = path.read_bytes()
    with pytest.raises(StaleExpectationError, match=re.escape("example.test in zone file")):
        provider_for(path).apply(ZONE, [Change(APEX, believed, BACKUP)])
    assert path.read_bytes() == before


def test_already_applied_change_counts_as_done(path: Path) -> None:
    provider = provider_for(path)
    provider.apply(ZONE, [Change(APEX, LIVE, BACKUP)])
    written = path.read_bytes()
    apply_changes(provider, ZONE, [Change(APEX, LIVE, BACKUP)])
    assert path.read_bytes() == written


def test_mx_beside_a_cname_is_refused(path: Path) -> None:
    name = "www.example.test."
    with pytest.raises(ProviderError, match="has a CNAME record"):
        provider_for(path).apply(ZONE, [Change(name, None, RRset.of(name, 300, ["10 a.test."]))])
    assert path.read_text() == ORIGINAL


def test_name_outside_the_zone_is_refused(path: Path) -> None:
    with pytest.raises(ProviderError, match=re.escape("not inside zone example.test.")):
        provider_for(path).read(ZONE, ["example.org."])


def test_other_zone_than_the_files_is_refused(path: Path) -> None:
    with pytest.raises(ProviderError, match=re.escape("holds only zone example.test.")):
        provider_for(path).read("other.test.", ["other.test."])


def test_directory_mode_without_the_zones_file(tmp_path: Path) -> None:
    provider = ZoneFileProvider("files", ZoneFileSettings(directory=tmp_path))
    with pytest.raises(ProviderError, match=re.escape("no zone file for zone other.test.")):
        provider.read("other.test.", ["other.test."])


def test_file_broken_after_config_load_gives_the_line(path: Path) -> None:
    provider = provider_for(path)
    path.write_text(ORIGINAL + "oops IN MX 10\n")
    with pytest.raises(ProviderError) as info:
        provider.read(ZONE, [APEX])
    assert f"zone file {path} line {ORIGINAL.count(chr(10)) + 1}:" in str(info.value)
    assert "named-checkzone" in str(info.value)


def test_nameservers_come_from_the_file(path: Path) -> None:
    assert provider_for(path).nameservers(ZONE) == ["ns1.example.test", "ns2.example.net"]


def test_serial_is_bumped_once_per_batch(path: Path) -> None:
    provider = provider_for(path)
    sub = "sub.example.test."
    handle = provider.apply(
        ZONE,
        [
            Change(APEX, LIVE, BACKUP),
            Change(sub, RRset.of(sub, 300, ["5 mail.sub.example.test."]), None),
        ],
    )
    assert serial(load(path, ZONE)) == handle.detail["serial"] == 2026112300
