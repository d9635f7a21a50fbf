"""Readiness against real loopback SMTP servers: one scenario per way a node goes wrong.

Each test builds a one-domain config whose ``backup`` set is the scenario's host, connects
it (``[probe] connect``) to a loopback server, resolves through a real BIND9 and asserts the
verdict and the finding. Timeouts are small where a server must be waited out.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mxflip.config import Config, DomainConfig, ProbeConfig
from mxflip.findings import Severity
from mxflip.hostport import HostPort
from mxflip.probe import DomainReadiness, HostResult, Verdict
from mxflip.readiness import check_domains
from mxflip.records import MX, normalize_name
from tests.support.bind import BindServer
from tests.support.ports import free_port
from tests.support.smtplab import (  # noqa: F401  (lab is a fixture)
    Certs,
    Handler,
    Lab,
    banner_server,
    garbage,
    lab,
    make_certs,
    reset_mid_ehlo,
    scripted,
    silent_after_banner,
    start_validated_lab_dns,
    tarpit,
)
from tests.support.unbound import UnboundServer

pytestmark = pytest.mark.real_server

#: Every name the "good" certificate covers (the MTA-STS tests reuse the good server).
GOOD_NAMES = [
    "mx.good.lab.test",
    "mx.pair.lab.test",
    "mx.slow.lab.test",
    "mx1.enf.lab.test",
    "mx2.enf.lab.test",
    "mx.wild.lab.test",
    "a.b.wild.lab.test",
    "mx.tst.lab.test",
    "mx.elsewhere.lab.test",
]


@dataclass
class Env:
    lab: Lab
    certs: Certs
    dns: BindServer
    validator: UnboundServer
    good_tls: object
    dane_tls: object
    https_port: int
    policies: dict[str, str]

    def good(self, handler: Handler | None = None) -> int:
        return self.lab.smtp(handler or Handler(), tls=self.good_tls)  # type: ignore[arg-type]


def zone_records(dane_spki_hex: str) -> str:
    return f"""
