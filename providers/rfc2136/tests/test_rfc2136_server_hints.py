"""What Knot DNS and PowerDNS answer when TSIG goes wrong, and the hint each answer gets."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from mxflip import Change, ProviderAuthError, RRset
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.knot import KnotServer
from tests.support.pdns import PowerDNSServer


def provider(server: str, key_file: Path) -> RFC2136Provider:
    return RFC2136Provider.from_settings(
        "lab", RFC2136Settings(server=server, tsig_key_file=key_file, timeout=2.0)
    )


def attempt_update(p: RFC2136Provider) -> ProviderAuthError:
    rrset = RRset.of(f"h-{os.urandom(4).hex()}.contract.test.", 300, ["10 mx.example.net."])
    with pytest.raises(ProviderAuthError) as info:
        p.apply("contract.test.", [Change(rrset.name, None, rrset)])
    return info.value


@pytest.mark.parametrize("wrong", ["secret", "name"])
def test_powerdns_unsigned_notauth_is_named_with_its_hint(
    pdns: PowerDNSServer, tmp_path: Path, wrong: str
) -> None:
    secret = base64.b64encode(os.urandom(32)).decode()
    key = tmp_path / "wrong.key"
    key.write_text(
        pdns.key_text(secret=secret) if wrong == "secret" else pdns.key_text(name="not-there")
    )
    error = attempt_update(provider(pdns.address, key))
    text = f"{error} {error.hint}"
    assert "answered the TSIG-signed UPDATE of zone contract.test. with an unsigned reply" in text
    assert "PowerDNS answers this way (NOTAUTH, unsigned)" in text
    assert "pdnsutil list-tsig-keys" in text
    assert secret not in text and pdns.secret not in text
    # and nothing was written
    good = provider(pdns.address, pdns.key_file)
    assert all(v is None for v in good.read("contract.test.", ["h.contract.test."]).values())


def test_knot_badkey_on_acl_denial_mentions_the_acl(knot: KnotServer) -> None:
    error = attempt_update(provider(knot.address, knot.extra_key_file))
    assert f"answered BADKEY for TSIG key '{knot.extra_key}'" in str(error)
    assert error.hint is not None and "Knot DNS also answers BADKEY" in error.hint
    assert "acl" in error.hint
    assert knot.extra_secret not in f"{error} {error.hint}"


def test_knot_wrong_secret_is_a_signature_error(knot: KnotServer, tmp_path: Path) -> None:
    secret = base64.b64encode(os.urandom(32)).decode()
    key = tmp_path / "wrong.key"
    key.write_text(f'key "{knot.key_name}" {{ algorithm {knot.algorithm}; secret "{secret}"; }};\n')
    error = attempt_update(provider(knot.address, key))
    assert "rejected the TSIG signature" in str(error)
    assert error.hint is not None and "differs from the server's copy" in error.hint
