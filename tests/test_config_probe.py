"""The ``[probe]`` table: defaults, every key, and one clear line for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from mxflip.config import ProbeConfig, load_config
from mxflip.hostport import HostPort
from tests.support.configs import GOOD, write_config

BAD = [
    ("timeout-zero", "timeout = 0", "probe.timeout: Input should be greater than 0"),
    ("timeout-string", 'timeout = "30"', "probe.timeout: Input should be a valid number"),
    ("helo-not-fqdn", 'helo = "probe"', "probe.helo: 'probe' is not a fully qualified name"),
    ("helo-ip", 'helo = "192.0.2.1"', "probe.helo: '192.0.2.1' is an IP address"),
    ("mail-from-null", 'mail_from = "<>"', "probe.mail_from: the null sender is not allowed"),
    (
        "mail-from-no-at",
        'mail_from = "probe.example.com"',
        "probe.mail_from: 'probe.example.com' is not an address like postmaster@example.com",
    ),
    (
        "relay-recipient-bad",
        'relay_test_recipient = "someone@"',
        "probe.relay_test_recipient: 'someone@' is not an address",
    ),
    (
        "connect-bad-port",
        '[probe.connect]\n"mx.example.test" = "127.0.0.1:99999"',
        "probe.connect: mx.example.test: '127.0.0.1:99999': port '99999' is not a number",
    ),
    (
        "connect-empty-list",
        '[probe.connect]\n"mx.example.test" = []',
        "probe.connect: mx.example.test: give at least one host:port to connect to",
    ),
    (
        "connect-bad-host",
        '[probe.connect]\n"not a host" = "127.0.0.1:2525"',
        "probe.connect: 'not a host' has an invalid label",
    ),
    (
        "resolver-by-name",
        'resolvers = ["dns.example.test"]',
        "probe.resolvers: 'dns.example.test': a resolver must be an IP address",
    ),
    ("concurrency-zero", "concurrency = 0", "probe.concurrency: Input should be greater than"),
    (
        "mta-sts-url-http",
        'mta_sts_url = "http://mta-sts.{domain}/.well-known/mta-sts.txt"',
        "probe.mta_sts_url: 'http://mta-sts.{domain}/.well-known/mta-sts.txt' must be an "
        "https:// URL",
    ),
    ("catch-all-string", 'check_catch_all = "yes"', "probe.check_catch_all: Input should be a"),
    ("ca-file-missing", 'ca_file = "nope.pem"', "probe.ca_file: CA file"),
    ("unknown", "retries = 3", "probe.retries: unknown key"),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_probe_table_is_one_line_and_exit_2(
    tmp_path: Path, case: str, body: str, message: str
) -> None:
    path = write_config(tmp_path, GOOD + "\n[probe]\n" + body + "\n")
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mxflip: error: {path}: "), line
    assert message in line


def test_probe_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, GOOD))
    assert config.probe == ProbeConfig()
    assert config.probe.resolvers == () and config.probe.ca_file is None
    assert config.probe.mta_sts_url == "https://mta-sts.{domain}/.well-known/mta-sts.txt"


def test_every_probe_key(tmp_path: Path) -> None:
    (tmp_path / "lab-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    path = write_config(
        tmp_path,
        GOOD
        + """
[probe]
helo = "Probe.Example.TEST."
mail_from = "probe@example.test"
timeout = 12.5
resolvers = ["127.0.0.1:5353", "::1"]
ca_file = "lab-ca.pem"
check_catch_all = true
relay_test_recipient = "probe@relay-check.invalid"
concurrency = 8
mta_sts_url = "https://127.0.0.1:8443/{domain}/.well-known/mta-sts.txt"
slow_step = 3
expiry_warning_days = 21
rcpt_retry_wait = 0.5

[probe.connect]
"mx1.proxy.test" = "127.0.0.1:2525"
"MX2.proxy.test." = ["127.0.0.1:2526", "[::1]:2527"]
""",
    )
    probe = load_config(path).probe
    assert probe.helo == "probe.example.test"
    assert probe.mail_from == "probe@example.test"
    assert probe.timeout == 12.5
    assert probe.resolvers == (HostPort("127.0.0.1", 5353), HostPort("::1", 53))
    assert probe.ca_file == tmp_path.resolve() / "lab-ca.pem"
    assert probe.check_catch_all is True
    assert probe.relay_test_recipient == "probe@relay-check.invalid"
    assert probe.concurrency == 8
    assert probe.slow_step == 3 and probe.expiry_warning_days == 21
    assert probe.rcpt_retry_wait == 0.5
    assert probe.connect == {
        "mx1.proxy.test.": (HostPort("127.0.0.1", 2525),),
        "mx2.proxy.test.": (HostPort("127.0.0.1", 2526), HostPort("::1", 2527)),
    }
