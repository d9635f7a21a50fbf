"""In-place edits: unrelated lines stay byte for byte; anything unsafe falls back to a
full rewrite, and either way the file parses to exactly the intended zone."""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import pytest

from mxflip import Change, RRset
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings
from mxflip_zonefile._zonefile import load, render, serial
from mxflip_zonefile.serial import serial_gt

ZONE = "example.test."


def provider_for(path: Path) -> ZoneFileProvider:
    return ZoneFileProvider(
        "files", ZoneFileSettings(file=path), today=lambda: datetime.date(2026, 11, 23)
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "example.test.zone"
    path.write_bytes(text.encode())
    return path


HEAD = "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 7 3600 600 86400 60\n@ IN NS ns1\n"


def test_deleted_owner_line_is_written_out_on_the_line_that_inherited_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + '; mail\nlists IN MX 10 mx1 ; primary\n      IN TXT "keep me"\n'
        "      IN MX 20 mx2\nns1 IN A 127.0.0.1\n",
    )
    name = "lists.example.test."
    old = RRset.of(name, 300, ["10 mx1.example.test.", "20 mx2.example.test."])
    provider_for(path).apply(ZONE, [Change(name, old, None)])
    assert path.read_text() == (
        HEAD.replace(" 7 ", " 8 ") + '; mail\nlists      IN TXT "keep me"\nns1 IN A 127.0.0.1\n'
    )


def test_replaced_owner_line_still_names_the_owner_for_the_next_line(tmp_path: Path) -> None:
    body = 'lists IN MX 10 mx1\n      IN TXT "keep me"\n      IN MX 20 mx2\n'
    path = write(tmp_path, HEAD + body + "ns1 IN A 127.0.0.1\n")
    name = "lists.example.test."
    old = RRset.of(name, 300, ["10 mx1.example.test.", "20 mx2.example.test."])
    new = RRset.of(name, 60, ["10 backup.example.org."])
    provider_for(path).apply(ZONE, [Change(name, old, new)])
    assert path.read_text() == HEAD.replace(" 7 ", " 8 ") + (
        'lists 60 IN MX 10 backup.example.org.\n      IN TXT "keep me"\nns1 IN A 127.0.0.1\n'
    )


def test_escaped_dot_in_the_soa_mailbox_is_edited_in_place(tmp_path: Path) -> None:
    head = HEAD.replace("hostmaster 7", "john\\.doe.example.test. 7")
    path = write(tmp_path, head + "; keep\nns1 IN A 127.0.0.1\n")
    rrset = RRset.of("ns1.example.test.", 300, ["10 mx1.example.test."])
    handle = provider_for(path).apply(ZONE, [Change(rrset.name, None, rrset)])
    assert handle.detail["rewritten"] is False
    assert path.read_text() == head.replace(" 7 ", " 8 ") + (
        "; keep\nns1 IN A 127.0.0.1\nns1 300 IN MX 10 mx1\n"
    )


def test_new_mx_goes_after_the_names_other_records(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "www IN A 127.0.0.3\n; end of www\nns1 IN A 127.0.0.1\n")
    name = "www.example.test."
    provider_for(path).apply(ZONE, [Change(name, None, RRset.of(name, 60, ["5 mx.other.test."]))])
    assert path.read_text() == (
        HEAD.replace(" 7 ", " 8 ")
        + "www IN A 127.0.0.3\nwww 60 IN MX 5 mx.other.test.\n; end of www\nns1 IN A 127.0.0.1\n"
    )


def test_names_are_written_relative_to_the_origin_in_force(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEAD + "ns1 IN A 127.0.0.1\n$ORIGIN lab.example.test.\nhost IN A 127.0.0.4"
    )
    name = "new.lab.example.test."
    rrset = RRset.of(name, 300, ["10 host.lab.example.test.", "20 mx.example.test."])
    provider_for(path).apply(ZONE, [Change(name, None, rrset)])
    text = path.read_text()
    assert text.endswith(
        "host IN A 127.0.0.4\nnew 300 IN MX 10 host\nnew 300 IN MX 20 mx.example.test.\n"
    )
    assert provider_for(path).read(ZONE, [name]) == {name: rrset}


def test_crlf_line_ends_are_kept(tmp_path: Path) -> None:
    text = (HEAD + "@ IN MX 10 mx1\nns1 IN A 127.0.0.1\n").replace("\n", "\r\n")
    path = write(tmp_path, text)
    old = RRset.of(ZONE, 300, ["10 mx1.example.test."])
    new = RRset.of(ZONE, 300, ["10 mx2.example.test."])
    provider_for(path).apply(ZONE, [Change(ZONE, old, new)])
    assert (
        path.read_bytes()
        == text.replace(" 7 ", " 8 ").replace("@ IN MX 10 mx1", "@ 300 IN MX 10 mx2").encode()
    )


