"""The small DNS wire reader agrees with dnspython on the messages readiness receives."""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest import MonkeyPatch

from mxflip.net.dnswire import Question, WireError, parse, to_text


def rrset(text: str) -> dns.rrset.RRset:
    name, ttl, rdtype, rdata = text.split(maxsplit=3)
    return dns.rrset.from_text(name, int(ttl), "IN", rdtype, rdata)


def reply(question: Question, *answer: str, rcode: int = 0, authority: str = "") -> bytes:
    """A reply built (and name-compressed) by dnspython."""
    query = dns.message.from_wire(question.to_wire(4242))
    response = dns.message.make_response(query)
    for text in answer:
        response.answer.append(rrset(text))
    if authority:
        response.authority.append(rrset(authority))
    response.set_rcode(dns.rcode.Rcode(rcode))
    return response.to_wire()


def test_the_query_is_what_dnspython_would_send() -> None:
    question = Question.make("MX1.Example.test.", "AAAA")
    ours = dns.message.from_wire(question.to_wire(7))
    theirs = dns.message.make_query("mx1.example.test.", "AAAA", use_edns=0, payload=1232)
    theirs.id = 7
    # with AD set (RFC 6840 §5.7): a validating resolver says whether it validated
    theirs.flags |= dns.flags.AD
    assert ours == theirs
    assert question.labels == (b"mx1", b"example", b"test")


def test_a_cname_chain_is_followed_and_names_are_decompressed() -> None:
    question = Question.make("mx.example.test.", "A")
    data = reply(
        question,
        "mx.example.test. 300 CNAME b.Example.test.",
        "b.example.test. 300 CNAME c.example.test.",
        "c.example.test. 60 A 192.0.2.1",
        authority="example.test. 300 SOA ns. host. 1 2 3 4 5",
    )
    response = parse(data)
    assert response.answers(question) and response.rcode == 0
    canonical, records = response.chain(question)
    assert to_text(canonical) == "c.example.test."
    assert [r.rdata for r in records] == [bytes([192, 0, 2, 1])]


def test_nodata_has_no_records_and_the_soa_is_skipped() -> None:
    question = Question.make("_25._tcp.mx.example.test.", "TLSA")
    response = parse(reply(question, authority="example.test. 300 SOA ns. host. 1 2 3 4 5"))
    assert response.chain(question) == (question.labels, [])


def test_mx_targets_and_extended_rcodes_are_read() -> None:
    question = Question.make("example.test.", "MX")
    data = reply(question, "example.test. 300 MX 10 mx.example.test.")
    [record] = parse(data).answer
    assert to_text(record.target) == "mx.example.test."
    badvers = dns.message.make_response(dns.message.from_wire(question.to_wire(1)))
    badvers.set_rcode(dns.rcode.BADVERS)
    assert parse(badvers.to_wire()).rcode == dns.rcode.BADVERS


def test_a_reply_to_another_question_does_not_match() -> None:
    asked = Question.make("a.example.test.", "A")
    other = Question.make("b.example.test.", "A")
    assert not parse(reply(other)).answers(asked)
    assert not parse(asked.to_wire(1)).answers(asked)  # a query, not a reply


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 11, b"\x00\x01\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03ab"],
)
def test_malformed_messages_raise(data: bytes) -> None:
    with pytest.raises(WireError):
        parse(data)


def test_a_compression_loop_raises() -> None:
    header = b"\x00\x01\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    with pytest.raises(WireError):
        parse(header + b"\xc0\x0c\x00\x01\x00\x01")


@pytest.mark.parametrize(
    "name",
    ["mx1.Example.test.", "_25._tcp.mx.example.test.", "a\\.b.example.test.", "bücher.test."],
)
def test_questions_encode_names_as_dnspython_does(name: str) -> None:
    import dns.name

    question = Question.make(name, "TXT")
    parsed = dns.name.from_text(name)
    assert question.wire.lower() == (parsed.to_wire() or b"").lower()
    assert question.labels == tuple(label.lower() for label in parsed.labels[:-1])


@pytest.mark.parametrize("name", [f"{'a' * 64}.test.", ".".join(["abcdefgh"] * 29) + "."])
def test_over_long_names_are_refused(name: str) -> None:
    import dns.exception

    with pytest.raises(dns.exception.DNSException):
        Question.make(name, "A")


