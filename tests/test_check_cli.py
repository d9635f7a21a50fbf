"""``mxflip check`` and ``mxflip status --probe`` through click: key output lines, the JSON
shape and the 0/1/3 exit codes, against loopback SMTP servers and a real BIND9."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mxflip.cli import cli
from tests.support.bind import BindServer, zone_text
from tests.support.ports import free_port
from tests.support.smtplab import Handler, Lab, lab, make_certs  # noqa: F401

pytestmark = pytest.mark.real_server

ZONE = """
* IN A 127.0.0.1
ready IN MX 10 mx.ready
mx.ready IN A 127.0.0.1
"""


@dataclass
class CliLab:
    folder: Path
    dns: BindServer
    good: int
    plain: int
    refused: int
    ca_file: Path

    def config(self) -> Path:
        text = f"""
[providers.lab]
type = "rfc2136"
server = "{self.dns.address}"
tsig_key_file = "{self.dns.key_file}"
timeout = 2

[defaults]
provider = "lab"
zone = "cli.test"
primary = ["10 mx.ready.cli.test"]
nameservers = ["{self.dns.address}"]

[domains."ready.cli.test"]
backup = ["10 mx.good.cli.test"]

[domains."degraded.cli.test"]
backup = ["10 mx.plain.cli.test"]

[domains."broken.cli.test"]
backup = ["10 mx.refused.cli.test", "20 mx.good.cli.test"]

[probe]
helo = "probe.cli.test"
mail_from = "probe@cli.test"
timeout = 5
resolvers = ["{self.dns.address}"]
ca_file = "{self.ca_file}"