* IN A 127.0.0.1
mx.cname IN CNAME mx.good
mx.noaddr IN TXT "no address here"
mx.dane IN A 127.0.0.1
_25._tcp.mx.dane IN TLSA 3 1 1 {dane_spki_hex}
mx.danebad IN A 127.0.0.1
_25._tcp.mx.danebad IN TLSA 3 1 1 {"00" * 32}
dropdane IN MX 10 mx.dane
_mta-sts.enf IN TXT "v=STSv1; id=20261123a"
mx1.enf IN A 127.0.0.1
mta-sts.enf IN A 127.0.0.1
mx2.enf IN A 127.0.0.1
_mta-sts.wild IN TXT "v=STSv1; id=1"
mx.wild IN A 127.0.0.1
a.b.wild IN A 127.0.0.1
_mta-sts.tst IN TXT "v=STSv1; id=7"
mx.tst IN A 127.0.0.1
_mta-sts.broken IN TXT "v=STSv1; id=9"
mx.broken IN A 127.0.0.1
big IN TXT {" ".join(f'"{c * 200}"' for c in "abcdefghij")}
"""


POLICIES = {
    "/enf.lab.test/.well-known/mta-sts.txt": (
        "version: STSv1\nmode: enforce\nmx: mx1.enf.lab.test\nmax_age: 86400\n"
    ),
    "/wild.lab.test/.well-known/mta-sts.txt": (
        "version: STSv1\r\nmode: enforce\r\nmx: *.wild.lab.test\r\nmax_age: 86400\r\n"
    ),
    "/tst.lab.test/.well-known/mta-sts.txt": (
        "version: STSv1\nmode: testing\nmx: mx.tst.lab.test\nmax_age: 600\n"
    ),
}


@pytest.fixture(scope="module")
def env(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:  # noqa: F811
    folder = tmp_path_factory.mktemp("probe-lab")
    certs = make_certs(folder)
    dane_ctx, _, dane_spki = certs.server_with_spki("mx.dane.lab.test", "mx.danebad.lab.test")
    dns, validator = start_validated_lab_dns(folder, zone_records(sha256_hex(dane_spki)))
    https = lab.https(certs.server("127.0.0.1", "mta-sts.enf.lab.test"), POLICIES)
    yield Env(lab, certs, dns, validator, certs.server(*GOOD_NAMES), dane_ctx, https, POLICIES)
    validator.stop()
    dns.stop()


def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


async def no_sleep(seconds: float) -> None:
    SLEEPS.append(seconds)


SLEEPS: list[float] = []


def config_for(
    env: Env,
    hosts: Mapping[str, int | Sequence[int]],
    *,
    domain: str = "good.lab.test",
    recipient: str | None = None,
    **probe: object,
) -> Config:
    connect = {
        normalize_name(h): tuple(
            HostPort("127.0.0.1", p) for p in ([ports] if isinstance(ports, int) else ports)
        )
        for h, ports in hosts.items()
    }
    settings = ProbeConfig(
        helo="probe.lab.test",
        mail_from="probe@lab.test",
        timeout=5.0,
        connect=connect,
        resolvers=(HostPort("127.0.0.1", env.dns.port),),
        ca_file=env.certs.ca_file,
        mta_sts_url=f"https://127.0.0.1:{env.https_port}/{{domain}}/.well-known/mta-sts.txt",
        rcpt_retry_wait=1.0,
    )
    settings = replace(settings, **probe)  # type: ignore[arg-type]
    d = DomainConfig(
        name=normalize_name(domain),
        provider="lab",
        zone="lab.test.",
        primary=frozenset({MX(10, "mx.primary.lab.test")}),
        backup=frozenset(MX(10 * (i + 1), h) for i, h in enumerate(hosts)),
        probe_recipient=recipient,
    )
    return Config(path=None, providers={}, domains={d.name: d}, probe=settings)


def check(config: Config, profile: str = "backup", **kw: object) -> DomainReadiness:
    [result] = asyncio.run(
        check_domains(config, list(config.domains.values()), profile, sleep=no_sleep, **kw)  # type: ignore[arg-type]
    )
    return result


def codes(result: DomainReadiness | HostResult, severity: Severity | None = None) -> set[str]:
    """Every finding code at every level below ``result``."""
    found = set()
    hosts = result.hosts if isinstance(result, DomainReadiness) else (result,)
    level = list(result.findings) if isinstance(result, DomainReadiness) else []
    for h in hosts:
        level.extend(h.findings)
        for a in h.addresses:
            level.extend(a.findings)
    for f in level:
        if severity is None or f.severity == severity:
            found.add(f.code)
    return found


def one_host(result: DomainReadiness) -> HostResult:
    assert len(result.hosts) == 1
    return result.hosts[0]


# ---------------------------------------------------------------------------- good


def test_good_server_is_ready_with_every_step_recorded(env: Env) -> None:
    handler = Handler()
    port = env.good(handler)
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.READY, codes(result)
    host = one_host(result)
    [address] = host.addresses
    assert address.address == f"127.0.0.1:{port}"
    assert [s.name for s in address.steps] == [
        "connect",
        "banner",
        "ehlo",
        "starttls",
        "tls",
        "ehlo-tls",
        "mail",
        "rcpt",
        "rset",
        "quit",
    ]
    assert all(s.ok for s in address.steps)
    assert [s.code for s in address.steps if s.name in ("banner", "rcpt", "quit")] == [
        220,
        250,
        221,
    ]
    assert address.tls is not None and address.tls.verified
    assert address.tls.version in ("TLSv1.2", "TLSv1.3")
    assert address.tls_days_left is not None and address.tls_days_left > 300
    assert address.findings == ()
    assert handler.seen == ["postmaster@good.lab.test"]
    assert not handler.data_seen


def test_probe_recipient_from_the_domain_config(env: Env) -> None:
    handler = Handler({"abuse@good.lab.test": "250 OK"})
    port = env.good(handler)
    result = check(config_for(env, {"mx.good.lab.test": port}, recipient="abuse@good.lab.test"))
    assert result.verdict is Verdict.READY
    assert handler.seen == ["abuse@good.lab.test"]


# ----------------------------------------------------------------------------- TLS


def test_no_starttls_warns_without_policy(env: Env) -> None:
    port = env.lab.smtp(Handler())
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    assert codes(result) == {"starttls-missing"}


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda c: c.server("mx.good.lab.test", ca=c.rogue), "tls-untrusted"),
        (lambda c: c.server("mx.other.lab.test"), "tls-name-mismatch"),
        (lambda c: c.expired("mx.good.lab.test"), "tls-expired"),
    ],
    ids=["untrusted-ca", "wrong-name", "expired"],
)
def test_bad_certificate_warns_and_the_probe_carries_on(env: Env, make: object, code: str) -> None:
    port = env.lab.smtp(Handler(), tls=make(env.certs))  # type: ignore[operator]
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    assert codes(result) == {code}
    [address] = one_host(result).addresses
    names = [s.name for s in address.steps]
    # verified attempt fails, an opportunistic one goes on to the envelope like a real MTA
    assert names[:5] == ["connect", "banner", "ehlo", "starttls", "tls"]
    assert "retry-starttls" in names and names[-4:] == ["mail", "rcpt", "rset", "quit"]
    assert address.tls is not None and not address.tls.verified


def test_certificate_expiring_soon_warns(env: Env) -> None:
    port = env.lab.smtp(Handler(), tls=env.certs.expiring("mx.good.lab.test", days=5))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    [finding] = one_host(result).addresses[0].findings
    assert (finding.code, finding.message) == (
        "cert-expiring",
        "the certificate expires in 5 days",
    )


# ------------------------------------------------------------------------ greeting


@pytest.mark.parametrize("code", [421, 554])
def test_rejecting_banner_fails_and_quits_politely(env: Env, code: int) -> None:
    port = env.lab.raw(banner_server(code))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.NOT_READY
    [address] = one_host(result).addresses
    assert codes(result) == {"banner-rejected"}
    assert [(s.name, s.code) for s in address.steps] == [
        ("connect", None),
        ("banner", code),
        ("quit", 221),
    ]


def test_tarpit_that_greets_after_the_timeout_fails(env: Env) -> None:
    port = env.lab.raw(tarpit(20.0))
    result = check(config_for(env, {"mx.good.lab.test": port}, timeout=0.3))
    assert result.verdict is Verdict.NOT_READY
    [finding] = one_host(result).addresses[0].findings
    assert finding.code == "banner-timeout"
    assert finding.message == "no banner reply within 0.3 s"


def test_garbage_instead_of_smtp_fails(env: Env) -> None:
    port = env.lab.raw(garbage)
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.NOT_READY
    [finding] = one_host(result).addresses[0].findings
    assert finding.code == "protocol-error"
    assert "SSH-2.0" in finding.message


def test_reset_mid_ehlo_fails(env: Env) -> None:
    port = env.lab.raw(reset_mid_ehlo)
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.NOT_READY
    [address] = one_host(result).addresses
    assert codes(result) == {"connection-lost"}
    assert address.steps[-1].name == "ehlo" and not address.steps[-1].ok


def test_server_that_never_answers_fails(env: Env) -> None:
    port = env.lab.raw(silent_after_banner)
    result = check(config_for(env, {"mx.good.lab.test": port}, timeout=0.3))
    assert result.verdict is Verdict.NOT_READY
    assert codes(result) == {"ehlo-timeout"}


def test_connection_refused_fails(env: Env) -> None:
    port = free_port()  # nothing listens there
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.NOT_READY
    assert codes(result) == {"connect-refused"}


def test_slow_banner_warns(env: Env) -> None:
    port = env.good()
    ticks = itertools.count()
    # each timer reading is 11 s after the last: every step looks slow, nothing waits
    result = check(config_for(env, {"mx.good.lab.test": port}), timer=lambda: next(ticks) * 11.0)
    assert result.verdict is Verdict.DEGRADED
    messages = [f.message for f in one_host(result).addresses[0].findings]
    assert "banner took 11.0 s (over 10 s)" in messages
    assert codes(result) == {"slow-step"}


# ------------------------------------------------------------------------ envelope


def test_rcpt_550_fails(env: Env) -> None:
    port = env.good(Handler({"postmaster@good.lab.test": "550 5.1.1 User unknown"}))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.NOT_READY
    [finding] = one_host(result).addresses[0].findings
    assert finding.code == "rcpt-rejected"
    assert finding.message == ("RCPT TO:<postmaster@good.lab.test> answered 550 5.1.1 User unknown")


def test_mail_from_5xx_fails(env: Env) -> None:
    port = env.lab.raw(scripted({"MAIL": "553 5.7.1 Sender rejected"}))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.NOT_READY
    assert "mail-rejected" in codes(result)


def test_rcpt_450_after_one_polite_retry_warns(env: Env) -> None:
    SLEEPS.clear()
    handler = Handler(deferrals=99)
    port = env.good(handler)
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    assert codes(result) == {"rcpt-deferred"}
    assert len(handler.seen) == 2  # asked once, retried once
    assert len(SLEEPS) == 1 and 0 <= SLEEPS[0] <= 1.0  # one injected, bounded pause
    names = [s.name for s in one_host(result).addresses[0].steps]
    assert names[-7:] == ["mail", "rcpt", "rset", "mail", "rcpt", "rset", "quit"]


def test_sender_domain_rejection_is_not_called_greylisting(env: Env) -> None:
    """Postfix's reject_unknown_sender_domain, word for word."""
    reply = "450 4.1.8 <probe@lab.test>: Sender address rejected: Domain not found"
    port = env.good(Handler({"postmaster@good.lab.test": reply}))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    [(_, finding)] = result.located_findings()
    assert finding.code == "rcpt-deferred"
    assert "greylisting" not in finding.message
    assert "rejects the probe's sender domain lab.test, not the recipient" in finding.message
    assert "set [probe] mail_from" in finding.message