def test_a_truncated_reply_cut_mid_record_still_parses() -> None:
    question = Question.make("big.example.test.", "TXT")
    query = dns.message.from_wire(question.to_wire(9))
    response = dns.message.make_response(query)
    response.answer.append(rrset('big.example.test. 300 TXT "' + "a" * 200 + '"'))
    response.flags |= dns.flags.TC
    cut = parse(response.to_wire()[:60])
    assert cut.truncated and cut.answers(question) and cut.answer == ()


def test_the_ad_bit_of_a_reply_is_read() -> None:
    question = Question.make("_25._tcp.mx.example.test.", "TLSA")
    message = dns.message.make_response(dns.message.from_wire(question.to_wire(9)))
    assert not parse(message.to_wire()).authenticated
    message.flags |= dns.flags.AD
    assert parse(message.to_wire()).authenticated


def test_ad_is_trusted_only_from_named_or_local_resolvers(monkeypatch: MonkeyPatch) -> None:
    import dns.resolver

    from mxflip.hostport import HostPort
    from mxflip.net.lookup import Lookup

    class System:
        def __init__(self) -> None:
            self.nameservers = system

    monkeypatch.setattr(dns.resolver, "Resolver", System)
    system = ["192.0.2.53"]
    assert Lookup().trust_ad is False  # a resolver across the network: AD proves nothing
    system = ["127.0.0.53", "::1"]
    assert Lookup().trust_ad is True  # systemd-resolved or a local Unbound
    assert Lookup([HostPort("192.0.2.1", 53)]).trust_ad is True  # named in [probe] resolvers


# ------------------------------------------------- status and verification: MX answers

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_", min_size=1, max_size=12)
_host = st.lists(_label, min_size=1, max_size=4).map(lambda labels: ".".join(labels) + ".")


@given(
    owner=_host,
    mx=st.lists(st.tuples(st.integers(0, 65535), _host, st.integers(0, 2**31 - 1)), max_size=6),
    others=st.lists(st.tuples(_host, st.integers(0, 65535), _host), max_size=3),
    aa=st.booleans(),
    rcode=st.sampled_from([0, 2, 3, 5, 16]),
)
@settings(max_examples=200, deadline=None)
def test_mx_answers_read_as_dnspython_reads_them(
    owner: str,
    mx: list[tuple[int, str, int]],
    others: list[tuple[str, int, str]],
    aa: bool,
    rcode: int,
) -> None:
    """MX RRset, its TTL (the lowest, as dnspython merges records), AA and RCODE agree
    with dnspython's parse of the same (name-compressed) bytes."""
    question = Question.make(owner, "MX", recursive=False)
    query = dns.message.from_wire(question.to_wire(77))
    assert not query.flags & dns.flags.RD
    response = dns.message.make_response(query)
    for pref, host, ttl in mx:
        response.find_rrset(
            response.answer, dns.name.from_text(owner), 1, dns.rdatatype.MX, create=True
        ).add(dns.rdata.from_text("IN", "MX", f"{pref} {host}"), ttl)
    for name, pref, host in others:  # other owners' records are not the answer
        if dns.name.from_text(name) != dns.name.from_text(owner):
            response.answer.append(rrset(f"{name} 60 MX {pref} {host}"))
    if aa:
        response.flags |= dns.flags.AA
    response.set_rcode(dns.rcode.Rcode(rcode))
    data = response.to_wire()

    ours = parse(data)
    theirs = dns.message.from_wire(data)
    assert ours.answers(question) and theirs.rcode() == ours.rcode
    assert ours.authoritative == bool(theirs.flags & dns.flags.AA)
    found = ours.mx(question)
    expected = theirs.get_rrset(theirs.answer, dns.name.from_text(owner), 1, dns.rdatatype.MX)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        ttl, records = found
        assert ttl == expected.ttl
        assert {(p, to_text(t)) for p, t in records} == {
            (r.preference, r.exchange.to_text().lower()) for r in expected
        }


def test_an_mx_record_whose_name_overruns_its_length_is_refused() -> None:
    question = Question.make("example.test.", "MX")
    good = reply(question, "example.test. 300 MX 10 mx.example.test.")
    # shrink the record's RDLENGTH by one: its name now runs past the record
    at = good.rindex(b"\x00\x0f\x00\x01") + 8
    bad = good[:at] + (int.from_bytes(good[at : at + 2], "big") - 1).to_bytes(2, "big")
    with pytest.raises(WireError):
        parse(bad + good[at + 2 : -1])
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(bad + good[at + 2 : -1])
