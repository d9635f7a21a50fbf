"""The quick reader of plain zone files never accepts a file dnspython refuses, and reads
exactly the MX RRsets and apex NS names dnspython reads (property test over generated zone
files mixing plain lines with what only dnspython may judge)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings, _scan, _zonefile

ORIGIN = "once.test."
HEADER = f"$ORIGIN {ORIGIN}\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\n"

names = st.sampled_from(
    [
        "@",
        "a",
        "B.c",
        "x.once.test.",
        "Y.ONCE.TEST.",
        "other.test.",
        "mx1",
        "-bad",
        "a..b",
        "*",
        "1",
        "MX",
        "_dmarc",
        "l" * 64,
        "q\\.w",
        "é",
    ]
)
ttls = st.sampled_from(["0", "300", "60", "1h", "4294967296", "2147483648", "007", "-1"])
classes = st.sampled_from(["IN", "in", "CH", ""])
addresses = st.sampled_from(
    ["127.0.0.1", "256.1.1.1", "1.2.3", "01.2.3.4", "::1", "1::2::3", "::ffff:1.2.3.4", "gg::1"]
)
prefs = st.sampled_from(["10", "0", "65535", "65536", "-1", "x", "010"])


@st.composite
def records(draw: st.DrawFn) -> str:
    rdtype = draw(st.sampled_from(["MX", "mx", "NS", "A", "AAAA", "CNAME", "SOA", "TXT", "X"]))
    if rdtype.upper() == "MX":
        rdata = f"{draw(prefs)} {draw(names)}"
    elif rdtype in ("NS", "CNAME"):
        rdata = draw(names)
    elif rdtype in ("A", "AAAA"):
        rdata = draw(addresses)
    elif rdtype == "SOA":
        rdata = f"{draw(names)} {draw(names)} 2 {draw(ttls)} 600 86400 60"
    elif rdtype == "TXT":
        rdata = draw(st.sampled_from(['"v=spf1 -all"', "word", "(a b)"]))
    else:
        rdata = "1"
    owner = draw(st.one_of(names, st.just(" "), st.just("\t")))
    ttl = draw(st.one_of(st.just(""), ttls))
    rdclass = draw(classes)
    fields = [ttl, rdclass] if draw(st.booleans()) else [rdclass, ttl]
    comment = draw(st.sampled_from(["", " ; note", ";"]))
    extra = draw(st.sampled_from(["", "", "", " extra"]))
    return " ".join([owner, *fields, rdtype, rdata]) + extra + comment


good_names = st.sampled_from(["@", "a", "B.c", "x.once.test.", "Y.ONCE.TEST.", "mx1", "_d"])


@st.composite
def plain_records(draw: st.DrawFn) -> str:
    """Lines the quick reader should take (mostly): valid, in the plain subset."""
    rdtype, rdata = draw(
        st.sampled_from(
            [
                ("MX", "10 mx1"),
                ("MX", "20 MX.other.test."),
                ("mx", "0 @"),
                ("A", "127.0.0.1"),
                ("AAAA", "::1"),
                ("NS", "ns2.other.test."),
                ("CNAME", "a"),
            ]
        )
    )
    owner = draw(st.one_of(good_names, st.just(" ")))
    ttl = draw(st.sampled_from(["", "60", "300", "3600"]))
    return f"{owner} {ttl} {draw(st.sampled_from(['IN', '']))} {rdtype} {rdata}"


lines = st.one_of(
    plain_records(),
    plain_records(),
    plain_records(),
    st.builds(lambda n: f"$ORIGIN {n}", st.sampled_from(["once.test.", "sub.once.test."])),
    records(),
    st.builds(lambda t: f"$TTL {t}", ttls),
    st.builds(lambda n: f"$ORIGIN {n}", names),
    st.sampled_from(["", "; comment", "$INCLUDE x.zone", "$GENERATE 1-2 a$ MX 10 b"]),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    header=st.sampled_from([HEADER, "", HEADER.replace("$TTL 300\n", "")]),
    body=st.lists(lines, max_size=12),
)
def test_quick_read_agrees_with_dnspython(header: str, body: list[str]) -> None:
    text = header + "\n".join(body) + "\n"
    quick = _scan.scan(text, ORIGIN)
    event(f"quick read: {quick is not None}")
    if quick is None:
        return  # not plain: dnspython alone judges it
    # Accepted quickly: dnspython must accept it too, and read the very same records.
    parsed = _zonefile.parse(text, Path("z.zone"), ORIGIN)
    full = {rrset.name: rrset for rrset in _zonefile.all_mx(parsed)}
    assert quick.mx == full
    for name in full:
        assert quick.read_mx(name) == _zonefile.read_mx(parsed, name)
    assert quick.nameservers == _zonefile.nameservers(parsed)


def test_plain_generated_zones_are_read_quickly() -> None:
    body = "".join(f"d{i} 3600 IN MX 10 mx1.proxy.test.\nd{i} IN MX 20 mx2\n" for i in range(50))
    quick = _scan.scan(HEADER + "www IN CNAME a\na IN AAAA ::1\n" + body, ORIGIN)
    assert quick is not None
    rrset = quick.read_mx("D7.Once.Test.")
    assert rrset is not None and rrset.ttl == 300  # the smaller TTL of the set, as dnspython
    assert sorted(str(mx) for mx in rrset.records) == ["10 mx1.proxy.test.", "20 mx2.once.test."]
    assert quick.nameservers == ["ns1.once.test"]


@pytest.mark.parametrize(
    "extra",
    [
        't IN TXT "v=spf1 -all"',
        "t 1h IN MX 10 a",
        "t IN MX 10 a ( ; x\n)",
        "www IN CNAME a\nwww IN MX 1 a",
    ],
)
def test_anything_else_is_left_to_dnspython(extra: str) -> None:
    assert _scan.scan(HEADER + extra + "\n", ORIGIN) is None


def test_settings_and_reads_of_a_plain_file_need_no_dnspython_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "once.test.zone"
    body = "".join(f"d{i} 3600 IN MX 10 mx1.proxy.test.\n" for i in range(20))
    path.write_text(HEADER + body)

    def refuse(*args: object) -> None:
        raise AssertionError("a plain zone file was parsed by dnspython")

    monkeypatch.setattr(_zonefile, "_parse_with_layout", refuse)
    provider = ZoneFileProvider("files", ZoneFileSettings(file=path))
    found = provider.read(ORIGIN, [f"d3.{ORIGIN}", f"none.{ORIGIN}"])
    assert found[f"none.{ORIGIN}"] is None
    assert found[f"d3.{ORIGIN}"] is not None and found[f"d3.{ORIGIN}"].ttl == 3600