def test_greylisting_that_lets_the_retry_in_is_ready(env: Env) -> None:
    port = env.good(Handler(deferrals=1))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.READY


def test_catch_all_warns(env: Env) -> None:
    handler = Handler({"*": "250 2.1.5 OK"})
    port = env.good(handler)
    result = check(config_for(env, {"mx.good.lab.test": port}, check_catch_all=True))
    assert result.verdict is Verdict.DEGRADED
    assert codes(result) == {"catch-all"}
    assert handler.seen[1].startswith("mxflip-nonexistent-")


def test_no_catch_all_is_ready_with_the_check_on(env: Env) -> None:
    port = env.good()
    result = check(config_for(env, {"mx.good.lab.test": port}, check_catch_all=True))
    assert result.verdict is Verdict.READY
    steps = {s.name: s.code for s in one_host(result).addresses[0].steps}
    assert steps["rcpt-catch-all"] == 550


def test_open_relay_fails(env: Env) -> None:
    port = env.good(Handler(open_relay=True))
    config = config_for(
        env, {"mx.good.lab.test": port}, relay_test_recipient="probe@relay-check.invalid"
    )
    result = check(config)
    assert result.verdict is Verdict.NOT_READY
    assert codes(result) == {"open-relay"}


def test_closed_relay_is_ready(env: Env) -> None:
    port = env.good()
    config = config_for(
        env, {"mx.good.lab.test": port}, relay_test_recipient="probe@relay-check.invalid"
    )
    assert check(config).verdict is Verdict.READY


