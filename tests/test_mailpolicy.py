"""MTA-STS parsing and RFC 8461 pattern rules; DANE TLSA matching."""

from __future__ import annotations

import hashlib
import ssl

import pytest
import trustme

from mxflip import certs
from mxflip.findings import Severity
from mxflip.mailpolicy import (
    MTASTS,
    MTASTSPolicy,
    PolicyFetchError,
    coverage_findings,
    dane_findings,
    mx_matches,
    parse_policy,
    parse_txt,
    tlsa_matches,
)
from mxflip.net.lookup import TLSAAnswer, TLSARecord
from mxflip.net.smtp import TLSInfo


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("mx.example.com", "mx.example.com", True),
        ("mx.example.com", "MX.Example.COM.", True),
        ("mx.example.com", "mx2.example.com", False),
        ("*.example.com", "mx.example.com", True),
        ("*.example.com", "a.b.example.com", False),  # one label only (RFC 8461 §4.1)
        ("*.example.com", "example.com", False),
        ("*.example.com", "mx.example.net", False),
        ("*.mail.example.com", "mx1.mail.example.com", True),
    ],
)
def test_mx_patterns(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected


def test_parse_policy() -> None:
    policy = parse_policy(
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\n"
        "max_age: 604800\r\n"
    )
    assert policy == MTASTSPolicy("enforce", ("mx1.example.com", "*.example.net"), 604800)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode: enforce\nmx: a.b\nmax_age: 1\n", "does not say 'version: STSv1'"),
        ("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", "mode 'strict'"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "lists no mx: patterns"),
        ("version: STSv1\nmode: enforce\nmx: a.b\n", "no numeric max_age"),
        ("version STSv1\n", "is not 'key: value'"),
        ("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", "above 31557600"),
        ("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", "no numeric max_age"),
    ],
)
def test_bad_policies(text: str, message: str) -> None:
    with pytest.raises(PolicyFetchError, match=message):
        parse_policy(text)


def test_parse_txt() -> None:
    assert parse_txt(["v=spf1 -all", "v=STSv1; id=20160831085700Z;"]) == "20160831085700Z"
    assert parse_txt(["v=spf1 -all"]) is None
    with pytest.raises(PolicyFetchError, match="more than one"):
        parse_txt(["v=STSv1; id=1", "v=STSv1; id=2"])
    with pytest.raises(PolicyFetchError, match="no valid id="):
        parse_txt(["v=STSv1;"])
    # RFC 8461 §3.1: records that do not begin with exactly v=STSv1 are discarded
    assert parse_txt(["v=STSv10; id=abc"]) is None
    assert parse_txt(["v=STSv1x; id=abc", "v=STSv1; id=real"]) == "real"
    assert parse_txt([" v=STSv1 ; id=ok"]) == "ok"


def test_max_age_of_one_year_is_accepted() -> None:
    policy = parse_policy("version: STSv1\nmode: testing\nmx: a.b\nmax_age: 31557600\n")
    assert policy.max_age == 31557600


def test_coverage_under_testing_and_none() -> None:
    testing = MTASTS("example.com.", "1", MTASTSPolicy("testing", ("mx.example.com",), 1))
    [finding] = coverage_findings(testing, ["mx.example.com.", "backup.example.net."])
    assert finding.severity is Severity.WARN and finding.code == "mta-sts-uncovered"
    assert "add 'mx: backup.example.net' or 'mx: *.example.net'" in finding.message
    none = MTASTS("example.com.", "1", MTASTSPolicy("none", (), 1))
    assert coverage_findings(none, ["backup.example.net."]) == []
    assert coverage_findings(MTASTS("example.com."), ["backup.example.net."]) == []


# ----------------------------------------------------------------------------- DANE


@pytest.fixture(scope="module")
def chain() -> tuple[bytes, bytes]:
    ca = trustme.CA()
    leaf = ca.issue_cert("mx.example.com")
    leaf_der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    ca_der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
    return leaf_der, ca_der


