"""RFC 2136 failure paths against a real BIND9: each becomes an mxflip error with a hint,
and the TSIG secret never shows."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mxflip import Change, ProviderAuthError, ProviderError, RRset, parse_hostport
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from mxflip_rfc2136._client import RFC2136Client
from mxflip_rfc2136.keyfile import KeyFileError, read_key_file
from tests.support.bind import BindServer, zone_text
from tests.support.ports import free_port

pytestmark = pytest.mark.real_server


def provider_with_key(server: str, key_file: Path, timeout: float = 2.0) -> RFC2136Provider:
    return RFC2136Provider.from_settings(
        "lab", RFC2136Settings(server=server, tsig_key_file=key_file, timeout=timeout)
    )


def new_rrset(label: str) -> RRset:
    return RRset.of(f"{label}-{os.urandom(4).hex()}.contract.test.", 300, ["10 mx.example.net."])


def test_wrong_secret_is_an_auth_error_with_hint(bind: BindServer, tmp_path: Path) -> None:
    wrong = base64.b64encode(os.urandom(32)).decode()
    key = tmp_path / "wrong.key"
    key.write_text(bind.key_text(secret=wrong))
    provider = provider_with_key(bind.address, key)
    rrset = new_rrset("wrongsecret")
    with pytest.raises(ProviderAuthError) as info:
        provider.apply("contract.test.", [Change(rrset.name, None, rrset)])
    message = str(info.value)
    assert "rejected the TSIG signature of key 'mxflip-test'" in message
    assert "differs from the server's copy" in message
    assert wrong not in message and bind.secret not in message


def test_unknown_key_name_is_an_auth_error(bind: BindServer, tmp_path: Path) -> None:
    key = tmp_path / "other.key"
    key.write_text(bind.key_text(name="not-on-server"))
    provider = provider_with_key(bind.address, key)
    with pytest.raises(ProviderAuthError, match="answered BADKEY for TSIG key 'not-on-server'"):
        provider.read("contract.test.", ["x.contract.test."])


@pytest.fixture(scope="module")
def readonly_bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(
        tmp_path_factory.mktemp("readonly-bind"),
        {"readonly.test.": zone_text("readonly.test.")},
        allow_update=False,
    ).start()
    yield server
    server.stop()


def test_update_refused_names_the_policy(readonly_bind: BindServer) -> None:
    provider = provider_with_key(readonly_bind.address, readonly_bind.key_file)
    rrset = RRset.of("a.readonly.test.", 300, ["10 mx.example.net."])
    with pytest.raises(ProviderAuthError) as info:
        provider.apply("readonly.test.", [Change(rrset.name, None, rrset)])
    assert "refused the UPDATE of zone readonly.test." in str(info.value)
    assert "update-policy" in str(info.value)
    assert provider.read("readonly.test.", [rrset.name]) == {rrset.name: None}


def test_zone_the_server_does_not_serve(bind: BindServer) -> None:
    provider = provider_with_key(bind.address, bind.key_file)
    with pytest.raises(ProviderError, match="answered REFUSED"):
        provider.read("nosuch.test.", ["a.nosuch.test."])
    rrset = RRset.of("a.nosuch.test.", 300, ["10 mx.example.net."])
    with pytest.raises(ProviderError, match=r"not authoritative for zone nosuch\.test\."):
        provider.apply("nosuch.test.", [Change(rrset.name, None, rrset)])


def test_dead_server_times_out_with_hint_and_bounded_retries(bind: BindServer) -> None:
    slept: list[float] = []
    client = RFC2136Client(
        parse_hostport(f"127.0.0.1:{free_port()}", 53),
        read_key_file(bind.key_file),
        timeout=0.2,
        attempts=3,
        sleep=slept.append,
    )
    provider = RFC2136Provider("dead", client)
    rrset = RRset.of("x.contract.test.", 300, ["10 mx.example.net."])
    with pytest.raises(ProviderError) as info:
        provider.apply("contract.test.", [Change(rrset.name, None, rrset)])
    assert "did not answer within 0.2 s" in str(info.value) or "refused" in str(info.value)
    assert "check that the server runs" in str(info.value)
    assert len(slept) == 2  # three attempts, two waits, then the error
    # Reads go through mxflip's DNS client, which retries timeouts itself: the same error,
    # and no further waits on top.
    with pytest.raises(ProviderError) as info:
        provider.read("contract.test.", ["x.contract.test."])
    assert "did not answer within 0.2 s" in str(info.value) or "refused" in str(info.value)
    assert "check that the server runs" in str(info.value)
    assert len(slept) == 2


def test_secret_never_in_repr(bind: BindServer) -> None:
    provider = provider_with_key(bind.address, bind.key_file)
    settings = RFC2136Settings(server=bind.address, tsig_key_file=bind.key_file)
    key = read_key_file(bind.key_file)
    for text in (repr(provider), repr(settings), repr(key), str(settings)):
        assert bind.secret not in text


def test_key_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text('key "k" { algorithm hmac-foo; secret "c2VjcmV0"; };')
    with pytest.raises(KeyFileError, match="unsupported algorithm 'hmac-foo'"):
        read_key_file(bad)
    bad.write_text('key "k" { algorithm hmac-sha256; };')
    with pytest.raises(KeyFileError, match="needs both 'algorithm' and 'secret'"):
        read_key_file(bad)
    bad.write_text("# nothing here\n")
    with pytest.raises(KeyFileError, match="holds no key"):
        read_key_file(bad)


def test_key_file_with_comments_and_named_choice(tmp_path: Path) -> None:
    path = tmp_path / "two.key"
    path.write_text(
        "// generated by tsig-keygen\n"
        'key "one" { algorithm hmac-sha256; secret "b25l"; };\n'
        "/* second key */\n"
        'key "two." {\n  algorithm hmac-sha512;\n  secret "dHdv";\n};\n'
    )
    assert read_key_file(path, "two").algorithm == "hmac-sha512"
    with pytest.raises(KeyFileError, match=r"no key named 'three' \(it has: one, two.\)"):
        read_key_file(path, "three")


def test_large_rrset_is_read_over_tcp_after_truncation(bind: BindServer) -> None:
    """40 MX records do not fit a 512-byte UDP answer: the read must fall back to TCP."""
    provider = provider_with_key(bind.address, bind.key_file)
    rrset = RRset.of(
        f"big-{os.urandom(4).hex()}.contract.test.",
        300,
        [f"{i} mx{i}.a-rather-long-mail-host-name.example.net." for i in range(40)],
    )
    provider.apply("contract.test.", [Change(rrset.name, None, rrset)])
    assert provider.read("contract.test.", [rrset.name]) == {rrset.name: rrset}


def test_nameservers_are_the_zone_ns_records(bind: BindServer) -> None:
    provider = provider_with_key(bind.address, bind.key_file)
    assert provider.nameservers("contract.test.") == ["ns1.contract.test"]
