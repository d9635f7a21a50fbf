"""DANE verdicts compared with OpenSSL's (what Postfix uses): the same servers, the same
TLSA records, ``openssl s_client -dane_tlsa_domain … -dane_tlsa_rrdata …`` with
``-dane_ee_no_namechecks`` (the flag Postfix sets) as the reference.

RFC 7672 §3.1: DANE-EE(3) matches the leaf and ignores names and dates; DANE-TA(2)
matches a certificate above the leaf, the chain up to it must verify and the leaf must
name the host.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from mxflip import certs
from mxflip.mailpolicy import dane_findings
from mxflip.net.lookup import TLSARecord
from mxflip.net.smtp import SMTPSettings, TLSInfo
from mxflip.probe import Prober
from tests.support.required import find_binary, server_unavailable
from tests.support.smtplab import Handler, Lab, lab  # noqa: F401  (lab is a fixture)

pytestmark = pytest.mark.real_server

HOST = "mx.dane.test"


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


@dataclass
class Server:
    port: int
    chain: list[bytes]  # DER as sent, leaf first


def serve(mail: Lab, folder: Path, leaf: trustme.LeafCert, extra: list[bytes]) -> Server:
    """An SMTP server presenting ``leaf``'s chain plus ``extra`` PEM certificates."""
    folder.mkdir(parents=True, exist_ok=True)
    pems = [blob.bytes() for blob in leaf.cert_chain_pems] + extra
    chain_file = folder / "chain.pem"
    chain_file.write_bytes(b"".join(pems))
    key_file = folder / "key.pem"
    key_file.write_bytes(leaf.private_key_pem.bytes())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(chain_file), str(key_file))
    return Server(mail.smtp(Handler(), tls=ctx), [der(p) for p in pems])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def openssl_verdict(port: int, rrdata: str) -> tuple[bool, str]:
    openssl = find_binary("openssl")
    if openssl is None:
        server_unavailable("OpenSSL", "'openssl' is not installed", "apt-get install openssl")
    done = subprocess.run(
        [
            openssl,
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            f"127.0.0.1:{port}",
            "-dane_tlsa_domain",
            HOST,
            "-dane_tlsa_rrdata",
            rrdata,
            # as Postfix sets it (DANE_FLAG_NO_DANE_EE_NAMECHECKS, RFC 7672 §3.1.1)
            "-dane_ee_no_namechecks",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    match = re.search(r"Verify return code: (\d+) \(([^)]*)\)", done.stdout)
    assert match, done.stdout + done.stderr
    return match.group(1) == "0", match.group(2)


def mxflip_tls(port: int) -> TLSInfo:
    settings = SMTPSettings(helo="probe.dane.test", mail_from="probe@dane.test", timeout=10)
    session = asyncio.run(Prober(settings).session(HOST, "127.0.0.1", port, []))
    assert session.tls is not None and session.tls.chain_complete
    return session.tls


@dataclass
class World:
    root: trustme.CA
    root_der: bytes
    servers: dict[str, Server]


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # noqa: F811
    folder = tmp_path_factory.mktemp("dane")
    root = trustme.CA()
    root_pem = root.cert_pem.bytes()
    middle = root.create_child_ca()
    rogue = trustme.CA()
    now = dt.datetime.now(dt.UTC)
    servers = {
        "good": serve(lab, folder / "good", root.issue_cert(HOST), [root_pem]),
        "other-name": serve(lab, folder / "other", root.issue_cert("mx.other.test"), [root_pem]),
        "intermediate": serve(lab, folder / "mid", middle.issue_cert(HOST), [root_pem]),
        "rogue-leaf": serve(lab, folder / "rogue", rogue.issue_cert(HOST), [root_pem]),
        "expired": serve(
            lab,
            folder / "expired",
            root.issue_cert(
                HOST, not_before=now - dt.timedelta(days=90), not_after=now - dt.timedelta(days=1)
            ),
            [root_pem],
        ),
    }
    yield World(root, der(root_pem), servers)


CASES = [
    # (server, how to build the TLSA record, OpenSSL's and so mxflip's verdict)
    ("good", "2 0 1 root", True),
    ("good", "2 1 1 root", True),
    ("other-name", "2 0 1 root", False),  # OpenSSL: hostname mismatch
    ("good", "2 0 1 leaf", False),  # a TA is never the leaf: no matching TLSA records
    ("other-name", "3 1 1 leaf", True),  # DANE-EE ignores the name
    ("intermediate", "2 1 1 middle", True),
    ("intermediate", "2 0 1 root", True),
    ("rogue-leaf", "2 0 1 root", False),  # the chain does not lead to the anchor
    ("expired", "2 0 1 root", False),  # DANE-TA checks dates below the anchor
    ("expired", "3 0 1 leaf", True),  # DANE-EE does not
]


def rrdata(world: World, server: Server, spec: str) -> str:
    usage, selector, mtype, which = spec.split()
    cert = {"root": world.root_der, "leaf": server.chain[0], "middle": server.chain[1]}[which]
    data = cert if selector == "0" else certs.spki(certs.load(cert))
    return f"{usage} {selector} {mtype} {sha256(data)}"


@pytest.mark.parametrize(("server_name", "spec", "expected"), CASES)
def test_dane_verdict_agrees_with_openssl(
    world: World, server_name: str, spec: str, expected: bool
) -> None:
    server = world.servers[server_name]
    record_text = rrdata(world, server, spec)
    ok, reason = openssl_verdict(server.port, record_text)
    assert ok is expected, f"OpenSSL said {reason}"
    usage, selector, mtype, data = record_text.split()
    record = TLSARecord(int(usage), int(selector), int(mtype), bytes.fromhex(data))
    findings = dane_findings(HOST + ".", [record], mxflip_tls(server.port))
    assert (findings == []) is expected, (reason, findings)
    if not expected:
        [finding] = findings
        assert finding.code == "dane-mismatch"
