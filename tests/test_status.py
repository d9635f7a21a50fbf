"""``mxflip status`` against a real BIND9: every profile state, nameserver trouble, JSON
shape and exit codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mxflip.cli import cli
from mxflip.provider import Change
from mxflip.records import RRset
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer, zone_text
from tests.support.ports import free_port

pytestmark = pytest.mark.real_server

PRIMARY = ["10 mx1.proxy.test.", "20 mx2.proxy.test."]

STATES = {
    "onprimary": PRIMARY,
    "onbackup": ["10 mail.onbackup.example.test."],
    "mixed": ["10 mx1.proxy.test.", "20 mail.mixed.example.test."],
    "partial": ["10 mx1.proxy.test."],
    "unknown": ["10 elsewhere.example.net."],
    "disagree": PRIMARY,
}


@pytest.fixture(scope="module")
def zone_state(bind: BindServer) -> dict[str, RRset]:
    """Put each status-test domain into its state on the real BIND."""
    provider = RFC2136Provider.from_settings(
        "lab", RFC2136Settings(server=bind.address, tsig_key_file=bind.key_file)
    )
    wanted = {
        f"{label}.example.test.": RRset.of(f"{label}.example.test.", 3600, records)
        for label, records in STATES.items()
    }
    live = provider.read("example.test.", list(wanted))
    provider.apply("example.test.", [Change(n, live[n], r) for n, r in wanted.items()])
    return wanted


@pytest.fixture(scope="module")
def stale_bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    """A second authoritative server for example.test that still serves the backup set
    for disagree.example.test (a secondary that missed an update)."""
    server = BindServer(
        tmp_path_factory.mktemp("stale-bind"),
        {
            "example.test.": zone_text(
                "example.test.", "disagree 3600 IN MX 10 mail.disagree.example.test."
            )
        },
        allow_update=False,
    ).start()
    yield server
    server.stop()


def write_config(tmp_path: Path, bind: BindServer, extra: str = "", **defaults: str) -> Path:
    nameservers = defaults.get("nameservers", f'["{bind.address}"]')
    text = f"""
[providers.lab]
type = "rfc2136"
server = "{bind.address}"
tsig_key_file = "{bind.key_file}"
timeout = 1

[providers.dead]
type = "rfc2136"
server = "127.0.0.1:{free_port()}"
tsig_key_file = "{bind.key_file}"
timeout = 0.3

[sets]
proxy = ["10 mx1.proxy.test", "20 mx2.proxy.test"]