def test_quit_not_221_warns(env: Env) -> None:
    port = env.lab.raw(scripted({"QUIT": "500 5.5.1 what"}))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    assert codes(result) == {"starttls-missing", "quit-not-221"}


# ------------------------------------------------------------------- names and nodes


def test_cname_target_fails(env: Env) -> None:
    port = env.good()
    result = check(config_for(env, {"mx.cname.lab.test": port}))
    assert result.verdict is Verdict.NOT_READY
    host = one_host(result)
    assert host.addresses == ()
    [finding] = host.findings
    assert finding.code == "cname-target"
    assert finding.message.startswith("mx.cname.lab.test is a CNAME to mx.good.lab.test")


def test_host_without_address_fails(env: Env) -> None:
    result = check(config_for(env, {"mx.noaddr.lab.test": 25}))
    assert result.verdict is Verdict.NOT_READY
    [finding] = one_host(result).findings
    assert (finding.code, finding.message) == (
        "no-address",
        "mx.noaddr.lab.test has no A or AAAA records",
    )


def test_two_addresses_of_one_host_that_disagree_fail(env: Env) -> None:
    good = env.good()
    plain = env.lab.smtp(Handler())  # same software, STARTTLS forgotten on this node
    result = check(config_for(env, {"mx.pair.lab.test": [good, plain]}))
    host = one_host(result)
    assert [a.verdict for a in host.addresses] == [Verdict.READY, Verdict.DEGRADED]
    assert host.verdict is Verdict.NOT_READY
    assert {f.code for f in host.findings} == {"node-inconsistent"}
    messages = " ".join(f.message for f in host.findings)
    assert "the addresses of mx.pair.lab.test disagree on EHLO extensions" in messages
    assert "disagree on certificate" in messages


