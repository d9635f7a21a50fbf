"""The small DNS wire reader agrees with dnspython on the messages readiness receives."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
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