[defaults]
provider = "lab"
zone = "example.test"
primary = "proxy"
backup = ["10 mail.{{domain}}"]
nameservers = {nameservers}
"""
    for label in [*STATES, "absent"]:
        text += f'\n[domains."{label}.example.test"]\n'
    text += extra
    path = tmp_path / "mxflip.toml"
    path.write_text(text)
    return path


def run(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(path), "status", "--timeout", "0.5", *args])


def status_json(path: Path, *domains: str) -> tuple[int, dict[str, dict]]:  # type: ignore[type-arg]
    result = run(path, "--json", *domains)
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == result.exit_code
    return result.exit_code, {d["domain"]: d for d in doc["domains"]}


@pytest.mark.parametrize(
    ("label", "active", "exact", "code"),
    [
        ("onprimary", "primary", True, 0),
        ("onbackup", "backup", True, 1),
        ("mixed", "mixed", True, 1),
        ("partial", "primary", False, 1),
        ("unknown", "unknown", True, 1),
        ("absent", "absent", True, 1),
    ],
)
def test_profile_states(
    tmp_path: Path,
    bind: BindServer,
    zone_state: dict[str, RRset],
    label: str,
    active: str,
    exact: bool,
    code: int,
) -> None:
    path = write_config(tmp_path, bind)
    domain = f"{label}.example.test"
    exit_code, docs = status_json(path, domain)
    doc = docs[domain]
    assert (doc["active"], doc["exact"], exit_code) == (active, exact, code)
    assert doc["consistent"] is True
    expected = STATES.get(label, [])
    assert doc["records"] == sorted(expected, key=lambda r: (int(r.split()[0]), r))
    assert doc["ttl"] == (3600 if expected else None)
    assert doc["nameservers"] == [
        {
            "server": bind.address,
            "address": None,
            "records": doc["records"],
            "ttl": doc["ttl"],
            "active": active,
            "error": None,
            "unreachable": False,
            "slow": False,
            "tries": 1,
        }
    ]


def test_json_document_shape(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    path = write_config(tmp_path, bind)
    result = run(path, "--json")
    doc = json.loads(result.stdout)
    assert set(doc) >= {"version", "command", "exit_code", "domains"}
    assert doc["command"] == "status"
    assert len(doc["domains"]) == len(STATES) + 1
    for d in doc["domains"]:
        assert set(d) >= {"domain", "active", "records", "ttl", "consistent", "nameservers"}
        for ns in d["nameservers"]:
            assert set(ns) >= {"server", "records", "ttl", "error"}
    assert result.exit_code == 1  # several domains are not on primary


def test_partial_set_names_what_is_missing(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    _, docs = status_json(write_config(tmp_path, bind), "partial.example.test")
    assert (
        "differs from the primary profile: missing 20 mx2.proxy.test."
        in (docs["partial.example.test"]["findings"])
    )


def test_disagreeing_nameserver(
    tmp_path: Path, bind: BindServer, stale_bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    path = write_config(tmp_path, bind, nameservers=f'["{bind.address}", "{stale_bind.address}"]')
    code, docs = status_json(path, "disagree.example.test")
    doc = docs["disagree.example.test"]
    assert code == 1
    assert doc["active"] == "primary"
    assert doc["consistent"] is False
    good, stale = doc["nameservers"]
    assert good["active"] == "primary" and good["error"] is None
    assert stale["active"] == "backup"
    assert stale["records"] == ["10 mail.disagree.example.test."]
    assert any(
        f.startswith(f"nameserver {stale_bind.address} serves 10 mail.disagree")
        for f in doc["findings"]
    )


def test_unreachable_nameserver_is_shown_not_fatal(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    path = write_config(tmp_path, bind, nameservers=f'["{bind.address}", "{dead}"]')
    code, docs = status_json(path, "onprimary.example.test")
    doc = docs["onprimary.example.test"]
    assert code == 1
    assert doc["active"] == "primary"
    assert doc["consistent"] is True  # the one that answered agrees
    assert doc["nameservers"][1]["server"] == dead
    assert doc["nameservers"][1]["records"] is None
    assert doc["nameservers"][1]["error"]


def test_every_nameserver_unreachable_is_exit_3(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    path = write_config(tmp_path, bind, nameservers=f'["{dead}"]')
    code, docs = status_json(path, "onprimary.example.test")
    assert code == 3
    assert docs["onprimary.example.test"]["nameservers"][0]["error"]


def test_unreachable_provider_is_exit_3(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    extra = '\n[domains."dead.example.test"]\nprovider = "dead"\n'
    path = write_config(tmp_path, bind, extra)
    code, docs = status_json(path, "dead.example.test", "onprimary.example.test")
    assert code == 3
    dead = docs["dead.example.test"]
    assert dead["records"] is None
    assert "did not answer within 0.3 s" in dead["provider_error"]
    assert dead["consistent"] is False
    assert docs["onprimary.example.test"]["active"] == "primary"


def test_resolvers_are_reported(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    extra = f'\n[domains."resolved.example.test"]\nresolvers = ["{bind.address}"]\n'
    path = write_config(tmp_path, bind, extra)
    _, docs = status_json(path, "resolved.example.test", "onprimary.example.test")
    assert docs["resolved.example.test"]["resolvers"][0]["server"] == bind.address
    assert docs["onprimary.example.test"]["resolvers"] == []


def test_all_primary_is_exit_0_and_table(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    path = write_config(tmp_path, bind)
    result = run(path, "onprimary.example.test")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("onprimary.example.test" in line and "primary" in line for line in lines)
    assert any("10 mx1.proxy.test." in line for line in lines)
    assert any(f"✓ {bind.address}" in line for line in lines)


def test_human_output_lists_findings(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    path = write_config(tmp_path, bind)
    result = run(path, "partial.example.test")
    assert result.exit_code == 1
    assert (
        "partial.example.test: differs from the primary profile: missing 20 mx2.proxy.test."
        in result.stdout.splitlines()
    )


def test_unknown_domain_is_usage_error(tmp_path: Path, bind: BindServer) -> None:
    path = write_config(tmp_path, bind)
    result = run(path, "nosuch.example.test")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"mxflip: error: domain 'nosuch.example.test' is not configured in {path}"
    )


def test_default_nameservers_come_from_the_provider(
    tmp_path: Path, bind: BindServer, zone_state: dict[str, RRset]
) -> None:
    """Without `nameservers`, verification asks the provider for the zone's servers."""
    from mxflip.config import load_config
    from mxflip.observe import Observer

    asked: list[str] = []

    class Delegating(RFC2136Provider):
        def nameservers(self, zone: str) -> list[str]:
            asked.append(zone)
            return [bind.address]

    path = write_config(tmp_path, bind, nameservers="[]")
    config = load_config(path)
    inner = RFC2136Provider.from_settings("lab", config.providers["lab"].settings)
    provider = Delegating("lab", inner._client)
    observer = Observer(config, providers={"lab": provider})
    domains = config.select(["onprimary.example.test", "onbackup.example.test"])
    statuses = asyncio.run(observer.status(domains))
    assert [s.nameservers[0].answer.server for s in statuses] == [bind.address, bind.address]
    assert [s.match.active for s in statuses] == ["primary", "backup"]
    assert asked == ["example.test."]  # once per zone, not per domain