def test_ttl_inherited_from_a_changed_line_falls_back_to_a_full_rewrite(tmp_path: Path) -> None:
    """Without $TTL a record takes the TTL of the line before it; moving that TTL would
    change the next record, so the edit is refused and the zone is rendered afresh."""
    text = (
        "$ORIGIN example.test.\n@ 300 IN SOA ns1 hostmaster 7 3600 600 86400 60\n"
        "@ 300 IN NS ns1\n@ 900 IN MX 10 mx1\nns1 IN A 127.0.0.1 ; takes 900\n"
    )
    path = write(tmp_path, text)
    old = RRset.of(ZONE, 900, ["10 mx1.example.test."])
    new = RRset.of(ZONE, 60, ["10 mx2.example.test."])
    handle = provider_for(path).apply(ZONE, [Change(ZONE, old, new)])
    assert handle.detail["rewritten"] is True
    written = path.read_text()
    assert ";" not in written  # rewritten: comments are gone
    assert written == render(load(path, ZONE))
    assert "ns1 900 IN A 127.0.0.1" in written
    assert provider_for(path).read(ZONE, [ZONE]) == {ZONE: new}


def test_soa_serial_is_found_in_any_layout(tmp_path: Path) -> None:
    text = (
        "$ORIGIN example.test.\n$TTL 300\nexample.test. 3600 IN SOA ns1.example.test. (\n"
        "  hostmaster.example.test. ; who\n  2026112305 ; serial (date form)\n"
        "  3600 ; refresh\n  600 86400 60 )\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
    )
    path = write(tmp_path, text)
    rrset = RRset.of(ZONE, 300, ["10 mx1.example.test."])
    provider_for(path).apply(ZONE, [Change(ZONE, None, rrset)])
    assert path.read_text() == text.replace("2026112305 ;", "2026112306 ;").replace(
        "@ IN NS ns1\n", "@ IN NS ns1\n@ 300 IN MX 10 mx1\n"
    )


COMPLEX = """; a hand-kept zone
$ORIGIN example.test.
$TTL 300
@ IN SOA ns1 hostmaster ( 2026010100 3600 600 86400 60 ) ; serial is the 3rd field
  IN NS ns1
  IN MX 10 mx1 ; inherits @
  IN TXT "v=spf1 mx -all"
ns1 IN A 127.0.0.1
a 600 IN MX ( 10
    mx1 ) ; multi-line
  IN MX 20 mx2.example.net.
b IN CNAME a
c IN MX 5 c
c IN A 127.0.0.5
m IN MX 10 mx1
  IN TXT "m"
  IN MX 20 mx2.example.net.
$ORIGIN sub.example.test.
d IN MX 1 mx1.example.test.
e IN A 127.0.0.6
$TTL 60
f IN TXT "last"
"""


@pytest.mark.parametrize("seed", range(6))
def test_random_change_sequences_always_parse_to_the_intended_zone(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    path = write(tmp_path, COMPLEX)
    provider = provider_for(path)
    names = [
        f"{label}example.test."
        for label in ("", "a.", "c.", "m.", "d.sub.", "e.sub.", "f.sub.", "g.", "h.sub.", "ns1.")
    ]
    hosts = ["mx1.example.test.", "mx2.example.net.", "c.example.test.", "mx.other.test."]
    in_place = 0
    for _ in range(12):
        live = provider.read(ZONE, names)
        picked = rng.sample(names, rng.randint(1, 3))
        changes = []
        for name in picked:
            new: RRset | None = None
            if rng.random() < 0.8:
                chosen = rng.sample(hosts, rng.randint(1, 3))
                new = RRset.of(
                    name,
                    rng.choice([60, 300, 3600]),
                    [f"{10 * (i + 1)} {h}" for i, h in enumerate(chosen)],
                )
            changes.append(Change(name, live[name], new))
        before_serial = serial(load(path, ZONE))
        provider.apply(ZONE, changes)
        assert provider.read(ZONE, picked) == {c.name: c.new for c in changes}
        after_serial = serial(load(path, ZONE))
        if all(c.is_noop for c in changes):
            assert after_serial == before_serial
        else:
            assert serial_gt(after_serial, before_serial)
        if "; a hand-kept zone" in path.read_text():
            in_place += 1
    # This zone has $TTL throughout, so every edit can be made in place.
    assert in_place == 12
    assert '"v=spf1 mx -all"' in path.read_text() and "b IN CNAME a" in path.read_text()