def tls(chain: tuple[bytes, bytes]) -> TLSInfo:
    return TLSInfo("TLSv1.3", "x", None, chain, None)


def test_tlsa_selectors_and_matching_types(chain: tuple[bytes, bytes]) -> None:
    leaf, _ = chain
    spki = certs.spki(certs.load(leaf))
    assert tlsa_matches(TLSARecord(3, 0, 0, leaf), leaf)
    assert tlsa_matches(TLSARecord(3, 1, 1, hashlib.sha256(spki).digest()), leaf)
    assert tlsa_matches(TLSARecord(3, 1, 2, hashlib.sha512(spki).digest()), leaf)
    assert tlsa_matches(TLSARecord(3, 0, 1, hashlib.sha256(leaf).digest()), leaf)
    assert not tlsa_matches(TLSARecord(3, 1, 1, hashlib.sha256(leaf).digest()), leaf)


def test_dane_ta_matches_the_issuer_in_the_chain(chain: tuple[bytes, bytes]) -> None:
    _, ca = chain
    ta = TLSARecord(2, 0, 1, hashlib.sha256(ca).digest())
    assert dane_findings("mx.example.com.", [ta], tls(chain)) == []
    # the same digest as DANE-EE must match the leaf, which it does not
    ee = TLSARecord(3, 0, 1, hashlib.sha256(ca).digest())
    [finding] = dane_findings("mx.example.com.", [ee], tls(chain))
    assert finding.code == "dane-mismatch" and finding.severity is Severity.FAIL


def test_only_pkix_usages_are_unusable(chain: tuple[bytes, bytes]) -> None:
    leaf, _ = chain
    pkix = TLSARecord(1, 0, 1, hashlib.sha256(leaf).digest())
    [finding] = dane_findings("mx.example.com.", [pkix], tls(chain))
    assert finding.code == "dane-unusable" and finding.severity is Severity.WARN


def test_a_leaf_alone_cannot_judge_dane_ta(chain: tuple[bytes, bytes]) -> None:
    leaf, ca = chain
    ta = TLSARecord(2, 0, 1, hashlib.sha256(ca).digest())
    partial = TLSInfo("TLSv1.3", "x", None, (leaf,), None, chain_complete=False)
    [finding] = dane_findings("mx.example.com.", [ta], partial)
    assert finding.code == "dane-unjudged" and finding.severity is Severity.WARN


def test_unauthenticated_tlsa_says_dane_could_not_be_judged(chain: tuple[bytes, bytes]) -> None:
    wrong = TLSARecord(3, 1, 1, b"\0" * 32)
    answer = TLSAAnswer((wrong,), False, "the resolver did not mark the answer validated")
    [finding] = dane_findings("mx.example.com.", answer, tls(chain))
    assert finding.code == "dane-unauthenticated" and finding.severity is Severity.WARN
    assert "DANE could not be judged: the resolver did not mark" in finding.message


class _NoChain:
    """An SSL object of a Python without any chain API: only the leaf."""

    def __init__(self, leaf: bytes) -> None:
        self.leaf = leaf

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self.leaf


def test_peer_chain_without_an_api_is_the_leaf_marked_incomplete(
    chain: tuple[bytes, bytes],
) -> None:
    import sys

    if sys.version_info >= (3, 13):
        pytest.skip("Python 3.13 has the public API")
    leaf, _ = chain
    got = certs.peer_chain(_NoChain(leaf))  # type: ignore[arg-type]
    assert got == certs.PeerChain((leaf,), False)


def test_a_certificate_is_parsed_once_however_often_it_is_presented(
    chain: tuple[bytes, bytes],
) -> None:
    """Sessions present their chains as new bytes objects; equal bytes give the same
    parsed certificate, and the cache stays bounded."""
    leaf, _ = chain
    assert certs.load(bytes(leaf)) is certs.load(bytes(leaf))
    assert certs.not_after(bytes(leaf)) == certs.load(leaf).not_valid_after_utc
    with pytest.raises(certs.CertError):
        certs.load(b"not a certificate")
    assert certs.load.cache_info().maxsize == 256
