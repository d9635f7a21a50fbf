"""``mxflip init`` through the Route53 adapter, against moto's server on loopback: every
hosted zone, the written file validates and ``status`` shows every domain primary.

These drive the CLI, so they live with the core's tests: adapters' own tests import only
the public API."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from tests.support.moto_route53 import (
    AWS_VARIABLES_TO_CLEAR,
    FAKE_SECRET_KEY,
    MotoServer,
    create_zone,
    fake_aws_environment,
    fresh_zone_name,
    put_mx,
    start_moto,
    strict_route53,
)
from tests.support.ports import free_port


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto()
    with strict_route53():
        yield server
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake keys in the environment; nothing else boto3 could find or call."""
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in fake_aws_environment(str(tmp_path)).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def admin(moto_server: MotoServer, aws_env: None) -> Any:
    return boto3.session.Session(region_name="us-east-1").client(
        "route53", endpoint_url=moto_server.url
    )


def test_init_reads_the_hosted_zones(admin: Any, moto_server: MotoServer, tmp_path: Path) -> None:
    zone = fresh_zone_name("init")
    zone_id = create_zone(admin, zone)
    eop = "0 init-test.mail.protection.outlook.com."
    put_mx(admin, zone_id, zone, 3600, eop)
    put_mx(admin, zone_id, f"sales.{zone}", 600, eop)
    put_mx(admin, zone_id, f"lab.{zone}", 60, "10 mail.lab.example.net.")
    cfg = tmp_path / "mxflip.toml"
    # status must ask loopback only, not the delegation's (real) awsdns nameservers.
    cfg.write_text(
        f'[providers.aws]\ntype = "route53"\nendpoint_url = "{moto_server.url}"\n\n'
        f'[defaults]\nnameservers = ["127.0.0.1:{free_port()}"]\n'
    )
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "-c",
            str(cfg),
            "init",
            "--provider",
            "aws",
            "--zone",
            zone,
            "--backup",
            "10 mail.{domain}",
        ],
    )
    assert result.exit_code == 0, result.output
    text = cfg.read_text()
    assert FAKE_SECRET_KEY not in text
    assert "Microsoft 365 EOP's, an inbound mail filter" in text
    doc = tomllib.loads(text)
    bare = zone.rstrip(".")
    assert sorted(doc["domains"]) == sorted([bare, f"sales.{bare}", f"lab.{bare}"])
    assert doc["domains"][f"lab.{bare}"]["ttl"] == 60
    assert doc["domains"][f"sales.{bare}"]["primary"] == "primary"
    assert runner.invoke(cli, ["-c", str(cfg), "validate"]).exit_code == 0
    status = runner.invoke(cli, ["-c", str(cfg), "status", "--json", "--timeout", "0.2"])
    domains = json.loads(status.stdout)["domains"]
    assert {(d["active"], d["provider_error"]) for d in domains} == {("primary", None)}
    assert len(domains) == 3


def test_init_without_zone_lists_every_hosted_zone(
    admin: Any, moto_server: MotoServer, tmp_path: Path
) -> None:
    zone = fresh_zone_name("all")
    put_mx(admin, create_zone(admin, zone), zone, 300, "10 mx.example.net.")
    cfg = tmp_path / "mxflip.toml"
    cfg.write_text(f'[providers.aws]\ntype = "route53"\nendpoint_url = "{moto_server.url}"\n')
    result = CliRunner().invoke(
        cli, ["-c", str(cfg), "init", "--provider", "aws", "--dry-run", "--domain", zone]
    )
    assert result.exit_code == 0, result.output
    assert list(tomllib.loads(result.stdout)["domains"]) == [zone.rstrip(".")]