def test_two_agreeing_addresses_are_ready(env: Env) -> None:
    result = check(config_for(env, {"mx.pair.lab.test": [env.good(), env.good()]}))
    assert result.verdict is Verdict.READY
    assert len(one_host(result).addresses) == 2


def test_nodes_with_their_own_valid_certificates_agree(env: Env) -> None:
    """Per-node ACME keys: both certificates valid for the name, different fingerprints."""
    first = env.lab.smtp(Handler(), tls=env.certs.server("mx.pair.lab.test"))
    second = env.lab.smtp(Handler(), tls=env.certs.server("mx.pair.lab.test"))
    result = check(config_for(env, {"mx.pair.lab.test": [first, second]}))
    host = one_host(result)
    fingerprints = {a.tls.fingerprint for a in host.addresses if a.tls}
    assert len(fingerprints) == 2
    assert result.verdict is Verdict.READY and not host.findings


def test_nodes_that_disagree_on_certificate_validity_fail(env: Env) -> None:
    good = env.lab.smtp(Handler(), tls=env.certs.server("mx.pair.lab.test"))
    rogue = env.lab.smtp(Handler(), tls=env.certs.server("mx.pair.lab.test", ca=env.certs.rogue))
    host = one_host(check(config_for(env, {"mx.pair.lab.test": [good, rogue]})))
    assert host.verdict is Verdict.NOT_READY
    [finding] = host.findings
    assert finding.code == "node-inconsistent"
    assert "disagree on certificate" in finding.message and "not verified" in finding.message


def test_addresses_that_disagree_on_rcpt_fail(env: Env) -> None:
    good = env.good()
    bad = env.good(Handler({"postmaster@good.lab.test": "550 5.1.1 unknown"}))
    result = check(config_for(env, {"mx.pair.lab.test": [good, bad]}))
    host = one_host(result)
    assert any("disagree on RCPT result" in f.message for f in host.findings)


# --------------------------------------------------------------------------- DANE


def validated(env: Env) -> dict[str, object]:
    """Probe settings that resolve through the validating Unbound (answers carry AD)."""
    return {"resolvers": (HostPort("127.0.0.1", env.validator.port),)}


def test_dane_matching_certificate_is_ready(env: Env) -> None:
    port = env.lab.smtp(Handler(), tls=env.dane_tls)  # type: ignore[arg-type]
    config = config_for(env, {"mx.dane.lab.test": port}, **validated(env))
    assert check(config).verdict is Verdict.READY


def test_dane_mismatch_fails(env: Env) -> None:
    port = env.lab.smtp(Handler(), tls=env.dane_tls)  # type: ignore[arg-type]
    result = check(config_for(env, {"mx.danebad.lab.test": port}, **validated(env)))
    assert result.verdict is Verdict.NOT_READY
    assert codes(result) == {"dane-mismatch"}


