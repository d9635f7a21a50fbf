"""Cutting a zone's changes into UPDATEs: every part, TSIG included, fits the limit; the
parts keep every change once and in order; a change alone too big is refused unsent."""

from __future__ import annotations

import base64

import dns.name
import dns.tsig
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxflip import Change, ProviderError, RRset, parse_hostport
from mxflip_rfc2136 import RFC2136Provider
from mxflip_rfc2136._client import RFC2136Client
from mxflip_rfc2136.keyfile import TsigKey
from mxflip_rfc2136.provider import _update_message

ZONE = "parts.example.test."
KEY = TsigKey(
    "a-rather-long-key-name.example.test",
    algorithm="hmac-sha512",
    secret=base64.b64encode(b"k" * 64).decode(),
)

label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=40).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)
host = st.lists(label, min_size=1, max_size=4).map(lambda ls: ".".join(ls) + ".example.net.")
mx_set = st.lists(
    st.tuples(st.integers(0, 65535), host), min_size=1, max_size=12, unique_by=lambda t: t[1]
).map(lambda items: [f"{p} {h}" for p, h in items])


@st.composite
def changes(draw: st.DrawFn) -> list[Change]:
    names = draw(st.lists(label, min_size=1, max_size=60, unique=True))
    out = []
    for n in names:
        name = f"{n}.{ZONE}"
        before = draw(st.none() | mx_set)
        after = draw(st.none() | mx_set)
        expected = RRset.of(name, draw(st.integers(1, 86400)), before) if before else None
        new = RRset.of(name, draw(st.integers(1, 86400)), after) if after else None
        if expected != new:
            out.append(Change(name, expected, new))
    return out


def provider(limit: int) -> RFC2136Provider:
    client = RFC2136Client(parse_hostport("127.0.0.1:1", 53), KEY, timeout=1)
    return RFC2136Provider("parts", client, max_update_bytes=limit)


@settings(max_examples=60, deadline=None)
@given(changes(), st.sampled_from([1024, 2048, 4096, 65535]))
def test_every_part_fits_and_nothing_is_lost(pending: list[Change], limit: int) -> None:
    p = provider(limit)
    try:
        chunks = p._chunks(ZONE, pending)
    except ProviderError as exc:
        assert "nothing was sent" in str(exc) and limit < 65535
        return
    assert [c for chunk in chunks for c in chunk] == pending
    keyname = dns.name.from_text(KEY.name)
    for chunk in chunks:
        message = _update_message(ZONE, chunk)
        message.use_tsig({keyname: dns.tsig.Key(keyname, KEY.secret, KEY.algorithm)}, keyname)
        assert len(message.to_wire()) <= limit
    # As few parts as the (uncompressed) count allows: no two neighbours would fit together.
    assert p.write_parts(ZONE, pending) == len(chunks)


def test_a_change_alone_too_big_is_refused_without_blaming_the_server() -> None:
    name = f"big.{ZONE}"
    big = RRset.of(
        name, 300, [f"{i} mx{i}.a-long-host-name-for-sure.example.net." for i in range(60)]
    )
    with pytest.raises(ProviderError) as info:
        provider(1024).apply(ZONE, [Change(name, None, big)])
    assert "nothing was sent" in str(info.value)
    assert "DNS server" not in str(info.value)
