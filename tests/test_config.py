"""Configuration loading: the good shapes, and a corpus of bad files, each of which must
give one clear line naming the file and key, exit code 2, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from mxflip.config import load_config
from mxflip.records import MX
from tests.support.configs import GOOD, KEY_TEXT, write_config

D = 'domains."example.test"'


def _replace(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


BAD: list[tuple[str, str, str]] = [
    ("toml-syntax", GOOD.replace("[defaults]", "[defaults"), "TOML syntax error"),
    ("unknown-section", GOOD + "\n[provider.x]\ntype='rfc2136'\n", "provider: unknown section"),
    (
        "unknown-domain-key",
        _replace('provider = "lab"', 'provider = "lab"\nprimay = []'),
        f"{D}.primay: unknown key",
    ),
    (
        "unknown-defaults-key",
        _replace("ttl = 3600", "ttl = 3600\nttll = 5"),
        "defaults.ttll: unknown key",
    ),
    (
        "unknown-provider-key",
        _replace('type = "rfc2136"', 'type = "rfc2136"\nsever = "x"'),
        "providers.lab.sever: unknown key",
    ),
    (
        "provider-without-type",
        _replace('type = "rfc2136"\n', ""),
        "providers.lab.type: required key is missing",
    ),
    (
        "unknown-provider-type",
        _replace('type = "rfc2136"', 'type = "nosuch"'),
        "providers.lab.type: unknown provider type 'nosuch'",
    ),
    (
        "missing-key-file",
        _replace('"lab.key"', '"missing.key"'),
        "providers.lab.tsig_key_file: key file",
    ),
    (
        "bad-host-name",
        _replace("mx1.proxy.test", "mx1..proxy.test"),
        f"{D}.primary[0]: 'mx1..proxy.test' has an empty label",
    ),
    (
        "bad-host-chars",
        _replace("mx1.proxy.test", "mx!.proxy.test"),
        f"{D}.primary[0]: 'mx!.proxy.test' has an invalid label 'mx!'",
    ),
    (
        "preference-out-of-range",
        _replace("20 mx2", "70000 mx2"),
        f"{D}.primary[1]: preference 70000 is out of range 0-65535",
    ),
    (
        "preference-not-number",
        _replace("20 mx2", "twenty mx2"),
        f"{D}.primary[1]: '{'twenty mx2.proxy.test'}': preference 'twenty' is not a whole number",
    ),
    (
        "record-without-preference",
        _replace('"20 mx2.proxy.test"', '"mx2.proxy.test"'),
        f"{D}.primary[1]: 'mx2.proxy.test' is not 'PREFERENCE HOST'",
    ),
    (
        "empty-profile",
        _replace('backup = ["10 mail.example.test"]', "backup = []"),
        f"{D}.backup: must list at least one MX record",
    ),
    (
        "primary-equals-backup",
        _replace(
            'backup = ["10 mail.example.test"]',
            'backup = ["20 mx2.proxy.test", "10 mx1.proxy.test"]',
        ),
        f"{D}.backup: primary and backup are the same MX set",
    ),
    (
        "unknown-provider-reference",
        _replace('provider = "lab"', 'provider = "nope"'),
        f"{D}.provider: unknown provider 'nope' (configured providers: lab)",
    ),
    ("no-domains", GOOD[: GOOD.index("[domains.")], "domains: no domains configured"),
    (
        "missing-primary",
        _replace('primary = ["10 mx1.proxy.test", "20 mx2.proxy.test"]\n', ""),
        f"{D}.primary: required key is missing",
    ),
    (
        "ttl-wrong-type",
        _replace("ttl = 3600", 'ttl = "3600"'),
        "defaults.ttl: Input should be a valid integer (got a string)",
    ),
    (
        "ttl-zero",
        _replace("ttl = 3600", "ttl = 0"),
        "defaults.ttl: Input should be greater than or equal to 1",
    ),
    (
        "failover-ttl-longer",
        _replace("failover_ttl = 60", "failover_ttl = 7200"),
        "defaults.failover_ttl: failover_ttl 7200 is longer than ttl 3600",
    ),
    (
        "ip-literal-host",
        _replace("mx1.proxy.test", "192.0.2.1"),
        f"{D}.primary[0]: '192.0.2.1' is an IP address",
    ),
    (
        "null-mx",
        _replace('"10 mail.example.test"', '"0 ."'),
        f"{D}.backup[0]: empty name (the root '.' is not a host name)",
    ),
    (
        "domain-outside-zone",
        _replace('provider = "lab"', 'provider = "lab"\nzone = "other.test"'),
        f"{D}.zone: domain example.test is not inside zone other.test",
    ),
    (
        "bad-nameserver-port",
        _replace('"127.0.0.1:5300"]', '"127.0.0.1:99999"]'),
        "defaults.nameservers[0]: '127.0.0.1:99999': port '99999' is not a number from 1 to 65535",
    ),
    (
        "bad-provider-server",
        _replace('server = "127.0.0.1:5300"', 'server = "not a host"'),
        "providers.lab.server: 'not a host' has an invalid label 'not a host'",
    ),
    (
        "unquoted-dotted-domain",
        _replace('[domains."example.test"]', "[domains.example.test]"),
        "domains.example: looks like a dotted domain name written without quotes",
    ),
    (
        "unknown-set",
        _replace('backup = ["10 mail.example.test"]', 'backup = "direct"'),
        f"{D}.backup: names MX set 'direct', which is not defined under [sets]",
    ),
    (
        "duplicate-host",
        _replace('"20 mx2.proxy.test"', '"20 mx1.proxy.test"'),
        f"{D}.primary[1]: host mx1.proxy.test. is listed twice",
    ),
    (
        "invalid-domain-name",
        _replace('[domains."example.test"]', '[domains."bad name.test"]'),
        '"bad name.test": invalid domain name',
    ),
    (
        "profile-wrong-type",
        _replace('backup = ["10 mail.example.test"]', "backup = 10"),
        f"{D}.backup: Input should be a valid",
    ),
    ("probe-unknown-key", GOOD + "\n[probe]\nhelo_name = 'x'\n", "probe.helo_name: unknown key"),
    (
        "providers-not-table",
        'providers = "lab"\n' + GOOD[GOOD.index("[defaults]") :],
        "providers: must be a table, not a string",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_config_is_one_clear_line_and_exit_2(
    tmp_path: Path, case: str, text: str, message: str
) -> None:
    path = write_config(tmp_path, text)
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mxflip: error: {path}: "), lines[0]
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 20


def test_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "nope.toml"), "validate"])
    assert result.exit_code == 2
    assert "nope.toml: configuration file not found" in result.stderr


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mxflip.toml"
    path.write_bytes(b"\xff\xfe[providers]")
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert "not UTF-8 text" in result.stderr


def test_key_file_with_bad_secret(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD, key='key "k" { algorithm hmac-sha256; secret "!!"; };')
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert "the secret of key 'k'" in result.stderr and "is not base64" in result.stderr
    assert "!!" not in result.stderr.split("is not base64")[0].split("key 'k'")[1]


def test_key_file_errors_never_show_the_secret(tmp_path: Path) -> None:
    two_keys = KEY_TEXT + KEY_TEXT.replace('"k"', '"k2"')
    path = write_config(tmp_path, GOOD, key=two_keys)
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert "holds several keys (k, k2); set tsig_key_name" in result.stderr
    assert "c2VjcmV0" not in result.stderr


def test_good_config_loads(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, GOOD))
    domain = config.domains["example.test."]
    assert domain.zone == "example.test."
    assert domain.primary == {MX(10, "mx1.proxy.test"), MX(20, "mx2.proxy.test")}
    assert domain.backup == {MX(10, "mail.example.test")}
    assert (domain.ttl, domain.failover_ttl) == (3600, 60)
    assert [str(n) for n in domain.nameservers] == ["127.0.0.1:5300"]


SHARED = """
[providers.lab]
type = "rfc2136"
server = "127.0.0.1"
tsig_key_file = "lab.key"