[probe.connect]
"mx.good.cli.test" = "127.0.0.1:{self.good}"
"mx.ready.cli.test" = "127.0.0.1:{self.good}"
"mx.plain.cli.test" = "127.0.0.1:{self.plain}"
"mx.refused.cli.test" = "127.0.0.1:{self.refused}"
"""
        path = self.folder / "mxflip.toml"
        path.write_text(text)
        return path

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["-c", str(self.config()), *args])


@pytest.fixture(scope="module")
def cli_lab(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliLab]:  # noqa: F811
    folder = tmp_path_factory.mktemp("check-cli")
    certs = make_certs(folder)
    dns = BindServer(folder / "bind", {"cli.test.": zone_text("cli.test.", ZONE, ttl=3600)}).start()
    good = lab.smtp(
        Handler(local_suffix="cli.test"), tls=certs.server("mx.good.cli.test", "mx.ready.cli.test")
    )
    plain = lab.smtp(Handler(local_suffix="cli.test"))
    yield CliLab(folder, dns, good, plain, free_port(), certs.ca_file)
    dns.stop()


def test_check_ready_exits_0_with_the_promised_json_shape(cli_lab: CliLab) -> None:
    result = cli_lab.run("check", "ready.cli.test", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {k: doc[k] for k in ("command", "profile", "exit_code", "verdict")} == {
        "command": "check",
        "profile": "backup",
        "exit_code": 0,
        "verdict": "ready",
    }
    [domain] = doc["domains"]
    assert {k: domain[k] for k in ("domain", "profile", "verdict", "findings")} == {
        "domain": "ready.cli.test",
        "profile": "backup",
        "verdict": "ready",
        "findings": [],
    }
    [host] = domain["hosts"]
    assert (host["host"], host["verdict"], host["preference"]) == ("mx.good.cli.test", "ready", 10)
    [address] = host["addresses"]
    assert address["address"] == f"127.0.0.1:{cli_lab.good}"
    assert address["verdict"] == "ready" and address["findings"] == []
    assert [s["name"] for s in address["steps"]] == [
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
    for step in address["steps"]:
        assert set(step) == {"name", "code", "ms", "ok", "detail"}
        assert step["ok"] is True and isinstance(step["ms"], int)
    assert address["tls"]["verified"] is True


def test_check_degraded_exits_1_with_the_finding_line(cli_lab: CliLab) -> None:
    result = cli_lab.run("check", "degraded.cli.test")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert (
        f"degraded.cli.test mx.plain.cli.test 127.0.0.1:{cli_lab.plain}: "
        "warn starttls-missing: STARTTLS is not offered"
    ) in lines
    assert lines[-1] == "backup set: degraded (1 domain: 0 ready, 1 degraded, 0 not-ready)"


def test_check_not_ready_exits_3(cli_lab: CliLab) -> None:
    result = cli_lab.run("check", "broken.cli.test")
    assert result.exit_code == 3, result.output
    assert (
        f"broken.cli.test mx.refused.cli.test 127.0.0.1:{cli_lab.refused}: "
        "fail connect-refused: connection refused"
    ) in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1] == (
        "backup set: not-ready (1 domain: 0 ready, 0 degraded, 1 not-ready)"
    )


def test_check_all_domains_reports_the_worst(cli_lab: CliLab) -> None:
    result = cli_lab.run("check", "--json")
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert {d["domain"]: d["verdict"] for d in doc["domains"]} == {
        "ready.cli.test": "ready",
        "degraded.cli.test": "degraded",
        "broken.cli.test": "not-ready",
    }


def test_check_primary_and_live_profiles(cli_lab: CliLab) -> None:
    primary = json.loads(
        cli_lab.run("check", "degraded.cli.test", "--profile", "primary", "--json").stdout
    )
    assert [h["host"] for h in primary["domains"][0]["hosts"]] == ["mx.ready.cli.test"]
    live = cli_lab.run("check", "ready.cli.test", "--profile", "live", "--json")
    assert live.exit_code == 0, live.output
    doc = json.loads(live.stdout)
    assert doc["profile"] == "live"
    assert [h["host"] for h in doc["domains"][0]["hosts"]] == ["mx.ready.cli.test"]


def test_check_unknown_domain_and_profile_are_usage_errors(cli_lab: CliLab) -> None:
    unknown = cli_lab.run("check", "nope.test")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("mxflip: error: domain 'nope.test' is not configured")
    bad = cli_lab.run("check", "--profile", "spare")
    assert bad.exit_code == 2 and "Invalid value for '--profile'" in bad.stderr


def test_status_probe_adds_live_health(cli_lab: CliLab) -> None:
    result = cli_lab.run("status", "ready.cli.test", "--probe", "--json")
    assert result.exit_code == 0, result.output
    [domain] = json.loads(result.stdout)["domains"]
    assert domain["active"] == "primary"
    probe = domain["probe"]
    assert (probe["profile"], probe["verdict"]) == ("live", "ready")
    assert [h["host"] for h in probe["hosts"]] == ["mx.ready.cli.test"]
    table = cli_lab.run("status", "ready.cli.test", "--probe")
    assert table.exit_code == 0
    assert "Live health" in table.stdout and "mx.ready.cli.test: ready" in table.stdout


def test_status_without_probe_has_no_probe_key(cli_lab: CliLab) -> None:
    result = cli_lab.run("status", "ready.cli.test", "--json")
    assert "probe" not in json.loads(result.stdout)["domains"][0]


def test_outputs_never_show_the_tsig_secret(cli_lab: CliLab) -> None:
    secret = cli_lab.dns.secret
    for args in (
        ("check", "--json"),
        ("check",),
        ("status", "--probe", "--json"),
        ("status", "--probe"),
    ):
        result = cli_lab.run(*args)
        assert secret not in result.output, args


def test_ctrl_c_during_check_exits_130(cli_lab: CliLab, monkeypatch: pytest.MonkeyPatch) -> None:
    import mxflip.readiness

    async def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mxflip.readiness, "check_domains", interrupted)
    result = cli_lab.run("check")
    assert result.exit_code == 130
    assert result.stderr.strip() == "mxflip: interrupted"


def test_unusable_ca_file_is_one_line_exit_2(cli_lab: CliLab, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    text = cli_lab.config().read_text().replace(str(cli_lab.ca_file), str(bad))
    path = tmp_path / "mxflip.toml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["-c", str(path), "check", "ready.cli.test"])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mxflip: error: probe.ca_file: cannot load the CA file {bad}: ")
    assert line.endswith("(give a PEM file with one or more CA certificates)")


def test_the_engine_seam_gets_verdicts_with_located_reasons(cli_lab: CliLab) -> None:
    from mxflip.config import load_config
    from mxflip.readiness import default_readiness
    from mxflip.records import RRset

    config = load_config(cli_lab.config())
    readiness = default_readiness(config)
    assert readiness is not None
    domain = config.domains["broken.cli.test."]
    targets = {
        domain.name: RRset.of(domain.name, 300, ["10 mx.refused.cli.test", "20 mx.good.cli.test"])
    }
    verdicts = asyncio.run(readiness([domain], targets))
    verdict = verdicts[domain.name]
    assert verdict.verdict == "not-ready"
    assert verdict.reasons == (
        f"mx.refused.cli.test 127.0.0.1:{cli_lab.refused}: connection refused",
    )


def test_escape_sequences_in_a_remote_reply_never_reach_the_terminal(
    cli_lab: CliLab,
    lab: Lab,  # noqa: F811
) -> None:
    reply = "550 \x1b[2J\x1b[Hno such user\rmxflip: all good\x07"
    hostile = lab.smtp(Handler({"*": reply}, local_suffix="cli.test"))
    path = cli_lab.config()
    path.write_text(path.read_text().replace(f"127.0.0.1:{cli_lab.plain}", f"127.0.0.1:{hostile}"))
    for args in (("check", "degraded.cli.test"), ("check", "degraded.cli.test", "--json")):
        result = CliRunner().invoke(cli, ["-c", str(path), *args])
        assert result.exit_code == 3, result.output
        assert not any(c in result.output for c in "\x1b\r\x07"), repr(result.output)
    assert "no such user mxflip: all good" in result.stdout