def test_unauthenticated_tlsa_is_not_judged(env: Env) -> None:
    """The same mismatching TLSA record, asked of the authoritative server directly (no
    validating resolver, no AD bit): DANE senders would ignore it, so it cannot block."""
    port = env.lab.smtp(Handler(), tls=env.dane_tls)  # type: ignore[arg-type]
    result = check(config_for(env, {"mx.danebad.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    assert codes(result) == {"dane-unauthenticated"}
    [(_, finding)] = result.located_findings()
    assert "DANE could not be judged" in finding.message
    assert "did not mark the answer DNSSEC-validated (no AD bit)" in finding.message


def test_dane_without_starttls_fails(env: Env) -> None:
    port = env.lab.smtp(Handler())
    result = check(config_for(env, {"mx.dane.lab.test": port}, **validated(env)))
    assert result.verdict is Verdict.NOT_READY
    assert codes(result, Severity.FAIL) == {"starttls-missing"}


def test_switch_away_from_dane_warns(env: Env) -> None:
    # dropdane.lab.test is live on mx.dane (TLSA); its backup set has no TLSA
    config = config_for(
        env, {"mx.good.lab.test": env.good()}, domain="dropdane.lab.test", **validated(env)
    )
    result = check(config)
    assert result.verdict is Verdict.DEGRADED
    assert [f.code for f in result.findings] == ["dane-dropped"]


def test_live_profile_probes_what_dns_publishes(env: Env) -> None:
    port = env.lab.smtp(Handler(), tls=env.dane_tls)  # type: ignore[arg-type]
    config = config_for(
        env, {"mx.dane.lab.test": port}, domain="dropdane.lab.test", **validated(env)
    )
    result = check(config, "live")
    assert result.profile == "live"
    assert [h.host for h in result.hosts] == ["mx.dane.lab.test."]
    assert result.verdict is Verdict.READY


# -------------------------------------------------------------------- many domains


def test_domains_sharing_an_address_share_one_session(env: Env) -> None:
    handler = Handler()
    port = env.good(handler)
    base = config_for(env, {"mx.good.lab.test": port})
    [d] = base.domains.values()
    domains = {}
    for i in range(3):
        name = normalize_name(f"d{i}.lab.test")
        domains[name] = replace(d, name=name)
    config = replace(base, domains=domains)
    results = asyncio.run(check_domains(config, list(domains.values()), "backup", sleep=no_sleep))
    assert [r.verdict for r in results] == [Verdict.READY] * 3
    assert handler.seen == [f"postmaster@d{i}.lab.test" for i in range(3)]
    # each domain sees the shared greeting and its own envelope
    steps = [s.name for s in results[1].hosts[0].addresses[0].steps]
    assert steps.count("rcpt") == 1 and steps[-1] == "quit"


def test_unknown_profile_is_a_usage_error(env: Env, tmp_path: Path) -> None:
    from mxflip.errors import UsageError

    config = config_for(env, {"mx.good.lab.test": 25})
    with pytest.raises(UsageError, match="unknown profile 'spare'"):
        check(config, "spare")


# ------------------------------------------------------------------------ MTA-STS


def finding(result: DomainReadiness, code: str) -> str:
    [message] = [f.message for f in result.findings if f.code == code]
    return message


def test_mta_sts_enforce_with_a_host_missing_from_the_policy_fails(env: Env) -> None:
    port = env.good()
    config = config_for(
        env, {"mx1.enf.lab.test": port, "mx2.enf.lab.test": port}, domain="enf.lab.test"
    )
    result = check(config)
    assert result.mta_sts_mode == "enforce"
    assert result.verdict is Verdict.NOT_READY
    assert [(f.severity, f.code) for f in result.findings] == [(Severity.FAIL, "mta-sts-uncovered")]
    url = f"https://127.0.0.1:{env.https_port}/enf.lab.test/.well-known/mta-sts.txt"
    assert finding(result, "mta-sts-uncovered") == (
        "mx2.enf.lab.test is not matched by any mx: line of the MTA-STS policy "
        "(mode enforce; it lists mx1.enf.lab.test): add 'mx: mx2.enf.lab.test' or "
        f"'mx: *.enf.lab.test' to {url}, and change the id= in the _mta-sts.enf.lab.test "
        "TXT record so senders fetch it again; senders will refuse this host"
    )
    assert [h.verdict for h in result.hosts] == [Verdict.READY, Verdict.READY]


def test_mta_sts_policy_host_is_resolved_through_the_probe_resolvers(env: Env) -> None:
    """mta-sts.enf.lab.test exists only in the lab zone (the configured resolver); the
    system resolver has never heard of it."""
    url = f"https://mta-sts.{{domain}}:{env.https_port}/{{domain}}/.well-known/mta-sts.txt"
    config = config_for(
        env, {"mx2.enf.lab.test": env.good()}, domain="enf.lab.test", mta_sts_url=url
    )
    result = check(config)
    assert result.mta_sts_mode == "enforce"
    assert [f.code for f in result.findings] == ["mta-sts-uncovered"]


def test_mta_sts_policy_host_follows_probe_connect(env: Env) -> None:
    """``connect`` sends the policy host to the lab's HTTPS port (the URL has none: 443)."""
    config = config_for(
        env,
        {
            "mx2.enf.lab.test": env.good(),
            "mta-sts.enf.lab.test": env.https_port,
        },
        domain="enf.lab.test",
        mta_sts_url="https://mta-sts.{domain}/{domain}/.well-known/mta-sts.txt",
    )
    # the connect entry for the policy host is not an MX host of the domain
    d = next(iter(config.domains.values()))
    d = replace(d, backup=frozenset(mx for mx in d.backup if "mta-sts" not in mx.host))
    config = replace(config, domains={d.name: d})
    result = check(config)
    assert result.mta_sts_mode == "enforce"
    assert [f.code for f in result.findings] == ["mta-sts-uncovered"]


def test_mta_sts_unresolvable_policy_host_is_a_warning(env: Env) -> None:
    url = "https://mta-sts.{domain}.nowhere.invalid/.well-known/mta-sts.txt"
    config = config_for(
        env, {"mx1.enf.lab.test": env.good()}, domain="enf.lab.test", mta_sts_url=url
    )
    result = check(config)
    assert result.mta_sts_mode is None
    [f] = result.findings
    assert f.code == "mta-sts-unavailable" and "cannot resolve mta-sts.enf.lab.test" in f.message


def test_mta_sts_wildcard_matches_exactly_one_label(env: Env) -> None:
    port = env.good()
    config = config_for(
        env, {"mx.wild.lab.test": port, "a.b.wild.lab.test": port}, domain="wild.lab.test"
    )
    result = check(config)
    assert result.verdict is Verdict.NOT_READY
    [uncovered] = [f for f in result.findings if f.code == "mta-sts-uncovered"]
    assert uncovered.message.startswith("a.b.wild.lab.test is not matched")


def test_mta_sts_enforce_makes_missing_starttls_a_failure(env: Env) -> None:
    port = env.lab.smtp(Handler())
    result = check(config_for(env, {"mx1.enf.lab.test": port}, domain="enf.lab.test"))
    assert result.verdict is Verdict.NOT_READY
    [f] = one_host(result).addresses[0].findings
    assert (f.severity, f.code) == (Severity.FAIL, "starttls-missing")
    assert f.message == (
        "STARTTLS is not offered; required by the domain's MTA-STS policy (mode enforce)"
    )


def test_mta_sts_enforce_makes_an_untrusted_certificate_a_failure(env: Env) -> None:
    port = env.lab.smtp(Handler(), tls=env.certs.server("mx1.enf.lab.test", ca=env.certs.rogue))
    result = check(config_for(env, {"mx1.enf.lab.test": port}, domain="enf.lab.test"))
    assert codes(result, Severity.FAIL) == {"tls-untrusted"}


def test_mta_sts_testing_mode_only_warns(env: Env) -> None:
    plain = env.lab.smtp(Handler())
    config = config_for(
        env, {"mx.tst.lab.test": plain, "mx.elsewhere.lab.test": env.good()}, domain="tst.lab.test"
    )
    result = check(config)
    assert result.mta_sts_mode == "testing"
    assert result.verdict is Verdict.DEGRADED
    assert codes(result, Severity.FAIL) == set()
    assert codes(result) == {"mta-sts-uncovered", "starttls-missing"}


def test_mta_sts_policy_that_cannot_be_fetched_warns(env: Env) -> None:
    result = check(config_for(env, {"mx.broken.lab.test": env.good()}, domain="broken.lab.test"))
    assert result.verdict is Verdict.DEGRADED
    message = finding(result, "mta-sts-unavailable")
    assert "announces a policy (id 9)" in message and "HTTP status" in message


def test_unreachable_resolver_is_a_finding_not_a_crash(env: Env) -> None:
    dead = HostPort("127.0.0.1", free_port())
    config = config_for(env, {"mx.good.lab.test": env.good()}, resolvers=(dead,), timeout=0.5)
    result = check(config)
    assert result.verdict is Verdict.NOT_READY
    [finding] = one_host(result).findings[-1:]
    assert finding.code == "resolve-error"
    assert finding.message == (
        f"A lookup of mx.good.lab.test timed out at {dead} "
        "(check that the resolvers in [probe] resolvers are reachable)"
    )


STARTTLS_EHLO = "250-mx.lab.test\r\n250-STARTTLS\r\n250 8BITMIME"


def test_ehlo_rejected_fails(env: Env) -> None:
    port = env.lab.raw(scripted({"EHLO": "550 5.7.1 go away"}))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.NOT_READY
    [finding] = one_host(result).addresses[0].findings
    assert (finding.code, finding.message) == ("ehlo-rejected", "EHLO answered 550 5.7.1 go away")


def test_starttls_refused_is_judged_like_no_starttls(env: Env) -> None:
    """Exim's 454 TLS currently unavailable: senders carry on in plaintext on the same
    connection, so the host is degraded, and the envelope is still asked."""
    port = env.lab.raw(scripted({"EHLO": STARTTLS_EHLO, "STARTTLS": "454 4.7.0 TLS not available"}))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    [address] = one_host(result).addresses
    [finding] = address.findings
    assert (finding.code, finding.message) == (
        "starttls-failed",
        "STARTTLS answered 454 4.7.0 TLS not available",
    )
    assert address.rcpt_code == 250
    assert [s.name for s in address.steps][-2:] == ["rset", "quit"]  # still polite


def test_broken_tls_after_starttls_falls_back_to_plaintext(env: Env) -> None:
    port = env.lab.raw(scripted({"EHLO": STARTTLS_EHLO, "STARTTLS": "220 2.0.0 go ahead"}))
    result = check(config_for(env, {"mx.good.lab.test": port}))
    assert result.verdict is Verdict.DEGRADED
    [address] = one_host(result).addresses
    [finding] = address.findings
    assert finding.code == "starttls-failed"
    assert finding.message.startswith("TLS handshake failed:")
    names = [s.name for s in address.steps]
    assert "plain-ehlo" in names and address.rcpt_code == 250


def test_broken_starttls_fails_under_mta_sts_enforce(env: Env) -> None:
    port = env.lab.raw(scripted({"EHLO": STARTTLS_EHLO, "STARTTLS": "454 4.7.0 TLS not available"}))
    result = check(config_for(env, {"mx1.enf.lab.test": port}, domain="enf.lab.test"))
    assert result.verdict is Verdict.NOT_READY
    assert codes(result, Severity.FAIL) == {"starttls-failed"}
    [finding] = [f for _, f in result.located_findings() if f.code == "starttls-failed"]
    assert finding.message.endswith("required by the domain's MTA-STS policy (mode enforce)")


def test_broken_starttls_fails_under_dane(env: Env) -> None:
    port = env.lab.raw(scripted({"EHLO": STARTTLS_EHLO, "STARTTLS": "454 4.7.0 TLS not available"}))
    result = check(config_for(env, {"mx.dane.lab.test": port}, **validated(env)))
    assert result.verdict is Verdict.NOT_READY
    assert codes(result, Severity.FAIL) == {"starttls-failed"}


def test_session_batches_stay_under_postfix_error_limits() -> None:
    from mxflip.readiness import session_batch

    assert session_batch(ProbeConfig()) == 50
    assert session_batch(ProbeConfig(check_catch_all=True)) == 8
    both = ProbeConfig(check_catch_all=True, relay_test_recipient="probe@relay-check.invalid")
    assert session_batch(both) == 4


def test_refusing_resolver_is_a_finding(env: Env) -> None:
    # the lab BIND is authoritative for lab.test only and does not recurse
    result = check(config_for(env, {"mx.outside.test": env.good()}))
    assert result.verdict is Verdict.NOT_READY
    [finding] = [f for f in one_host(result).findings if f.code == "resolve-error"]
    assert finding.message.startswith(
        f"A lookup of mx.outside.test failed at 127.0.0.1:{env.dns.port}: "
        f"127.0.0.1:{env.dns.port}: REFUSED"
    )


def test_truncated_answers_are_asked_again_over_tcp(env: Env) -> None:

    from mxflip.net.lookup import Lookup

    lookup = Lookup([HostPort("127.0.0.1", env.dns.port)], timeout=5)
    [text] = asyncio.run(lookup.txt("big.lab.test."))
    assert len(text) == 2000 and text.startswith("a" * 200) and text.endswith("j" * 200)