[sets]
proxy = ["10 mx1.proxy.test", "20 mx2.proxy.test"]

[defaults]
provider = "lab"
primary = "proxy"
backup = ["10 mail.{domain}"]

[domains."a.test"]
[domains."b.test"]
[domains."c.test"]
backup = ["5 direct.c.test"]
ttl = 300
failover_ttl = 30
"""


def test_many_domains_share_sets_without_repeating_lists(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, SHARED))
    a, b, c = (config.domains[n] for n in ("a.test.", "b.test.", "c.test."))
    assert a.primary == b.primary == c.primary
    assert a.backup == {MX(10, "mail.a.test")}
    assert b.backup == {MX(10, "mail.b.test")}
    assert c.backup == {MX(5, "direct.c.test")}
    assert (c.ttl, c.failover_ttl) == (300, 30)
    assert a.zone == "a.test."


def test_config_found_via_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, GOOD)
    monkeypatch.setenv("MXFLIP_CONFIG", str(path))
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{path}: OK")


def test_config_found_in_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, GOOD)
    monkeypatch.delenv("MXFLIP_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "mxflip.toml: OK — 1 domain, 1 provider"


def test_validate_json(tmp_path: Path) -> None:
    import json

    path = write_config(tmp_path, SHARED)
    result = CliRunner().invoke(cli, ["-c", str(path), "validate", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["command"] == "validate"
    assert [d["domain"] for d in doc["domains"]] == ["a.test", "b.test", "c.test"]
    assert doc["domains"][1]["backup"] == ["10 mail.b.test."]
