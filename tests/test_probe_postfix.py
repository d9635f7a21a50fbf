"""End to end: ``check`` against a real Postfix (Debian package) on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from mxflip.config import Config, DomainConfig, ProbeConfig
from mxflip.findings import Severity
from mxflip.hostport import HostPort
from mxflip.probe import DomainReadiness, Verdict
from mxflip.readiness import check_domains
from mxflip.records import MX
from tests.support.bind import BindServer, zone_text
from tests.support.postfix import PostfixServer, instance_dir
from tests.support.smtplab import make_certs

pytestmark = pytest.mark.real_server

DOMAIN = "pf.test"
HOST = "mx.pf.test"


def running_postfix(folder: Path, **kw: object) -> Iterator[tuple[PostfixServer, Path]]:
    """A private Postfix for HOST with a certificate from a fresh lab CA (and that CA)."""
    certs = make_certs(folder)
    leaf = certs.ca.issue_cert(HOST)
    cert_file, key_file = folder / "mx.crt", folder / "mx.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    server = PostfixServer(instance_dir(), DOMAIN, HOST, cert_file, key_file, **kw)  # type: ignore[arg-type]
    try:
        yield server.start(), certs.ca_file
    finally:
        server.remove()


@pytest.fixture(scope="module")
def postfix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostfixServer, Path]]:
    extra = tuple(f"d{i}.{DOMAIN}" for i in range(11))
    yield from running_postfix(tmp_path_factory.mktemp("postfix"), extra_domains=extra)


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    records = "@ IN MX 10 mx\nmx IN A 127.0.0.1\n"
    server = BindServer(
        tmp_path_factory.mktemp("postfix-dns"),
        {f"{DOMAIN}.": zone_text(f"{DOMAIN}.", records)},
        allow_update=False,
    ).start()
    yield server
    server.stop()


def run_many(
    postfix: tuple[PostfixServer, Path],
    dns: BindServer,
    names: list[str],
    recipient: str | None = None,
) -> list[DomainReadiness]:
    server, ca_file = postfix
    probe = ProbeConfig(
        helo="probe.lab.test",
        mail_from="probe@lab.test",
        timeout=10,
        connect={f"{HOST}.": (HostPort("127.0.0.1", server.port),)},
        resolvers=(HostPort("127.0.0.1", dns.port),),
        ca_file=ca_file,
        check_catch_all=True,
        relay_test_recipient="probe@relay-check.invalid",
    )
    domains = [
        DomainConfig(
            name=f"{name}.",
            provider="lab",
            zone=f"{DOMAIN}.",
            primary=frozenset({MX(10, "mx.primary.invalid")}),
            backup=frozenset({MX(10, HOST)}),
            probe_recipient=recipient,
        )
        for name in names
    ]
    config = Config(path=None, providers={}, domains={d.name: d for d in domains}, probe=probe)
    return asyncio.run(check_domains(config, domains, "backup"))


def run(
    postfix: tuple[PostfixServer, Path], dns: BindServer, recipient: str | None = None
) -> DomainReadiness:
    [result] = run_many(postfix, dns, [DOMAIN], recipient)
    return result


def test_postfix_is_ready(postfix: tuple[PostfixServer, Path], dns: BindServer) -> None:
    result = run(postfix, dns)
    assert result.verdict is Verdict.READY, [
        f for h in result.hosts for a in h.addresses for f in a.findings
    ]
    [host] = result.hosts
    [address] = host.addresses
    steps = {s.name: s.code for s in address.steps}
    assert steps == {
        "connect": None,
        "banner": 220,
        "ehlo": 250,
        "starttls": 220,
        "tls": None,
        "ehlo-tls": 250,
        "mail": 250,
        "rcpt": 250,
        "rcpt-catch-all": 550,  # postfix knows its users: no catch-all
        "rcpt-relay": 454,  # and refuses to relay (deferred, as compatibility level 3.6 does)
        "rset": 250,
        "quit": 221,
    }
    assert address.tls is not None and address.tls.verified
    assert {"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"} <= address.extensions
    # the relay refusal is logged with the envelope the probe used
    assert postfix[0].log_has("helo=<probe.lab.test>", "from=<probe@lab.test>")


def test_postfix_rejects_an_unknown_probe_recipient(
    postfix: tuple[PostfixServer, Path], dns: BindServer
) -> None:
    result = run(postfix, dns, recipient=f"nobody@{DOMAIN}")
    assert result.verdict is Verdict.NOT_READY
    [finding] = [
        f for a in result.hosts[0].addresses for f in a.findings if f.severity is Severity.FAIL
    ]
    assert finding.code == "rcpt-rejected"
    assert finding.message.startswith(f"RCPT TO:<nobody@{DOMAIN}> answered 550 5.1.1")
    assert "User unknown in local recipient table" in finding.message


def test_many_domains_with_extra_checks_stay_under_postfix_error_limits(
    postfix: tuple[PostfixServer, Path], dns: BindServer
) -> None:
    # 12 domains, each costing Postfix two rejected RCPTs (catch-all and relay checks):
    # in one session Postfix would slow down after 10 errors and hang up after 20.
    names = [DOMAIN, *(f"d{i}.{DOMAIN}" for i in range(11))]
    results = run_many(postfix, dns, names)
    assert [r.verdict for r in results] == [Verdict.READY] * len(names)
    log = postfix[0].log_file.read_text()
    assert "too many errors" not in log


@pytest.fixture(scope="module")
def strict_postfix(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PostfixServer, Path]]:
    """Postfix checking the sender's domain in DNS (reject_unknown_sender_domain). Its
    resolver is the system's, which knows nothing of the probe's lab.test; one quick try."""
    extra = (
        "smtpd_sender_restrictions = reject_unknown_sender_domain\n"
        "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C "
        "RES_OPTIONS=timeout:1 attempts:1\n"
    )
    yield from running_postfix(tmp_path_factory.mktemp("postfix-strict"), main_cf_extra=extra)


def test_postfix_sender_domain_refusal_is_not_called_greylisting(
    strict_postfix: tuple[PostfixServer, Path], dns: BindServer
) -> None:
    result = run(strict_postfix, dns)
    findings = [f for a in result.hosts[0].addresses for f in a.findings]
    [finding] = [f for f in findings if f.code.startswith("rcpt-")]
    assert "4.1.8" in finding.message and "Sender address rejected" in finding.message
    assert "greylisting" not in finding.message
    assert "rejects the probe's sender domain lab.test, not the recipient" in finding.message
